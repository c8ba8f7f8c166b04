"""The record store, run against both backends (SQLite and YAML file)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.configs import (
    FileState,
    LoRALyCORISConfig,
    MainCheckpointConfig,
    MainDiffusersConfig,
    VAECheckpointConfig,
)
from reconciler.errors import (
    DuplicateModelException,
    InvalidModelConfigException,
    StoreFormatError,
    UnknownModelException,
)
from reconciler.store import (
    ModelRecordServiceBase,
    ModelRecordServiceFile,
    ModelRecordServiceSQL,
    migrations,
    open_record_store,
)
from reconciler.store._yamlio import load as load_yaml
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType
from tests.store import _store_worker

EXT = {"sql": "db", "yaml": "yaml"}


def cfg(name: str = "m1", **over: Any) -> dict[str, Any]:
    """A tiny main-checkpoint config dict; ``over`` replaces fields."""
    data: dict[str, Any] = {
        "name": name,
        "type": "main",
        "format": "checkpoint",
        "base": "sd-1",
        "path": f"sd-1/main/{name}.safetensors",
    }
    data.update(over)
    return data


def fs(path: str = "", size: int = 1, sha256: str | None = None) -> FileState:
    return FileState(path=path, size=size, mtime_ns=size * 1000, imohash=f"imo{size}", sha256=sha256)


@pytest.fixture(params=["sql", "yaml"])
def store_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return tmp_path / "state" / f"records.{EXT[request.param]}"


@pytest.fixture
def store(store_path: Path) -> Any:
    s = open_record_store(store_path)
    yield s
    s.close()


# --- add / get / update / delete ---------------------------------------------------------


def test_backend_is_picked_by_extension(store: ModelRecordServiceBase, store_path: Path) -> None:
    expected = ModelRecordServiceSQL if store_path.suffix == ".db" else ModelRecordServiceFile
    assert type(store) is expected
    assert store_path.is_file()  # created, parent dir included


def test_add_dict_returns_validated_record_under_given_key(store: ModelRecordServiceBase) -> None:
    rec = store.add_model("k1", cfg(key="ignored", tags=["x"]))
    assert isinstance(rec, MainCheckpointConfig)
    assert rec.key == "k1" and rec.type is ModelType.Main and rec.base is BaseModelType.StableDiffusion1
    got = store.get_model("k1")
    assert isinstance(got, MainCheckpointConfig)
    assert got == rec
    assert store.exists("k1") and not store.exists("nope")


def test_add_object_and_seed_aliases(store: ModelRecordServiceBase) -> None:
    obj = MainDiffusersConfig(name="d", type="main", base="sdxl", path="sdxl/main/d")
    rec = store.add_model("k2", obj)
    assert isinstance(rec, MainDiffusersConfig) and rec.key == "k2" and obj.key != "k2"
    aliased = store.add_model(
        "k3", {"name": "v", "model_type": "vae", "model_format": "checkpoint", "base_model": "sd-2", "path": "v"}
    )
    assert isinstance(aliased, VAECheckpointConfig) and aliased.base is BaseModelType.StableDiffusion2
    assert [m.key for m in store.all_models()] == ["k2", "k3"]


def test_add_duplicates_and_invalid(store: ModelRecordServiceBase) -> None:
    store.add_model("k1", cfg("m1"))
    serial = store.serial
    with pytest.raises(DuplicateModelException):
        store.add_model("k1", cfg("other"))
    with pytest.raises(DuplicateModelException, match="k1"):
        store.add_model("k2", cfg("m2", path="sd-1/main/m1.safetensors"))
    with pytest.raises(InvalidModelConfigException):
        store.add_model("k3", {"type": "main", "format": "checkpoint", "base": "sd-1", "path": "p"})  # no name
    with pytest.raises(InvalidModelConfigException):
        store.add_model("k4", cfg("m4", type="vae", format="lycoris"))  # no such type.format
    assert store.serial == serial  # failed writes do not count
    assert [m.key for m in store.all_models()] == ["k1"]


def test_get_update_delete_unknown(store: ModelRecordServiceBase) -> None:
    with pytest.raises(UnknownModelException):
        store.get_model("nope")
    with pytest.raises(UnknownModelException):
        store.update_model("nope", {"description": "x"})
    with pytest.raises(UnknownModelException):
        store.del_model("nope")
    assert store.serial == 0


def test_sparse_update_merges(store: ModelRecordServiceBase) -> None:
    store.add_model("k1", cfg("m1", description="old", tags=["a"], variant="inpaint"))
    rec = store.update_model("k1", {"description": "new", "hash": "h1"})
    assert rec.description == "new" and rec.hash == "h1" and rec.variant.value == "inpaint" and rec.tags == ["a"]
    assert store.get_model("k1") == rec
    assert store.search_by_hash("h1") == [rec]
    rec = store.update_model("k1", {"base_model": "sdxl"})  # seed alias in a sparse update
    assert rec.base is BaseModelType.StableDiffusionXL
    assert store.search_by_attr(base_model="sd-1") == []


def test_update_changes_class_when_type_changes(store: ModelRecordServiceBase) -> None:
    store.add_model("k1", cfg("m1", variant="inpaint", config="v1.yaml"))
    rec = store.update_model("k1", {"type": "lora", "format": "lycoris"})
    assert isinstance(rec, LoRALyCORISConfig)
    assert not hasattr(rec, "variant")  # main-only fields dropped
    assert isinstance(store.get_model("k1"), LoRALyCORISConfig)
    assert [m.key for m in store.search_by_attr(model_type=ModelType.LoRA)] == ["k1"]
    assert store.search_by_attr(model_type="main") == []


def test_update_with_object_replaces_record(store: ModelRecordServiceBase) -> None:
    store.add_model("k1", cfg("m1", description="old", tags=["a"]))
    new = VAECheckpointConfig(key="other", name="v", base="sd-2", path="sd-2/vae/v.safetensors")
    rec = store.update_model("k1", new)
    assert isinstance(rec, VAECheckpointConfig) and rec.key == "k1" and rec.description is None
    assert store.search_by_tag(["a"]) == []
    assert store.search_by_path("sd-1/main/m1.safetensors") == []


def test_update_errors_leave_record_alone(store: ModelRecordServiceBase) -> None:
    store.add_model("k1", cfg("m1"))
    store.add_model("k2", cfg("m2"))
    serial = store.serial
    with pytest.raises(DuplicateModelException):
        store.update_model("k2", {"path": "sd-1/main/m1.safetensors"})
    with pytest.raises(InvalidModelConfigException):
        store.update_model("k2", {"variant": "nonsense"})
    with pytest.raises(InvalidModelConfigException):
        store.update_model("k2", {"type": "vae", "format": "lycoris"})
    with pytest.raises(InvalidModelConfigException):
        store.update_model("k2", {"key": "k9"})
    assert store.serial == serial
    assert store.get_model("k2").path == "sd-1/main/m2.safetensors"


def test_del_model(store: ModelRecordServiceBase) -> None:
    store.add_model("k1", cfg("m1", tags=["t"]))
    store.add_model("k2", cfg("m2"))
    store.del_model("k1")
    assert not store.exists("k1")
    assert [m.key for m in store.all_models()] == ["k2"]
    assert store.search_by_tag(["t"]) == []
    store.add_model("k1", cfg("m1"))  # the path is free again
    assert store.exists("k1")


# --- searches ------------------------------------------------------------------------------


@pytest.fixture
def populated(store: ModelRecordServiceBase) -> ModelRecordServiceBase:
    store.add_model("a", cfg("alpha", tags=["sfw", "scenery"], hash="h-a"))
    store.add_model("b", cfg("alpha", base="sdxl", path="sdxl/main/alpha", tags=["sfw"], hash="h-b"))
    store.add_model("c", cfg("alpha", type="lora", format="lycoris", path="sd-1/lora/alpha", tags=["scenery"]))
    store.add_model("d", cfg("beta", format="diffusers", path="sd-1/main/beta", tags=["sfw", "scenery", "x"]))
    store.add_model("e", cfg("gamma", path="sd-1/main/gamma", hash="h-a"))
    return store


def keys(records: list[Any]) -> list[str]:
    return [r.key for r in records]


def test_search_by_path(populated: ModelRecordServiceBase) -> None:
    assert keys(populated.search_by_path("sdxl/main/alpha")) == ["b"]
    assert keys(populated.search_by_path(Path("sd-1/main/beta"))) == ["d"]
    assert populated.search_by_path("sd-1/main/beta/") == []  # plain string compare


def test_search_by_attr_and_name_combinations(populated: ModelRecordServiceBase) -> None:
    assert keys(populated.search_by_attr()) == ["a", "b", "c", "d", "e"]
    assert keys(populated.search_by_attr(model_name="alpha")) == ["a", "b", "c"]
    assert keys(populated.search_by_attr(model_name="alpha", base_model="sd-1")) == ["a", "c"]
    assert keys(populated.search_by_attr(model_name="alpha", base_model=BaseModelType.StableDiffusion1,
                                         model_type=ModelType.Main)) == ["a"]
    assert keys(populated.search_by_attr(model_format=ModelFormat.Diffusers)) == ["d"]
    assert keys(populated.search_by_attr(base_model="sd-1", model_type="main", model_format="checkpoint")) == ["a", "e"]
    assert keys(populated.search_by_attr(model_type="vae")) == []
    assert keys(populated.search_by_name()) == ["a", "b", "c", "d", "e"]
    assert keys(populated.search_by_name(name="alpha", type="lora")) == ["c"]
    assert keys(populated.search_by_name(base="sdxl")) == ["b"]
    assert keys(populated.search_by_name("beta", "sd-1", "main")) == ["d"]


def test_search_by_hash(populated: ModelRecordServiceBase) -> None:
    assert keys(populated.search_by_hash("h-a")) == ["a", "e"]
    assert populated.search_by_hash("nope") == []


def test_search_by_tag_needs_all_tags(populated: ModelRecordServiceBase) -> None:
    assert keys(populated.search_by_tag(["sfw"])) == ["a", "b", "d"]
    assert keys(populated.search_by_tag(["sfw", "scenery"])) == ["a", "d"]
    assert keys(populated.search_by_tag({"scenery", "x", "sfw"})) == ["d"]
    assert keys(populated.search_by_tag(["sfw", "sfw"])) == ["a", "b", "d"]
    assert keys(populated.search_by_tag("scenery")) == ["a", "c", "d"]  # a bare string is one tag
    assert populated.search_by_tag(["sfw", "nope"]) == []
    assert keys(populated.search_by_tag([])) == ["a", "b", "c", "d", "e"]


def test_model_info_by_name(populated: ModelRecordServiceBase) -> None:
    assert populated.model_info_by_name("alpha", "sdxl", "main").key == "b"
    assert populated.model_info_by_name("beta", BaseModelType.StableDiffusion1, ModelType.Main).key == "d"
    with pytest.raises(UnknownModelException):
        populated.model_info_by_name("alpha", "sd-2", "main")
    populated.add_model("f", cfg("alpha", path="elsewhere/alpha.safetensors"))
    with pytest.raises(DuplicateModelException, match="2 models"):
        populated.model_info_by_name("alpha", "sd-1", "main")


# --- identity: version, lineage, serial ----------------------------------------------------


def test_version_and_lineage_stable_across_reopen(store: ModelRecordServiceBase, store_path: Path,
                                                   tmp_path: Path) -> None:
    latest = str(migrations.latest_version()) if isinstance(store, ModelRecordServiceSQL) else "1"
    assert store.version() == latest
    lineage = store.lineage
    assert re.fullmatch(r"[0-9a-f]{32}", lineage), lineage
    store.add_model("k1", cfg())
    store.close()
    with open_record_store(store_path) as again:
        assert again.lineage == lineage
        assert again.version() == latest
    with open_record_store(tmp_path / f"other{store_path.suffix}") as other:
        assert other.lineage != lineage


def test_serial_counts_every_write_and_persists(store: ModelRecordServiceBase, store_path: Path) -> None:
    assert store.serial == 0
    store.add_model("k1", cfg("m1"))
    assert store.serial == 1
    store.update_model("k1", {"description": "d"})
    assert store.serial == 2
    store.set_files("k1", [fs()])
    assert store.serial == 3
    store.add_model("k2", cfg("m2"))
    store.del_model("k2")
    assert store.serial == 5
    with pytest.raises(UnknownModelException):
        store.set_files("nope", [fs()])
    assert store.serial == 5
    reader = open_record_store(store_path)  # another handle sees the current value
    assert reader.serial == 5
    store.update_model("k1", {"description": "e"})
    assert reader.serial == 6
    assert reader.get_model("k1").description == "e"
    reader.close()
    store.close()
    with open_record_store(store_path) as again:
        assert again.serial == 6


def test_enum_values_stored_as_strings(store: ModelRecordServiceBase, store_path: Path) -> None:
    store.add_model("k1", cfg())
    store.close()
    if store_path.suffix == ".db":
        with sqlite3.connect(store_path) as conn:
            row = conn.execute("SELECT type, base, format, config FROM models").fetchone()
        assert row[:3] == ("main", "sd-1", "checkpoint")
        assert json.loads(row[3])["variant"] == "normal"
    else:
        doc = load_yaml(store_path.read_text())
        assert doc["__metadata__"]["serial"] == 1
        rec = doc["models"]["k1"]
        assert (rec["type"], rec["base"], rec["format"], rec["variant"]) == ("main", "sd-1", "checkpoint", "normal")


# --- per-file states -----------------------------------------------------------------------


def test_files_round_trip_and_replace(store: ModelRecordServiceBase) -> None:
    store.add_model("k1", cfg("m1"))
    store.add_model("k2", cfg("m2"))
    assert store.get_files("k1") == []
    states = [fs("unet/model.safetensors", 10, sha256="ab" * 32), fs("model_index.json", 2)]
    store.set_files("k1", states)
    assert store.get_files("k1") == states  # order kept, sha256 optional
    store.set_files("k1", [fs("", 7)])
    assert store.get_files("k1") == [fs("", 7)]
    assert store.all_files() == {"k1": [fs("", 7)], "k2": []}
    store.set_files("k1", [])
    assert store.get_files("k1") == []
    with pytest.raises(UnknownModelException):
        store.set_files("nope", [fs()])
    with pytest.raises(UnknownModelException):
        store.get_files("nope")
    with pytest.raises(InvalidModelConfigException):
        store.set_files("k1", [fs("a", 1), fs("a", 2)])


def test_delete_cascades_to_files(store: ModelRecordServiceBase, store_path: Path) -> None:
    store.add_model("k1", cfg("m1", tags=["t"]))
    store.add_model("k2", cfg("m2"))
    store.set_files("k1", [fs("a"), fs("b", 2)])
    store.set_files("k2", [fs("c", 3)])
    store.del_model("k1")
    assert store.all_files() == {"k2": [fs("c", 3)]}
    store.add_model("k1", cfg("m1"))  # same key again: no stale file states
    assert store.get_files("k1") == []
    if store_path.suffix == ".db":
        with sqlite3.connect(store_path) as conn:
            assert conn.execute("SELECT COUNT(*) FROM model_files WHERE key = 'k1'").fetchone() == (0,)
            assert conn.execute("SELECT COUNT(*) FROM model_tags WHERE key = 'k1'").fetchone() == (0,)


def test_context_manager_closes(store_path: Path) -> None:
    with open_record_store(store_path) as s:
        s.add_model("k1", cfg())
    # each backend's own "closed" error
    closed = (sqlite3.ProgrammingError, "closed database") if store_path.suffix == ".db" else (
        ValueError, "record store is closed")
    with pytest.raises(closed[0], match=closed[1]):
        s.get_model("k1")


# --- concurrency ---------------------------------------------------------------------------


def test_threads_add_concurrently(store: ModelRecordServiceBase) -> None:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for n in range(8):
                store.add_model(f"t{t}n{n}", cfg(f"t{t}n{n}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(store.all_models()) == 64
    assert store.serial == 64


def test_two_processes_add_to_same_store(store_path: Path) -> None:
    open_record_store(store_path).close()  # created once, then shared
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=_store_worker.add_many, args=(str(store_path), p, 50, barrier)) for p in ("p", "q")]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with open_record_store(store_path) as s:
        assert len(s.all_models()) == 100
        assert {m.key for m in s.all_models()} == {f"{x}{n:03d}" for x in "pq" for n in range(50)}
        assert s.serial == 100


# --- opening: wrong kinds, migrations ------------------------------------------------------


def _assert_format_error(path: Path) -> None:
    with pytest.raises(StoreFormatError) as info:
        ModelRecordServiceBase.from_db_file(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert isinstance(info.value, AssertionError)  # as the seed documents


def _make_foreign_sqlite(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    conn.close()


@pytest.mark.parametrize("suffix", [".db", ".sqlite", ".sqlite3", ".yaml", ".yml", ".YAML"])
def test_from_db_file_creates_each_kind(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / "a" / "b" / f"records{suffix}"
    with ModelRecordServiceBase.from_db_file(path) as s:
        expected = ModelRecordServiceFile if "y" in suffix.lower() else ModelRecordServiceSQL
        assert type(s) is expected
        s.add_model("k1", cfg())
    with ModelRecordServiceBase.from_db_file(str(path)) as s:
        assert s.exists("k1")


def test_from_db_file_wrong_kinds(tmp_path: Path) -> None:
    yaml_in_db = tmp_path / "yaml.db"
    yaml_in_db.write_text("__metadata__: {version: '1', lineage: abc, serial: 0}\nmodels: {}\n")
    _assert_format_error(yaml_in_db)

    sqlite_as_yaml = tmp_path / "sqlite.yaml"
    open_record_store(tmp_path / "real.db").close()
    sqlite_as_yaml.write_bytes((tmp_path / "real.db").read_bytes())
    _assert_format_error(sqlite_as_yaml)

    no_header = tmp_path / "plain.yaml"
    no_header.write_text("models:\n  k1: {name: x}\n")
    _assert_format_error(no_header)

    not_yaml = tmp_path / "broken.yml"
    not_yaml.write_text("__metadata__: [unclosed\n  - : :\n")
    _assert_format_error(not_yaml)

    foreign = tmp_path / "foreign.sqlite"
    _make_foreign_sqlite(foreign)
    _assert_format_error(foreign)
    with sqlite3.connect(foreign) as conn:  # refused without being touched
        assert migrations.table_names(conn) == {"users"}
    conn.close()

    _assert_format_error(tmp_path / "records.json")
    _assert_format_error(tmp_path / "records")
    folder = tmp_path / "folder.db"
    folder.mkdir()
    _assert_format_error(folder)
    assert not (tmp_path / "records.json").exists()


def test_empty_file_is_initialised(tmp_path: Path) -> None:
    for name in ("empty.db", "empty.yaml"):
        (tmp_path / name).touch()
        with open_record_store(tmp_path / name) as s:
            assert s.serial == 0 and s.all_models() == []


def test_sql_migrates_a_v0_database(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a v0 store: version table only, nothing recorded
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    conn.close()
    with open_record_store(path) as s:
        assert s.version() == str(migrations.latest_version())
        s.add_model("k1", cfg())
        assert s.serial == 1 and len(s.lineage) == 32


def test_sql_runs_missing_steps_in_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "v1.db"
    with open_record_store(path) as s:
        s.add_model("k1", cfg())
        lineage = s.lineage

    def v2_add_column(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE models ADD COLUMN notes TEXT")

    def v3_fails(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("boom")

    shipped = list(migrations.MIGRATIONS)
    top = migrations.latest_version()
    monkeypatch.setattr(migrations, "MIGRATIONS", [*shipped, (top + 1, v2_add_column), (top + 2, v3_fails)])
    with pytest.raises(RuntimeError, match="boom"):
        open_record_store(path)
    with sqlite3.connect(path) as conn:  # all-or-nothing: v2 rolled back with v3
        assert migrations.current_version(conn) == top
        assert "half_done" not in migrations.table_names(conn)
    conn.close()

    monkeypatch.setattr(migrations, "MIGRATIONS", [*shipped, (top + 1, v2_add_column)])
    with open_record_store(path) as s:
        assert s.version() == str(top + 1)
        assert s.lineage == lineage and s.exists("k1")
    with sqlite3.connect(path) as conn:
        assert "notes" in {row[1] for row in conn.execute("PRAGMA table_info(models)")}
    conn.close()


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.db"
    open_record_store(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (99)")
    conn.close()
    with pytest.raises(StoreFormatError, match="newer model-reconciler"):
        open_record_store(db)

    yml = tmp_path / "new.yaml"
    yml.write_text("__metadata__: {version: '7', lineage: abc, serial: 3}\nmodels: {}\n")
    with pytest.raises(StoreFormatError, match="newer model-reconciler"):
        open_record_store(yml)


def test_sql_from_connection_shares_an_app_database(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "app.db", check_same_thread=False, isolation_level=None)
    conn.execute("CREATE TABLE sessions (id INTEGER)")
    s = ModelRecordServiceSQL.from_connection(conn, threading.Lock())
    s.add_model("k1", cfg())
    assert s.serial == 1 and s.version() == str(migrations.latest_version())
    s.close()
    assert conn.execute("SELECT COUNT(*) FROM models").fetchone() == (1,)  # still open
    conn.close()


# --- YAML-specific durability --------------------------------------------------------------


def test_yaml_never_truncated_when_rename_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "records.yaml"
    s = open_record_store(path)
    s.add_model("k1", cfg("m1"))
    before = path.read_bytes()

    def crash(src: Any, dst: Any) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        s.add_model("k2", cfg("m2"))
    with pytest.raises(OSError, match="simulated"):
        s.update_model("k1", {"description": "lost"})
    monkeypatch.undo()

    assert path.read_bytes() == before
    doc = load_yaml(before.decode())
    assert list(doc["models"]) == ["k1"] and doc["__metadata__"]["serial"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["records.yaml", "records.yaml.lock"]  # no temp left
    assert not s.exists("k2") and s.serial == 1 and s.get_model("k1").description is None
    s.add_model("k2", cfg("m2"))
    assert s.serial == 2
    s.close()


def test_yaml_sees_changes_by_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "records.yaml"
    a, b = open_record_store(path), open_record_store(path)
    a.add_model("k1", cfg("m1"))
    assert b.exists("k1")
    b.update_model("k1", {"description": "by b"})
    assert a.get_model("k1").description == "by b"
    assert a.serial == b.serial == 2
    a.close()
    b.close()


def test_ambiguous_yaml_scalars_stay_strings(store: ModelRecordServiceBase, store_path: Path) -> None:
    store.add_model("k1", cfg("on", path="yes", tags=["no", "1e3", "010"], description="null"))
    store.close()
    with open_record_store(store_path) as again:
        rec = again.get_model("k1")
        assert (rec.name, rec.path, rec.tags, rec.description) == ("on", "yes", ["no", "1e3", "010"], "null")
