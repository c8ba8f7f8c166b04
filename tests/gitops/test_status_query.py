"""`status NAME`, the status filters, and shell completion of model and set names."""

from __future__ import annotations

import json

from click.shell_completion import ShellComplete

from reconciler.cli import main as cli_main
from reconciler.testing.models import write_lora_kohya, write_vae_checkpoint

MANIFEST = """\
apiVersion: reconciler/v1
kind: ModelSet
metadata:
  name: studio
spec:
  models:
    - name: house-vae
      source: ../files/vae.safetensors
      type: vae
      tags: [house]
    - name: style-lora
      source: ../files/lora.safetensors
      tags: [house, style]
"""


def _installed(ws) -> None:
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    write_lora_kohya(ws.files / "lora.safetensors", base="sd-1")
    ws.write_manifest("studio.yaml", MANIFEST)
    assert ws.apply().exit_code == 0


def _names(ws, *args: str) -> list[str]:
    result = ws.cli("status", "-o", "json", *args)
    assert result.exit_code == 0, result.output
    return [m["name"] for m in json.loads(result.stdout)["models"]]


def test_filters(ws) -> None:
    _installed(ws)
    assert _names(ws) == ["house-vae", "style-lora"]
    assert _names(ws, "--tag", "house") == ["house-vae", "style-lora"]
    assert _names(ws, "--tag", "house", "--tag", "style") == ["style-lora"]
    assert _names(ws, "--type", "vae") == ["house-vae"]
    assert _names(ws, "--base", "sdxl") == []
    assert _names(ws, "--set", "studio", "--state", "in_sync") == ["house-vae", "style-lora"]
    (ws.models_dir / "sd-1" / "vae" / "house-vae.safetensors").unlink()
    assert _names(ws, "--state", "missing") == ["house-vae"]
    assert "No registered model matches the filters." in ws.cli("status", "--set", "other").stdout


def test_one_model_in_detail(ws) -> None:
    _installed(ws)
    detail = json.loads(ws.cli("status", "style-lora", "-o", "json").stdout)["models"][0]
    assert detail["state"] == "in_sync" and detail["record"]["managed_by"] == "studio"
    assert detail["record"]["tags"] == ["house", "style"]
    [f] = detail["files"]
    assert f["path"] == "sd-1/lora/style-lora.safetensors" and f["size"] > 0 and len(f["sha256"]) == 64
    assert detail["metadata"] is None and detail["warm"] is None and detail["views"] == []
    text = ws.cli("status", "style-lora").stdout
    assert "managed_by:" in text and "sha256 " + f["sha256"] in text and "last warm-up: -" in text
    missing = ws.cli("status", "nope")
    assert missing.exit_code == 1 and missing.stderr == "Error: no registered model named 'nope'\n"


def _complete(ws, args: list[str], incomplete: str) -> list[str]:
    comp = ShellComplete(cli_main, {}, "reconciler", "_RECONCILER_COMPLETE")
    return [c.value for c in comp.get_completions(["--models-dir", str(ws.models_dir), *args], incomplete)]


def test_completion_of_commands_options_models_and_sets(ws) -> None:
    _installed(ws)
    assert "status" in _complete(ws, [], "st")
    assert {"fmt", "plan", "apply", "lock"} <= set(_complete(ws, [], ""))
    assert "--tag" in _complete(ws, ["status"], "--t")
    assert _complete(ws, ["status"], "style") == ["style-lora"]
    assert _complete(ws, ["status", "--set"], "st") == ["studio"]
    assert _complete(ws, ["status", "--state"], "in") == ["in_sync"]


def test_completion_without_a_store_is_empty(ws) -> None:
    assert _complete(ws, ["status"], "") == []
