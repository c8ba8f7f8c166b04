"""Every bad input of issue 2: one-line error naming the place, exit 1, nothing changed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.testing.models import write_main_checkpoint, write_vae_checkpoint

GOOD = """\
apiVersion: reconciler/v1
kind: ModelSet
metadata: {name: studio}
spec:
  models:
    - name: base15
      source: ../files/sd15.safetensors
"""


@pytest.fixture
def installed(ws):
    write_main_checkpoint(ws.files / "sd15.safetensors", base="sd-1")
    write_vae_checkpoint(ws.files / "vae.safetensors", base="sd-1")
    ws.write_manifest("good.yaml", GOOD)
    assert ws.apply().exit_code == 0
    return ws


def assert_refused(ws, result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got: {result.stderr!r}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in {lines[0]!r}"
    assert "Traceback" not in result.output


CASES = {
    "malformed_yaml": ("spec:\n  models: [\n    - name: x\n", ["bad.yaml:"]),
    "wrong_api_version": (GOOD.replace("reconciler/v1", "reconciler/v9"), ["bad.yaml:1:", "apiVersion"]),
    "wrong_kind": (GOOD.replace("kind: ModelSet", "kind: ModelGroup"), ["bad.yaml:2:", "kind"]),
    "unknown_field": (GOOD + "      sha265: abc\n", ["bad.yaml:8:", "sha265"]),
    "missing_source": (GOOD.replace("      source: ../files/sd15.safetensors\n", ""), ["bad.yaml:6:", "source"]),
    "empty_source": (GOOD.replace("../files/sd15.safetensors", "''"), ["bad.yaml:7:", "source"]),
    "nonexistent_local_source": (GOOD.replace("sd15.safetensors", "nope.safetensors"), ["bad.yaml:7:", "nope.safetensors"]),
    "duplicate_names": (GOOD + "    - name: base15\n      source: ../files/vae.safetensors\n", ["bad.yaml:8:", "base15"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "plan", "apply"])
def test_bad_manifest(installed, case, command):
    ws = installed
    (ws.manifests / "good.yaml").unlink()
    text, needles = CASES[case]
    ws.write_manifest("bad.yaml", text)
    before = ws.snapshot()
    args = [command, "-y", str(ws.manifests)] if command == "apply" else [command, str(ws.manifests)]
    result = ws.cli(*args)
    assert_refused(ws, result, *needles)
    assert ws.snapshot() == before


def test_two_sets_with_one_name(installed):
    ws = installed
    ws.write_manifest("second.yaml", GOOD.replace("base15", "other").replace("sd15", "vae"))
    before = ws.snapshot()
    result = ws.cli("apply", "-y", str(ws.manifests))
    assert_refused(ws, result, "second.yaml", "good.yaml", "studio")
    assert ws.snapshot() == before


def test_models_dir_not_writable(ws):
    if os.geteuid() == 0:
        # root ignores permission bits: make the models dir's parent a file instead
        blocker = ws.root / "blocker"
        blocker.write_text("not a folder")
        models = blocker / "models"
    else:
        ro = ws.root / "ro"
        ro.mkdir(mode=0o500)
        models = ro / "models"
    write_main_checkpoint(ws.files / "sd15.safetensors", base="sd-1")
    ws.write_manifest("good.yaml", GOOD)
    result = ws.cli("apply", "-y", str(ws.manifests), models_dir=models)
    assert_refused(ws, result, "models dir", str(models))


def test_db_of_the_wrong_kind(installed):
    ws = installed
    fake = ws.root / "records.db"
    fake.write_text("models: {}\n")
    before = ws.snapshot()
    result = ws.cli("--db", str(fake), "apply", "-y", str(ws.manifests))
    assert_refused(ws, result, str(fake))
    assert fake.read_text() == "models: {}\n"
    assert ws.snapshot() == before


def test_stale_saved_plan(installed):
    ws = installed
    planfile = ws.root / "p.json"
    ws.write_manifest("good.yaml", GOOD + "      description: new\n")
    assert ws.cli("plan", "--out", str(planfile), str(ws.manifests)).exit_code == 0
    ws.write_manifest("good.yaml", GOOD + "      description: newer\n")
    assert ws.apply().exit_code == 0
    before = ws.snapshot()
    result = ws.cli("apply", "-y", str(planfile))
    assert_refused(ws, result, "stale")
    assert ws.snapshot() == before


def test_apply_without_yes_and_without_tty(installed):
    ws = installed
    ws.write_manifest("good.yaml", GOOD + "      description: new\n")
    before = ws.snapshot()
    # CliRunner's stdin is not a TTY
    result = ws.cli("apply", str(ws.manifests))
    assert_refused(ws, result, "-y")
    assert ws.snapshot() == before


def test_cli_imports_no_torch():
    code = (
        "import sys, reconciler.cli, reconciler.reconcile.api, reconciler.reconcile.planner;"
        "bad = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_plan_run_imports_no_torch(installed, monkeypatch):
    ws = installed
    bin_dir = Path(sys.executable).parent
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", str(bin_dir / "reconciler"), "--models-dir", str(ws.models_dir),
         "plan", str(ws.manifests)],
        capture_output=True, text=True, cwd=ws.root,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if "|" in line}
    assert not {"torch", "diffusers", "transformers"} & imported


def test_interactive_apply_asks_and_only_yes_proceeds(ws, monkeypatch):
    write_main_checkpoint(ws.files / "sd15.safetensors", base="sd-1")
    ws.write_manifest("good.yaml", GOOD)
    import reconciler.cli as cli_mod

    monkeypatch.setattr(cli_mod, "stdin_is_terminal", lambda: True)
    refused = ws.cli("apply", "--locked", str(ws.manifests), input="yes\n")
    assert refused.exit_code == 1 and "does not exist" in refused.stderr
    assert "Do you want" not in refused.stdout, "--locked refuses before showing a plan"
    no = ws.cli("apply", str(ws.manifests), input="no\n")
    assert no.exit_code == 1 and "cancelled" in no.stderr and not ws.db_path.exists()
    yes = ws.cli("apply", str(ws.manifests), input="yes\n")
    assert yes.exit_code == 0, yes.output
    assert "Do you want to perform these actions?" in yes.stdout
    assert (ws.models_dir / "sd-1" / "main" / "base15.safetensors").exists()


def test_saved_plan_from_another_store_is_refused(installed):
    ws = installed
    planfile = ws.root / "p.json"
    ws.write_manifest("good.yaml", GOOD + "      description: new\n")
    assert ws.cli("plan", "--out", str(planfile), str(ws.manifests)).exit_code == 0
    other = ws.root / "other.db"  # a new store: its own lineage
    before = ws.snapshot()
    result = ws.cli("--db", str(other), "apply", "-y", str(planfile))
    assert_refused(ws, result, "another record store")
    assert ws.snapshot() == before
