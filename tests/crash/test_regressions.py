"""In-process regression tests for the crash-consistency bugs the kill tests found.

Each one builds the state a SIGKILL leaves at one step of an apply, or checks the order of
two steps, without a subprocess (see ``test_kill_points.py`` for the same windows hit by a
real SIGKILL).
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from reconciler.configs import FileState
from reconciler.install.service import ModelInstallService
from reconciler.settings import load_settings
from reconciler.store.base import ModelRecordServiceBase
from reconciler.store.sql import ModelRecordServiceSQL
from reconciler.store.yamlfile import ModelRecordServiceFile
from reconciler.testing.models import write_lora_kohya, write_textual_inversion
from tests.hub.conftest import hub  # noqa: F401 - fixture

STORES = {"sqlite": "records.db", "yaml": "records.yaml"}


def _manifest(ws, *entries: str) -> None:
    body = "\n".join(f"    - {e}" for e in entries) or "    []"
    ws.write_manifest("m.yaml", "apiVersion: reconciler/v1\nkind: ModelSet\nmetadata: {name: team}\n"
                                "spec:\n  prune: true\n  models:\n" + body + "\n")


def _db_args(ws, store: str) -> tuple[str, ...]:
    return ("--db", str(ws.root / STORES[store]))


def _open(ws, store: str) -> ModelRecordServiceBase:
    return ModelRecordServiceBase.from_db_file(ws.root / STORES[store])


def _tmp_left(ws) -> list[str]:
    tmp = ws.models_dir / ".reconciler" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def _apply(ws, store: str):
    return ws.cli(*_db_args(ws, store), "apply", "-y", str(ws.manifests))


# --- a record and its file states are one write --------------------------------------------------

@pytest.mark.parametrize("store", ["sqlite", "yaml"])
def test_a_record_and_its_file_states_are_one_store_write(tmp_path: Path, store: str) -> None:
    """A kill between "record added" and "file states set" left a record without file
    states: plan called it in sync for ever, and drift in it was never seen."""
    settings = load_settings(models_dir=tmp_path / "models", environ={})
    records = ModelRecordServiceBase.from_db_file(tmp_path / STORES[store])
    installer = ModelInstallService(app_config=settings, record_store=records)
    installer.prepare()
    src = write_lora_kohya(tmp_path / "lora.safetensors", base="sd-1")
    before = records.serial
    key = installer.install_path(src, {"name": "lora"})
    assert records.serial == before + 1, "the record and its file states are written in one transaction"
    (state,) = records.get_files(key)
    assert state.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()

    (installer.models_dir / records.get_model(key).path).write_bytes(b"changed")
    before = records.serial
    installer.refresh_files(key)
    assert records.serial == before + 1, "refreshed file states and the hash are one write"
    assert records.get_files(key)[0].size == len(b"changed")
    records.close()


def test_sql_record_and_files_roll_back_together(tmp_path: Path, monkeypatch) -> None:
    store = ModelRecordServiceSQL(tmp_path / "records.db")
    state = FileState(path="a", size=1, mtime_ns=1, imohash="x")
    config = {"name": "m", "path": "sd-1/lora/m.safetensors", "type": "lora", "format": "lycoris",
              "base": "sd-1", "hash": "h", "source": "s"}

    def fail(*_args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(ModelRecordServiceSQL, "_write_files", staticmethod(fail))
    serial = store.serial
    with pytest.raises(sqlite3.OperationalError):
        store.add_model("k1", config, files=[state])
    assert not store.exists("k1") and store.serial == serial, "no record without its file states"
    monkeypatch.undo()
    store.add_model("k1", config, files=[state])
    assert store.get_files("k1") == [state]
    store.close()


def test_yaml_store_removes_the_temp_file_of_a_killed_writer(tmp_path: Path) -> None:
    """A writer killed between writing its temp file and renaming it left `.records.yaml.*.tmp`
    beside the store for ever."""
    path = tmp_path / "records.yaml"
    ModelRecordServiceFile(path).close()
    stale = tmp_path / ".records.yaml.k1ll3d.tmp"
    stale.write_bytes(b"half a store")
    ModelRecordServiceFile(path).close()
    assert not stale.exists(), "opening the store clears a dead writer's temp file"
    store = ModelRecordServiceFile(path)
    stale.write_bytes(b"half a store")
    store.add_model("k1", {"name": "m", "path": "m.safetensors", "type": "lora", "format": "lycoris",
                           "base": "sd-1", "hash": "h", "source": "s"})
    assert not stale.exists(), "a write clears it too"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.yaml", "records.yaml.lock"]
    store.close()


# --- a remote model renamed into place before its record was written --------------------------------

@pytest.mark.parametrize("store", ["sqlite", "yaml"])
def test_files_a_killed_apply_renamed_in_without_a_record_are_taken_over(ws, hub, monkeypatch,  # noqa: F811
                                                                        store: str) -> None:
    """The next apply refused ("already exists and no record owns it") for ever; files with
    other bytes at that path are still the user's and are never overwritten."""
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    lora = write_lora_kohya(ws.root / "u.safetensors", base="sd-1", rank=8).read_bytes()
    hub.server.add_file("/files/u.safetensors", data=lora, etag='"u1"')
    _manifest(ws, f"{{name: u, source: '{hub.url('/files/u.safetensors')}'}}")
    assert _apply(ws, store).exit_code == 0
    with _open(ws, store) as records:
        (rec,) = records.all_models()
        records.del_model(rec.key)  # what a kill right after the rename leaves: files, no record
    dest = ws.models_dir / rec.path

    result = _apply(ws, store)
    assert result.exit_code == 0, result.output
    with _open(ws, store) as records:
        (again,) = records.all_models()
        assert again.path == rec.path and records.get_files(again.key)[0].size == len(lora)
    assert dest.read_bytes() == lora and _tmp_left(ws) == []

    with _open(ws, store) as records:
        records.del_model(again.key)
    dest.write_bytes(b"the user's own bytes")
    result = _apply(ws, store)
    assert result.exit_code == 1 and "no record owns it" in result.output
    assert dest.read_bytes() == b"the user's own bytes"


# --- removing files: out of the models dir before the record lets go of them ---------------------

def _watch(monkeypatch, cls: type, method: str, probe) -> list:
    seen: list = []
    original = getattr(cls, method)

    def wrapper(self, *args, **kwargs):
        seen.append(probe(args, kwargs))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, wrapper)
    return seen


STORE_CLASS = {"sqlite": ModelRecordServiceSQL, "yaml": ModelRecordServiceFile}


@pytest.mark.parametrize("store", ["sqlite", "yaml"])
def test_prune_moves_the_files_out_before_deleting_the_record(ws, monkeypatch, store: str) -> None:
    """A kill between "record deleted" and "files removed" left the files in the models dir,
    owned by no record, for ever."""
    write_lora_kohya(ws.files / "a.safetensors", base="sd-1")
    _manifest(ws, "{name: a, source: ../files/a.safetensors}")
    assert _apply(ws, store).exit_code == 0
    installed = ws.models_dir / "sd-1" / "lora" / "a.safetensors"
    assert installed.exists()
    seen = _watch(monkeypatch, STORE_CLASS[store], "del_model", lambda a, k: installed.exists())
    _manifest(ws)
    result = ws.cli(*_db_args(ws, store), "apply", "-y", "--allow-empty", str(ws.manifests))
    assert result.exit_code == 0, result.output
    assert seen == [False], "the files left the models dir (for tmp/) before the record was deleted"
    assert not installed.exists() and _tmp_left(ws) == []


@pytest.mark.parametrize("store", ["sqlite", "yaml"])
def test_a_replace_that_moves_the_model_moves_old_files_out_before_the_record(ws, monkeypatch,
                                                                             store: str) -> None:
    """A replace to a new destination (another base) removed the old files after the record
    moved on: a kill in between left them in the models dir, owned by no record."""
    write_textual_inversion(ws.files / "e1.safetensors", base="sd-1")
    write_textual_inversion(ws.files / "e2.safetensors", base="sd-2")
    _manifest(ws, "{name: e, source: ../files/e1.safetensors}")
    assert _apply(ws, store).exit_code == 0
    old = ws.models_dir / "sd-1" / "embedding" / "e.safetensors"
    assert old.exists()
    seen = _watch(monkeypatch, STORE_CLASS[store], "update_model",
                  lambda a, k: old.exists() if k.get("files") is not None else None)
    _manifest(ws, "{name: e, source: ../files/e2.safetensors}")
    result = _apply(ws, store)
    assert result.exit_code == 0, result.output
    assert [s for s in seen if s is not None] == [False], "old files left before the record moved"
    assert not old.exists() and (ws.models_dir / "sd-2" / "embedding" / "e.safetensors").exists()
    assert _tmp_left(ws) == [] and not (ws.models_dir / "sd-1").exists()


@pytest.mark.parametrize("store", ["sqlite", "yaml"])
def test_switching_to_inplace_moves_the_old_copy_out_before_the_record(ws, monkeypatch, store: str) -> None:
    """Re-registering a copied model in place deleted the record, registered the new one,
    and only then removed the copy: a kill in between stranded the copy."""
    write_lora_kohya(ws.files / "a.safetensors", base="sd-1")
    write_lora_kohya(ws.files / "b.safetensors", base="sd-1", rank=2)
    _manifest(ws, "{name: a, source: ../files/a.safetensors}")
    assert _apply(ws, store).exit_code == 0
    copy = ws.models_dir / "sd-1" / "lora" / "a.safetensors"
    seen = _watch(monkeypatch, STORE_CLASS[store], "del_model", lambda a, k: copy.exists())
    _manifest(ws, "{name: a, source: ../files/b.safetensors, inplace: true}")
    result = _apply(ws, store)
    assert result.exit_code == 0, result.output
    assert seen == [False] and not copy.exists() and _tmp_left(ws) == []
    with _open(ws, store) as records:
        (rec,) = records.all_models()
        assert rec.inplace and Path(rec.path) == (ws.files / "b.safetensors").absolute()


# --- gc ------------------------------------------------------------------------------------------

def test_gc_removes_download_staging_that_holds_nothing_to_resume(ws) -> None:
    """An apply killed after it moved a download into place (or recorded it) left an empty
    `dl-*` staging folder, which gc kept as "resumable" for ever."""
    tmp = ws.models_dir / ".reconciler" / "tmp"
    (tmp / "dl-empty").mkdir(parents=True)
    (tmp / "dl-done").mkdir()
    (tmp / "dl-done" / "model.safetensors").write_bytes(b"complete")
    (tmp / "dl-partial" / "unet").mkdir(parents=True)
    (tmp / "dl-partial" / "unet" / "w.safetensors.part").write_bytes(b"half")
    (tmp / "dl-partial" / "unet" / "w.safetensors.part.json").write_text("{}")
    result = ws.cli("gc")
    assert result.exit_code == 0, result.output
    assert _tmp_left(ws) == ["dl-partial"], "only a folder with a partial download stays"
    assert ws.cli("gc", "--all").exit_code == 0 and _tmp_left(ws) == []
