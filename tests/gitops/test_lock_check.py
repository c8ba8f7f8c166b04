"""`lock --check`: the CI lock check, `apply --locked`'s refusal without applying or the network."""

from __future__ import annotations

from reconciler.reconcile.api import read_manifests, remote_entries
from reconciler.reconcile.lockfile import LockedModel, LockFile, write_lock
from reconciler.settings import load_settings

REMOTE = """\
apiVersion: reconciler/v1
kind: ModelSet
metadata:
  name: studio
spec:
  models:
    - name: sdxl-vae
      source: stabilityai/sdxl-vae
      type: vae
"""


def _lock_as_declared(ws) -> None:
    settings = load_settings(environ={})
    manifest = read_manifests((), settings)
    models = {
        entry.name: LockedModel(set=set_name, source=str(entry.model_source), source_digest=entry.source_digest(),
                                revision="a" * 40, single_file=False, name_hint=entry.name, files=[])
        for set_name, entry in remote_entries(manifest)
    }
    write_lock(ws.root / "reconciler.lock", LockFile(models=models))


def test_no_remote_models_and_no_lock_is_up_to_date(ws) -> None:
    (ws.files / "a.safetensors").write_bytes(b"x")
    ws.write_manifest("a.yaml", "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: a}\n"
                                "spec:\n  models:\n    - {name: a, source: ../files/a.safetensors}\n")
    result = ws.cli("lock", "--check")
    assert result.exit_code == 0, result.output
    assert "up to date: 0 remote model(s)" in result.stdout


def test_missing_lock_fails(ws) -> None:
    ws.write_manifest("studio.yaml", REMOTE)
    result = ws.cli("lock", "--check")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: lock --check: lock file reconciler.lock does not exist")


def test_fresh_then_stale_lock(ws) -> None:
    path = ws.write_manifest("studio.yaml", REMOTE)
    _lock_as_declared(ws)
    before = (ws.root / "reconciler.lock").read_bytes()
    fresh = ws.cli("lock", "--check")
    assert fresh.exit_code == 0, fresh.output
    assert "1 remote model(s) locked as declared" in fresh.stdout
    path.write_text(REMOTE.replace("stabilityai/sdxl-vae", "stabilityai/sdxl-vae:fp16"))
    stale = ws.cli("lock", "--check")
    assert stale.exit_code == 1
    assert "'sdxl-vae' changed since the lock" in stale.stderr and "run `reconciler lock`" in stale.stderr
    assert (ws.root / "reconciler.lock").read_bytes() == before  # --check writes nothing
    assert not ws.models_dir.exists() or not any(ws.models_dir.iterdir())
