"""`reconciler gc`: leftovers go, resumable partial downloads stay unless --all."""

from __future__ import annotations

from filelock import FileLock


def test_gc_removes_leftovers_and_keeps_resumable_partials(ws):
    tmp = ws.models_dir / ".reconciler" / "tmp"
    (tmp / "stage-abc").mkdir(parents=True)
    (tmp / "stage-abc" / "x.safetensors").write_bytes(b"x" * 1000)
    (tmp / "old-def.safetensors").write_bytes(b"y" * 500)
    (tmp / "dl-0123").mkdir()
    (tmp / "dl-0123" / "unet.safetensors.part").write_bytes(b"z" * 700)
    keep = ws.models_dir / "sd-1" / "main" / "kept.safetensors"
    keep.parent.mkdir(parents=True)
    keep.write_bytes(b"model")

    result = ws.cli("gc")
    assert result.exit_code == 0, result.output
    assert "Removed 2 item(s), 1.5 KiB freed" in result.stdout
    assert not (tmp / "stage-abc").exists() and not (tmp / "old-def.safetensors").exists()
    assert (tmp / "dl-0123" / "unet.safetensors.part").exists(), "a partial download that can resume stays"
    assert "--all" in result.stdout

    assert ws.cli("gc", "--all").exit_code == 0
    assert not (tmp / "dl-0123").exists()
    assert keep.read_bytes() == b"model", "gc never touches installed models"


def test_gc_waits_for_a_running_apply(ws, monkeypatch):
    monkeypatch.setenv("RECONCILER_APPLY_LOCK_TIMEOUT", "0.2")
    state = ws.models_dir / ".reconciler"
    (state / "tmp" / "stage-1").mkdir(parents=True)
    with FileLock(str(state / "apply.lock")):
        result = ws.cli("gc")
    assert result.exit_code == 1 and "another apply holds" in result.stderr
    assert (state / "tmp" / "stage-1").exists()


def test_gc_on_a_fresh_dir_is_a_no_op(ws):
    result = ws.cli("gc")
    assert result.exit_code == 0 and "Removed 0 item(s)" in result.stdout
    assert not ws.models_dir.exists(), "gc creates nothing"
