"""Two applies at once on one models dir, as two processes: the second waits for the lock
(and then finds nothing to do) or, past ``apply_lock_timeout``, fails with one clear line;
never interleaved, never corrupt.  (When ``watch`` lands it joins these tests.)"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hostile.yamltext import HEADER
from tests.hub.conftest import hub, lora_repo_files  # noqa: F401 - fixtures

CLI = "from reconciler.cli import main; main()"
SLOW_FILE = "detail-tweaker.safetensors"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def two_applies(lora_ws, hub, lora_repo_files, monkeypatch):  # noqa: F811
    """A manifest of three local models and one hub model served slowly (~2 s), so the
    first apply holds the lock long enough for a second to meet it."""
    ws = lora_ws
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)  # for the in-process plan that checks the end state
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.add_repo("slow/lora", lora_repo_files)
    ws.slow_route = hub.file_route("slow/lora", SLOW_FILE)
    ws.slow_route.drip = (1024, 0.25)  # 9 chunks
    for n in ("a", "b", "c"):
        data = bytearray((ws.files / "lora.safetensors").read_bytes())
        data[-1] = ord(n)  # distinct bytes per model
        (ws.files / f"{n}.safetensors").write_bytes(bytes(data))
    ws.write_manifest("m.yaml", HEADER + "spec:\n  models:\n"
                      "    - {name: a, source: ../files/a.safetensors}\n"
                      "    - {name: b, source: ../files/b.safetensors}\n"
                      "    - {name: c, source: ../files/c.safetensors}\n"
                      f"    - {{name: slow, source: 'slow/lora::{SLOW_FILE}'}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RECONCILER_", "HF_"))}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HUB_DISABLE_IMPLICIT_TOKEN="1", HF_HUB_OFFLINE="0",
               RECONCILER_CIVITAI_ENDPOINT=hub.civitai_endpoint)

    def start(lock_timeout: float) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", CLI, "--models-dir", str(ws.models_dir), "apply", "-y", str(ws.manifests)],
            cwd=ws.root, env={**env, "RECONCILER_APPLY_LOCK_TIMEOUT": str(lock_timeout)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    expected = {n: sha((ws.files / f"{n}.safetensors").read_bytes()) for n in ("a", "b", "c")}
    expected["slow"] = sha(lora_repo_files[SLOW_FILE])
    ws.start, ws.expected = start, expected
    return ws


def wait_for_lock_holder(ws, first: subprocess.Popen[str]) -> None:
    """Until the first apply holds the lock (its lock file appears on a fresh models dir)."""
    lock = ws.models_dir / ".reconciler" / "apply.lock"
    deadline = time.monotonic() + 60
    while not lock.exists():
        assert first.poll() is None, f"the first apply ended before taking the lock: {first.communicate()}"
        assert time.monotonic() < deadline, "the first apply never took the lock"
        time.sleep(0.01)


def assert_consistent(ws) -> None:
    """Records, files and manifest agree: one record per model, every file whole, nothing staged."""
    records = {r.name: r for r in ws.records()}
    assert sorted(records) == sorted(ws.expected)
    for name, digest in ws.expected.items():
        path = ws.models_dir / records[name].path
        assert sha(path.read_bytes()) == digest, name
    installed = sorted(p.relative_to(ws.models_dir).as_posix() for p in ws.models_dir.rglob("*.safetensors")
                       if ".reconciler" not in p.parts)
    assert installed == sorted(r.path for r in records.values())
    tmp = ws.models_dir / ".reconciler" / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == [], list(tmp.iterdir())
    plan = ws.cli("plan", "--detailed-exitcode", str(ws.manifests))
    assert plan.exit_code == 0, plan.output


def test_a_second_apply_fails_clearly_after_the_lock_timeout(two_applies) -> None:
    ws = two_applies
    ws.slow_route.drip = (1024, 0.4)  # ~3.5 s: room for the second process to start on a busy machine
    first = ws.start(lock_timeout=30)
    try:
        wait_for_lock_holder(ws, first)
        second = ws.start(lock_timeout=0.3)
        out2, err2 = second.communicate(timeout=60)
        assert first.poll() is None, "the first apply must still hold the lock when the second gives up"
        out1, err1 = first.communicate(timeout=120)
    finally:
        first.kill()
    assert second.returncode == 1, (out2, err2)
    assert "Traceback" not in err2
    lock = ws.models_dir / ".reconciler" / "apply.lock"
    assert err2.splitlines() == [f"Error: another apply holds {lock} (waited 0.3 s); try again when it has finished"]
    assert out2 == "", "the refused apply printed no plan and did nothing"
    assert first.returncode == 0, (out1, err1)
    assert "Apply complete: 4 created." in out1
    assert_consistent(ws)


def test_a_second_apply_waits_then_finds_nothing_to_do(two_applies) -> None:
    ws = two_applies
    first = ws.start(lock_timeout=30)
    try:
        wait_for_lock_holder(ws, first)
        second = ws.start(lock_timeout=60)
        finished: list[str] = []
        deadline = time.monotonic() + 120
        while len(finished) < 2 and time.monotonic() < deadline:
            for name, proc in (("first", first), ("second", second)):
                if name not in finished and proc.poll() is not None:
                    finished.append(name)
            time.sleep(0.01)
        out1, err1 = first.communicate(timeout=10)
        out2, err2 = second.communicate(timeout=10)
    finally:
        first.kill()
        second.kill()
    assert finished == ["first", "second"], "the second apply ran only once the first had let go"
    assert first.returncode == 0, (out1, err1)
    assert second.returncode == 0, (out2, err2)
    assert "Apply complete: 4 created." in out1
    assert "No changes." in out2 and "Apply complete: nothing changed." in out2, out2
    assert "Traceback" not in err1 + err2
    assert_consistent(ws)


_PROBE_LOOP = """
import sys
from pathlib import Path
from reconciler.reconcile.apply import ensure_writable
failed = 0
for _ in range(int(sys.argv[2])):
    try:
        ensure_writable(Path(sys.argv[1]))
    except Exception as exc:
        failed += 1
print(failed)
"""


def test_two_applies_starting_together_do_not_trip_each_other(tmp_path: Path) -> None:
    """Before the lock: each apply checks that it can write the models dir with a probe file
    of its own (a shared name made one of two starting applies fail "cannot be written")."""
    models = tmp_path / "models"
    procs = [subprocess.Popen([sys.executable, "-c", _PROBE_LOOP, str(models), "1000"], stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    failures = [int(p.communicate(timeout=120)[0]) for p in procs]
    assert failures == [0, 0]
    assert sorted(p.name for p in (models / ".reconciler").iterdir()) == ["tmp"]
    shutil.rmtree(models)
