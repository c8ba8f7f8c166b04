"""SIGKILL `reconciler apply` at random moments; the next apply must converge.

Each trial starts ``reconciler apply -y`` (the real console script, in a subprocess) on the
ten-model manifest of :mod:`tests.crash.harness` (v1 into an empty models dir, or v2 over an
installed v1: replaces, a move, a prune and a create), SIGKILLs it after a random delay
within the measured time of a full apply (remote files are throttled, so kills land
mid-download too; four kills in five land after the plan is printed, while apply changes
things, one in five during start-up and planning), then runs a normal ``apply``, ``plan --detailed-exitcode`` and ``gc``
and checks: records, files and manifest agree; every installed file's sha256 is its
source's; no record points at a missing or partial file; nothing is left under
``.reconciler/tmp`` or beside the store; no file in the models dir that no record owns.

The default run has five trials per store; ``pytest -m slow tests/crash`` runs fifty per
store.  Kill times come from ``CRASH_SEED`` (random when unset, printed on failure):
``CRASH_SEED=<seed> pytest tests/crash -k '<store> and <n>'`` replays one trial.
"""

from __future__ import annotations

import os
import random

import pytest

from tests.crash.harness import CrashRig, describe_trial

SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(2**31))


def _run_trial(rig: CrashRig, series: str, n: int) -> None:
    rng = random.Random(f"{SEED}-{series}-{rig.store}-{n}")
    version = "v1" if n % 2 == 0 else "v2"
    kill_at = rig.kill_time(rng, version)
    trial = rig.trial(rig.next_index(), version, kill_at)
    what = (f"seed {SEED}, {rig.store} store, apply of {version} SIGKILLed at {kill_at:.3f} s "
            f"(a full apply took {rig.full_seconds[version]:.2f} s, its plan printed at "
            f"{rig.planned_seconds[version]:.2f} s)")
    test = "test_random_kills_soak" if series == "soak" else "test_random_kills"
    assert not trial.problems, describe_trial(
        trial, what, f"CRASH_SEED={SEED} .venv/bin/pytest{' -m slow' if series == 'soak' else ''} "
                     f"'tests/crash/test_random_kills.py::{test}[{rig.store}-{n}]'")
    rig.cleanup(trial.index)


@pytest.mark.parametrize("n", range(5))
def test_random_kills(rig: CrashRig, n: int) -> None:
    _run_trial(rig, "default", n)


@pytest.mark.slow
@pytest.mark.parametrize("n", range(50))
def test_random_kills_soak(rig: CrashRig, n: int) -> None:
    _run_trial(rig, "soak", n)
