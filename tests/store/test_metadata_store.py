"""ModelMetadataStore: metadata beside the records in one SQLite file, tags, searches, cascade."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import DuplicateModelException, StoreFormatError, UnknownModelException
from reconciler.metadata import (
    AnyModelRepoMetadataValidator,
    CivitaiMetadata,
    CommercialUsage,
    HuggingFaceMetadata,
    RemoteModelFile,
)
from reconciler.store import ModelMetadataStore, ModelRecordServiceSQL, migrations


def cfg(name: str) -> dict[str, Any]:
    return {"name": name, "type": "main", "format": "checkpoint", "base": "sd-1",
            "path": f"sd-1/main/{name}.safetensors"}


def hf_meta(name: str = "sdxl", author: str = "stabilityai", tags: set[str] | None = None) -> HuggingFaceMetadata:
    return HuggingFaceMetadata(
        name=name, author=author, tags=tags if tags is not None else {"diffusers", "sdxl"},
        id=f"{author}/{name}", tag_dict={"license": "openrail"},
        last_modified=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), sha="a" * 40,
        files=[RemoteModelFile(url="http://hub/x", path="unet/model.safetensors", size=3, sha256="AB" * 32)],
    )


def civitai_meta(**over: Any) -> CivitaiMetadata:
    data: dict[str, Any] = dict(
        name="Detail Tweaker", author="alice", tags={"lora", "detail"}, id=58390, version_id=62833,
        version_name="v1.0", nsfw=False, trained_words={"detailed"}, base_model_trained_on="SD 1.5",
        download_url="http://civitai/api/download/models/62833",
        restrictions={"AllowNoCredit": True, "AllowCommercialUse": ["Image", "Sell"],
                      "AllowDerivatives": True, "AllowDifferentLicense": False},
        files=[{"url": "http://c/1", "path": "a.safetensors", "primary": False},
               {"url": "http://c/2", "path": "b.safetensors", "primary": True, "sha256": "FF" * 32}],
    )
    data.update(over)
    return CivitaiMetadata(**data)


@pytest.fixture
def records(tmp_path: Path) -> Any:
    s = ModelRecordServiceSQL(tmp_path / "records.db")
    for name in ("m1", "m2", "m3"):
        s.add_model(name, cfg(name))
    yield s
    s.close()


@pytest.fixture
def meta(records: ModelRecordServiceSQL) -> ModelMetadataStore:
    return ModelMetadataStore(records)


# --- data model ----------------------------------------------------------------------------


def test_metadata_union_round_trips_and_serialises_stably() -> None:
    for m in (hf_meta(), civitai_meta()):
        again = AnyModelRepoMetadataValidator.validate_json(m.model_dump_json())
        assert again == m and type(again) is type(m)
    a = civitai_meta(tags={"z", "a", "m"}).model_dump_json()
    assert '"tags":["a","m","z"]' in a  # sets serialise sorted: same JSON on every machine


def test_civitai_licence_properties() -> None:
    m = civitai_meta()
    assert not m.credit_required and m.allow_commercial_use and m.allow_derivatives
    assert not m.allow_different_licence
    assert m.commercial_uses == {CommercialUsage.Image, CommercialUsage.Sell}
    assert "allowCommercialUse=Image,Sell" in m.license
    assert m.primary_file is not None and m.primary_file.path == "b.safetensors"
    assert m.primary_file.sha256 == "ff" * 32  # lower-cased
    strict = civitai_meta(restrictions={"AllowCommercialUse": "None"})  # the old API's single string
    assert strict.credit_required and not strict.allow_commercial_use and not strict.allow_derivatives
    assert civitai_meta(files=[]).primary_file is None


# --- store ---------------------------------------------------------------------------------


def test_add_get_update(meta: ModelMetadataStore, records: ModelRecordServiceSQL) -> None:
    serial = records.serial
    meta.add_metadata("m1", hf_meta())
    assert records.serial == serial + 1  # a metadata write is a store write
    got = meta.get_metadata("m1")
    assert isinstance(got, HuggingFaceMetadata) and got == hf_meta()
    meta.update_metadata("m1", civitai_meta())
    assert isinstance(meta.get_metadata("m1"), CivitaiMetadata)
    assert meta.search_by_tag(["sdxl"]) == set() and meta.search_by_tag(["lora"]) == {"m1"}
    meta.update_metadata("m1", hf_meta().model_dump(mode="json"))  # a dict works too
    meta.update_metadata("m1", hf_meta().model_dump_json())  # and JSON
    assert meta.get_metadata("m1") == hf_meta()


def test_errors(meta: ModelMetadataStore) -> None:
    with pytest.raises(UnknownModelException):
        meta.get_metadata("m1")
    with pytest.raises(UnknownModelException):
        meta.update_metadata("m1", hf_meta())
    with pytest.raises(UnknownModelException, match="nope"):
        meta.add_metadata("nope", hf_meta())  # no record with that key
    meta.add_metadata("m1", hf_meta())
    with pytest.raises(DuplicateModelException):
        meta.add_metadata("m1", hf_meta())
    with pytest.raises(ValueError, match="invalid model metadata"):
        meta.add_metadata("m2", {"type": "huggingface", "name": "x"})  # no id
    with pytest.raises(UnknownModelException):
        meta.del_metadata("m2")


def test_searches(meta: ModelMetadataStore) -> None:
    meta.add_metadata("m1", hf_meta("sdxl", "stabilityai", {"diffusers", "sdxl", "text-to-image"}))
    meta.add_metadata("m2", hf_meta("sd15", "runwayml", {"diffusers", "text-to-image"}))
    meta.add_metadata("m3", civitai_meta())
    assert meta.search_by_tag(["diffusers"]) == {"m1", "m2"}
    assert meta.search_by_tag({"diffusers", "sdxl"}) == {"m1"}  # all tags, not any
    assert meta.search_by_tag("lora") == {"m3"}  # a bare string is one tag
    assert meta.search_by_tag(["lora", "sdxl"]) == set()
    assert meta.search_by_tag([]) == {"m1", "m2", "m3"}
    assert meta.search_by_author("StabilityAI") == {"m1"}  # whole string, any case
    assert meta.search_by_author("stability") == set()
    assert meta.search_by_name("detail tweaker") == {"m3"}
    assert [k for k, _ in meta.list_all_metadata()] == ["m1", "m2", "m3"]
    assert meta.all_tags() == sorted({"diffusers", "sdxl", "text-to-image", "lora", "detail"})


def test_tags_are_normalised(meta: ModelMetadataStore, records: ModelRecordServiceSQL) -> None:
    meta.add_metadata("m1", hf_meta(tags={"a", "b"}))
    meta.add_metadata("m2", hf_meta(tags={"b", "c"}))
    conn = records._conn
    assert conn.execute("SELECT COUNT(*) FROM tags").fetchone() == (3,)  # 'b' stored once
    assert conn.execute("SELECT COUNT(*) FROM metadata_tags").fetchone() == (4,)
    meta.update_metadata("m2", hf_meta(tags={"b"}))  # 'c' no longer used: gone
    assert meta.all_tags() == ["a", "b"]


def test_deleting_the_record_deletes_its_metadata(meta: ModelMetadataStore, records: ModelRecordServiceSQL) -> None:
    meta.add_metadata("m1", hf_meta(tags={"only-m1", "shared"}))
    meta.add_metadata("m2", hf_meta(tags={"shared"}))
    records.del_model("m1")
    with pytest.raises(UnknownModelException):
        meta.get_metadata("m1")
    assert meta.search_by_tag(["shared"]) == {"m2"}
    assert meta.all_tags() == ["shared"]  # the cascade dropped m1's links and its unused tag
    conn = records._conn
    assert conn.execute("SELECT COUNT(*) FROM metadata_tags WHERE model_key = 'm1'").fetchone() == (0,)


def test_opened_from_a_path_shares_the_database(tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with ModelRecordServiceSQL(db) as rec:
        rec.add_model("k", cfg("k"))
    with ModelMetadataStore(db) as meta:
        meta.add_metadata("k", civitai_meta())
        assert meta.record_store.exists("k")
    with ModelMetadataStore(str(db)) as meta:
        assert meta.get_metadata("k") == civitai_meta()
    with sqlite3.connect(db) as conn:
        assert migrations.METADATA_TABLES <= migrations.table_names(conn)
    conn.close()


def test_migrates_a_v1_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "v1.db"
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    with ModelRecordServiceSQL(db) as rec:
        rec.add_model("k", cfg("k"))
        with pytest.raises(StoreFormatError, match="metadata tables"):
            ModelMetadataStore(rec)
    monkeypatch.undo()
    with ModelRecordServiceSQL(db) as rec:
        assert int(rec.version()) == migrations.latest_version() >= 2
        ModelMetadataStore(rec).add_metadata("k", hf_meta())
        assert rec.exists("k")
