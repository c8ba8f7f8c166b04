"""SIGKILL `reconciler apply` exactly between two of its steps; the next apply must converge.

Each case names a call inside the apply (see ``killpoints/sitecustomize.py``) and kills the
process right before or after it, then checks what :mod:`tests.crash.test_random_kills`
checks.  These are the windows that random kills hit only now and then, and each found a
bug (the regression tests beside it, in ``test_regressions.py``, pin the fixes in process).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.crash.harness import CrashRig, describe_trial

STORE_CLASS = {"sqlite": "reconciler.store.sql:ModelRecordServiceSQL",
               "yaml": "reconciler.store.yamlfile:ModelRecordServiceFile"}

#: (id, manifest version, CRASH_KILL_AT spec ({store} = the store class), stores, slow)
POINTS = [
    # a remote model renamed into place, its record not yet written: the next apply used to
    # refuse ("already exists and no record owns it") for ever
    ("remote-renamed-before-record", "v1", "reconciler.install.copy:move_into_place:after:1:dl-", ["sqlite"], False),
    ("local-renamed-before-record", "v1", "reconciler.install.copy:move_into_place:after:1:stage-", ["yaml"], True),
    # the record written, the download's staging folder not yet removed: gc used to keep it
    ("record-written-before-staging-removed", "v1", "reconciler.install.landing:land:after:1:dl-", ["sqlite"], False),
    # inside the record write: the record and its file states land together or not at all
    # (in process: test_a_record_and_its_file_states_are_one_store_write, test_yaml_store_removes_...)
    ("inside-record-transaction", "v1", "reconciler.store.sql:ModelRecordServiceSQL._write_files:before:2",
     ["sqlite"], True),
    ("yaml-temp-written-not-renamed", "v1", "os:replace:before:3:.records.yaml.", ["yaml"], True),
    # prune: the record deleted, the files not yet: they used to stay in the models dir, owned by no one
    ("record-deleted-before-files", "v2", "{store}.del_model:after:1", ["sqlite"], False),
    ("record-deleted-before-files", "v2", "{store}.del_model:after:1", ["yaml"], True),
    # a replace that moves the model (another base): the record moved, the old file not yet gone
    ("record-moved-before-old-files", "v2", "{store}.update_model:after:1:embedding-local", ["yaml"], False),
    ("record-moved-before-old-files", "v2", "{store}.update_model:after:1:embedding-local", ["sqlite"], True),
    # a replace in place: the old file set aside, the new one not yet renamed in
    ("old-set-aside-before-new-renamed", "v2", "os:replace:after:1:/old-", ["sqlite", "yaml"], True),
    # a remote replace landed and recorded, its staging not yet removed
    ("remote-replace-recorded", "v2", "reconciler.install.landing:land:after:1:dl-", ["sqlite", "yaml"], True),
]

CASES = [
    pytest.param(store, version, spec, id=f"{store}-{name}", marks=[pytest.mark.slow] if slow else [])
    for name, version, spec, stores, slow in POINTS for store in stores
]


@pytest.mark.parametrize(("store", "version", "spec"), CASES)
def test_kill_point(rigs: Callable[[str], CrashRig], store: str, version: str, spec: str) -> None:
    rig = rigs(store)
    point = spec.format(store=STORE_CLASS[store])
    trial = rig.trial(rig.next_index(), version, kill_at=120.0, kill_point=point, throttle=False)
    assert trial.killed, f"the kill point {point} was never reached"
    assert not trial.problems, describe_trial(
        trial, f"{store} store, apply of {version} killed at {point}",
        f".venv/bin/pytest 'tests/crash/test_kill_points.py' -k '{store}' (CRASH_KILL_AT={point})")
    rig.cleanup(trial.index)
