"""`warm: true`: apply loads the model through the ModelLoadService after its install, or when
its files changed since the last warm-up; a failed load fails that action alone; status
shows the last result, when, and its load time."""

from __future__ import annotations

import json
import os
import time

import pytest

from reconciler.testing.models import write_diffusers_pipeline, write_lora_kohya, write_main_checkpoint


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def manifest(ws, *entries: str) -> None:
    body = "\n".join(f"    - {e}" for e in entries)
    ws.write_manifest("m.yaml", f"""
        apiVersion: reconciler/v1
        kind: ModelSet
        metadata: {{name: studio}}
        spec:
          models:
        {body}
        """.replace("\n        ", "\n"))


def status(ws) -> dict:
    result = ws.cli("status", "-o", "json")
    assert result.exit_code == 0, result.output
    return {m["name"]: m for m in json.loads(result.stdout)["models"]}


def test_warm_after_install_then_nothing_to_do(ws, offline) -> None:
    write_diffusers_pipeline(ws.files / "pipe", base="sd-1")
    write_lora_kohya(ws.files / "lora.safetensors", base="sd-1")
    write_lora_kohya(ws.files / "cold.safetensors", base="sdxl")
    manifest(ws, "{name: pipe, source: ../files/pipe, warm: true}",
             "{name: lora, source: ../files/lora.safetensors, warm: true}",
             "{name: cold, source: ../files/cold.safetensors}")
    plan = ws.plan_json()
    warm = {a["name"]: a for a in plan["actions"] if a["action"] == "warm"}
    assert set(warm) == {"pipe", "lora"} and "installed by this apply" in warm["pipe"]["reason"]
    assert plan["summary"]["warm"] == 2
    text = ws.cli("plan", str(ws.manifests)).stdout
    assert "warm" in text and "studio/pipe" in text

    result = ws.apply()
    assert result.exit_code == 0, result.output
    models = status(ws)
    for name in ("pipe", "lora"):
        warm_state = models[name]["warm"]
        assert warm_state["state"] == "ok" and warm_state["load_time_s"] >= 0 and warm_state["error"] is None
        assert abs(time.time() - _epoch(warm_state["at"])) < 120
    assert models["cold"]["warm"] is None
    assert ws.cli("plan", "--detailed-exitcode", str(ws.manifests)).exit_code == 0
    table = ws.cli("status").stdout
    assert "warm" in table


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_changed_files_are_warmed_again(ws, offline) -> None:
    lora = write_lora_kohya(ws.files / "lora.safetensors", base="sd-1")
    manifest(ws, "{name: lora, source: ../files/lora.safetensors, warm: true}")
    assert ws.apply().exit_code == 0
    first = status(ws)["lora"]["warm"]
    write_lora_kohya(lora, base="sd-1", rank=2)
    os.utime(lora, ns=(time.time_ns(), time.time_ns() + 10**9))
    plan = ws.plan_json()
    assert [a["action"] for a in plan["actions"]] == ["replace", "warm"]
    assert ws.apply().exit_code == 0
    second = status(ws)["lora"]["warm"]
    assert second["state"] == "ok" and second["at"] >= first["at"] and not second["files_changed_since"]


def test_turning_warm_on_for_an_installed_model_warms_it(ws, offline) -> None:
    write_lora_kohya(ws.files / "lora.safetensors", base="sd-1")
    manifest(ws, "{name: lora, source: ../files/lora.safetensors}")
    assert ws.apply().exit_code == 0
    manifest(ws, "{name: lora, source: ../files/lora.safetensors, warm: true}")
    plan = ws.plan_json()
    warm = [a for a in plan["actions"] if a["action"] == "warm"]
    assert len(warm) == 1 and "never loaded" in warm[0]["reason"]
    assert ws.apply().exit_code == 0
    assert status(ws)["lora"]["warm"]["state"] == "ok"


def test_a_failed_warm_up_fails_alone_and_the_model_stays(ws, offline) -> None:
    # a probe-grade checkpoint: a real sd-1 header, but not every weight a loader needs
    write_main_checkpoint(ws.files / "sd.safetensors", base="sd-1")
    write_lora_kohya(ws.files / "lora.safetensors", base="sd-1")
    manifest(ws, "{name: sd, source: ../files/sd.safetensors, warm: true}",
             "{name: lora, source: ../files/lora.safetensors, warm: true}")
    result = ws.apply()
    assert result.exit_code == 1
    assert "sd" in result.output and "could not" in result.output.lower()
    models = status(ws)
    assert models["sd"]["state"] == "in_sync", "the model stays registered and installed"
    assert models["sd"]["warm"]["state"] == "failed" and "sd" in models["sd"]["warm"]["error"]
    assert models["lora"]["warm"]["state"] == "ok"
    assert "warm failed" in ws.cli("status").stdout
    plan = ws.plan_json()
    (again,) = [a for a in plan["actions"] if a["action"] == "warm"]
    assert again["name"] == "sd" and "the last warm-up failed" in again["reason"]
