"""The real watcher's observability (--listen, --status-file) and its lock with apply."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from reconciler.testing.models import write_lora_kohya
from tests.watch.proc import RECONCILER


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def manifest(ws, lora: Path, name: str = "a") -> None:
    ws.write_manifest("team.yaml", f"""
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {{name: team}}
        spec:
          models:
            - {{name: {name}, source: '{lora}'}}
        """)


def test_healthz_readyz_metrics_and_the_status_file(ws, watcher, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    lora = write_lora_kohya(tmp_path / "a.safetensors", base="sd-1")
    manifest(ws, lora)
    port = free_port()
    status = ws.root / "status.json"
    w = watcher(str(ws.manifests), "--listen", f"127.0.0.1:{port}", "--status-file", str(status))
    w.wait_reconcile(1)
    base = f"http://127.0.0.1:{port}"
    assert wait_for(lambda: get(base + "/readyz")[0] == 200)
    assert get(base + "/healthz") == (200, "ok\n")
    doc = json.loads(status.read_text())
    ready = {c["type"]: c for c in doc["conditions"]}["Ready"]
    assert doc["ready"] is True and ready["status"] == "True" and doc["counts"].get("in_sync") == 1
    assert [a["name"] for a in doc["actions"]] == ["a"] and doc["lastSuccessTime"]
    families = {f.name: f for f in text_string_to_metric_families(get(base + "/metrics")[1])}
    reconciles = {s.labels["result"]: s.value for s in families["reconciler_reconciles"].samples
                  if s.name == "reconciler_reconciles_total"}
    assert reconciles["success"] == 1 and reconciles["failed"] == 0
    models = {s.labels["state"]: s.value for s in families["reconciler_models"].samples}
    assert models["in_sync"] == 1

    # a manifest that does not validate: stalled, not ready, nothing pruned
    (ws.manifests / "team.yaml").write_text("apiVersion: reconciler/v1\nkind: ModelSet\nspec: [\n")
    assert wait_for(lambda: get(base + "/readyz")[0] == 503)
    code, body = get(base + "/readyz")
    assert code == 503 and "ReconciliationStalled" in body
    doc = json.loads(status.read_text())
    assert {c["type"]: c["status"] for c in doc["conditions"]}["Stalled"] == "True"
    assert {r.name for r in ws.records()} == {"a"}
    assert not [p for p in status.parent.iterdir() if p.name.startswith(".status.json")], "no temp files left"


def test_an_apply_beside_a_running_watcher_waits_for_the_lock(ws, watcher, tmp_path: Path) -> None:
    """watch and apply on one models dir never interleave: each reconcile holds the lock."""
    first = write_lora_kohya(tmp_path / "a.safetensors", base="sd-1")
    manifest(ws, first)
    w = watcher(str(ws.manifests))
    w.wait_reconcile(1)
    second = write_lora_kohya(tmp_path / "b.safetensors", base="sdxl")
    manifest(ws, second, name="b")  # the watcher reconciles this...
    applied = subprocess.run([RECONCILER, "--models-dir", str(ws.models_dir), "apply", "-y", str(ws.manifests)],
                             cwd=ws.root, capture_output=True, text=True, timeout=60,
                             env={**os.environ, "RECONCILER_APPLY_LOCK_TIMEOUT": "30"})
    assert applied.returncode == 0, applied.stderr  # ...and so does this apply, one after the other
    w.wait_reconcile(2)
    records = ws.records()
    assert [r.name for r in records] == ["b"]
    assert (ws.models_dir / records[0].path).read_bytes() == second.read_bytes()
    assert not [p for p in (ws.models_dir / ".reconciler" / "tmp").iterdir()], "no leftovers"
    check = subprocess.run([RECONCILER, "--models-dir", str(ws.models_dir), "plan", "--detailed-exitcode",
                            str(ws.manifests)], cwd=ws.root, capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
