"""Downloads that survive bad networks, seen from `reconciler apply`: resets, 5xx/429 and a
killed apply resume instead of starting over, and the installed bytes are exact."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.testing.models import write_lora_kohya
from tests.hub.conftest import hub  # noqa: F401 - fixture

REPO = "tiny/big-lora"
FILE = "big.safetensors"


@pytest.fixture
def big_lora(tmp_path_factory) -> bytes:
    """A real kohya LoRA of a few MB (rank 400)."""
    return write_lora_kohya(tmp_path_factory.mktemp("lora") / "big.safetensors", base="sd-1", rank=400).read_bytes()


@pytest.fixture
def hub_ws(ws, hub, big_lora, monkeypatch):  # noqa: F811
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    hub.add_repo(REPO, {FILE: big_lora})
    ws.write_manifest("m.yaml", f"""
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {{name: team}}
        spec:
          models:
            - {{name: big, source: '{REPO}::{FILE}'}}
        """)
    ws.hub = hub
    return ws


def installed(ws) -> Path:
    (path,) = (ws.models_dir / "sd-1" / "lora").glob("big.safetensors")
    return path


def test_apply_rides_out_resets_and_server_errors(hub_ws, big_lora, monkeypatch):
    ws = hub_ws
    monkeypatch.setenv("RECONCILER_DOWNLOAD_RETRIES", "6")
    route = ws.hub.file_route(REPO, FILE)
    route.reset_after, route.reset_times = len(big_lora) // 3, 2
    route.fail_statuses = [503, 429]
    route.retry_after = "0"
    result = ws.apply()
    assert result.exit_code == 0, result.output
    assert hashlib.sha256(installed(ws).read_bytes()).hexdigest() == hashlib.sha256(big_lora).hexdigest()
    assert route.reset_times == 0 and route.fail_statuses == [], "every fault was served and survived"
    sent = ws.hub.server.bytes_sent_for(f"/{REPO}/resolve/{ws.hub.head(REPO)}/{FILE}")
    assert sent < 1.6 * len(big_lora), f"resumed with Range instead of starting over ({sent} bytes sent)"


def test_a_killed_apply_resumes_where_it_stopped(hub_ws, big_lora):
    ws = hub_ws
    route = ws.hub.file_route(REPO, FILE)
    route.rate = len(big_lora) // 3  # about 3 s for the whole file
    env = {**os.environ, "HF_ENDPOINT": ws.hub.endpoint, "RECONCILER_CONNECTIONS_PER_FILE": "1"}
    cmd = [sys.executable, "-m", "reconciler.cli", "--models-dir", str(ws.models_dir), "apply", "-y",
           str(ws.manifests)]
    proc = subprocess.Popen(cmd, cwd=ws.root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = f"/{REPO}/resolve/{ws.hub.head(REPO)}/{FILE}"
    deadline = time.monotonic() + 30
    while ws.hub.server.bytes_sent_for(path) < len(big_lora) * 2 // 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = ws.hub.server.bytes_sent_for(path)
    assert first < len(big_lora), "the kill came mid-download"
    assert not (ws.models_dir / "sd-1" / "lora").exists(), "no partial file where the model is expected"

    route.rate = None
    result = ws.cli("apply", "-y", str(ws.manifests))
    assert result.exit_code == 0, result.output
    second = ws.hub.server.bytes_sent_for(path) - first
    # resume state is saved at least every 0.5 s (a sixth of this file), so about half is left
    assert second < 0.6 * len(big_lora), f"the second apply fetched {second} of {len(big_lora)} bytes"
    assert installed(ws).read_bytes() == big_lora
