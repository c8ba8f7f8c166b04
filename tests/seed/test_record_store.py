"""The seed's record-store examples ("What's in a Model? The ModelRecordService" through
"Writing model configs to the database"), run as written, with ``InvokeAIAppConfig``
replaced by the project's settings."""

from __future__ import annotations

import re
import sqlite3
import threading
from pathlib import Path

import pytest

from reconciler import (
    AnyModelConfig,
    BaseModelType,
    DuplicateModelException,
    InvalidModelConfigException,
    MainCheckpointConfig,
    ModelFormat,
    ModelRecordServiceBase,
    ModelRecordServiceFile,
    ModelRecordServiceSQL,
    ModelType,
    ModelVariantType,
    ONNXSD2Config,
    SchedulerPredictionType,
    UnknownModelException,
)
from reconciler.settings import AppSettings

KEY = "f13dd932c0c35c22dcb8d6cda4203764"


def _sd15(path: str = "/tmp/models/ckpts/v1-5-pruned-emaonly.safetensors", **extra: object) -> dict:
    """A main checkpoint record as the seed's field table names its fields."""
    return {"name": "stable-diffusion-v1-5", "model_type": "main", "model_format": "checkpoint",
            "base_model": "sd-1", "path": path, "hash": "imohash:1", **extra}


@pytest.fixture(params=["db", "yaml"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    """Both backends, opened the way the seed opens them."""
    if request.param == "db":
        opened = ModelRecordServiceSQL.from_db_file(tmp_path / "sqlite_database.db")
    else:
        opened = ModelRecordServiceFile.from_db_file(tmp_path / "database.yaml")
    yield opened
    opened.close()


# --- "ModelConfigBase" and the config classes ------------------------------------------------

def test_model_config_base_fields_by_the_seeds_names(store: ModelRecordServiceBase) -> None:
    config = store.add_model(KEY, _sd15(description="our base", source="runwayml/stable-diffusion-v1-5"))
    # key, name, model_type, model_format, base_model, path, hash, description, source
    assert (config.key, config.name, config.path, config.hash) == (
        KEY, "stable-diffusion-v1-5", "/tmp/models/ckpts/v1-5-pruned-emaonly.safetensors", "imohash:1")
    assert config.model_type is ModelType.Main and config.type is ModelType.Main
    assert config.model_format is ModelFormat.Checkpoint and config.base_model is BaseModelType.StableDiffusion1
    assert (config.description, config.source) == ("our base", "runwayml/stable-diffusion-v1-5")
    # "CheckpointConfig" adds config; "MainConfig" adds vae and variant
    assert isinstance(config, MainCheckpointConfig)
    assert config.config is None and config.vae is None and config.variant is ModelVariantType.Normal


def test_the_key_is_a_unique_32_character_random_id(store: ModelRecordServiceBase) -> None:
    first = MainCheckpointConfig(**_sd15(path="a.safetensors"))
    second = MainCheckpointConfig(**_sd15(path="b.safetensors"))
    assert re.fullmatch(r"[0-9a-f]{32}", first.key) and re.fullmatch(r"[0-9a-f]{32}", second.key)
    assert first.key != second.key


def test_onnxsd2config_prediction_type_and_upcast_attention(store: ModelRecordServiceBase) -> None:
    config = store.add_model("onnx1", {"name": "sd2-onnx", "model_type": "onnx", "model_format": "onnx",
                                       "base_model": "sd-2", "path": "sd-2/onnx/sd2-onnx",
                                       "prediction_type": "v_prediction", "upcast_attention": True})
    assert isinstance(config, ONNXSD2Config)
    assert config.prediction_type is SchedulerPredictionType.VPrediction and config.upcast_attention is True


def test_any_model_config_picks_the_class_by_type_and_format() -> None:
    from pydantic import TypeAdapter

    lora = TypeAdapter(AnyModelConfig).validate_python(
        {"key": "k", "name": "l", "model_type": "lora", "model_format": "lycoris", "base_model": "sdxl", "path": "l"})
    assert type(lora).__name__ == "LoRALyCORISConfig" and lora.base_model is BaseModelType.StableDiffusionXL


# --- "Creating a ModelRecordService" ----------------------------------------------------------

def test_creating_a_model_record_service(tmp_path: Path) -> None:
    connection = sqlite3.connect(str(tmp_path / "invokeai.db"), check_same_thread=False)
    lock = threading.Lock()
    store = ModelRecordServiceSQL.from_connection(connection, lock)
    store.add_model(KEY, _sd15())
    store.close()  # leaves the application's connection open
    assert connection.execute("SELECT COUNT(*) FROM models").fetchone() == (1,)

    store = ModelRecordServiceSQL.from_db_file(tmp_path / "sqlite_database.db")
    assert isinstance(store, ModelRecordServiceSQL) and (tmp_path / "sqlite_database.db").is_file()
    store.close()
    store = ModelRecordServiceFile.from_db_file(tmp_path / "database.yaml")
    assert isinstance(store, ModelRecordServiceFile) and (tmp_path / "database.yaml").is_file()
    store.close()


@pytest.mark.parametrize(("name", "kind"), [("file.db", ModelRecordServiceSQL), ("file.yaml", ModelRecordServiceFile)])
def test_from_db_file_on_the_base_class_picks_by_extension(tmp_path: Path, name: str, kind: type) -> None:
    store = ModelRecordServiceBase.from_db_file(tmp_path / name)
    try:
        assert type(store) is kind
    finally:
        store.close()


def test_a_file_of_the_wrong_type_raises_assertion_error(tmp_path: Path) -> None:
    (tmp_path / "file.db").write_text("models: {}\n")
    with pytest.raises(AssertionError, match="file.db"):
        ModelRecordServiceBase.from_db_file(tmp_path / "file.db")
    (tmp_path / "other.yaml").write_text("just: a mapping\n")
    with pytest.raises(AssertionError, match="other.yaml"):
        ModelRecordServiceBase.from_db_file(tmp_path / "other.yaml")


def test_typical_startup_pattern_open(config: AppSettings, tmp_path: Path) -> None:
    lock = threading.Lock()  # the seed imports it from invokeai.app.services.thread
    db_path = tmp_path / "databases" / "invokeai.db"
    db_path.parent.mkdir()
    db_conn = sqlite3.connect(db_path.as_posix(), check_same_thread=False)
    store = ModelRecordServiceBase.open(config, db_conn, lock)
    assert isinstance(store, ModelRecordServiceSQL)
    store.add_model(KEY, _sd15())
    store.close()
    assert db_conn.execute("SELECT key FROM models").fetchall() == [(KEY,)]
    # without a connection: the store file the settings name (by default in the models dir)
    store = ModelRecordServiceBase.open(config)
    try:
        assert isinstance(store, ModelRecordServiceSQL) and config.db_path.is_file()
    finally:
        store.close()
    yaml_config = config.model_copy(update={"db": tmp_path / "models.yaml"})
    store = ModelRecordServiceBase.open(yaml_config)
    try:
        assert isinstance(store, ModelRecordServiceFile)
    finally:
        store.close()


# --- "Fetching a Model's Configuration" ---------------------------------------------------------

def test_get_model_by_key(store: ModelRecordServiceBase) -> None:
    store.add_model(KEY, _sd15())
    model_conf = store.get_model('f13dd932c0c35c22dcb8d6cda4203764')
    assert model_conf.path == '/tmp/models/ckpts/v1-5-pruned-emaonly.safetensors'
    with pytest.raises(UnknownModelException):
        store.get_model("0" * 32)


def test_exists_search_by_path_name_all_models(store: ModelRecordServiceBase) -> None:
    store.add_model(KEY, _sd15())
    store.add_model("vae1", {"name": "sd-vae", "model_type": "vae", "model_format": "checkpoint",
                             "base_model": "sd-1", "path": "/tmp/models/vae.safetensors"})
    assert store.exists(KEY) and not store.exists("nope")
    # departure: search_by_path returns a list (as InvokeAI's code does), see the README
    assert [c.key for c in store.search_by_path("/tmp/models/vae.safetensors")] == ["vae1"]
    assert [c.key for c in store.search_by_name("sd-vae", "sd-1", "vae")] == ["vae1"]
    assert [c.key for c in store.search_by_name(base=BaseModelType.StableDiffusion1, type=ModelType.Main)] == [KEY]
    assert {c.key for c in store.search_by_name()} == {c.key for c in store.all_models()} == {KEY, "vae1"}


def test_search_by_tag_needs_all_tags(store: ModelRecordServiceBase) -> None:
    store.add_model("a", _sd15(path="a", tags=["sfw", "scenery"]))
    store.add_model("b", _sd15(path="b", tags=["sfw"]))
    # find all models that are marked as both SFW and as generating background scenery
    configs = store.search_by_tag(['sfw', 'scenery'])
    assert [c.key for c in configs] == ["a"]


def test_other_fields_are_searched_with_a_filter(store: ModelRecordServiceBase) -> None:
    # the seed filters on x.license, which is metadata here (CivitaiMetadata.license); the
    # pattern is the same over any record field
    store.add_model("a", _sd15(path="a", description="allowCommercialUse=Sell"))
    store.add_model("b", _sd15(path="b", description="allowCommercialUse=None"))
    commercializable_models = [x for x in store.all_models() if 'allowCommercialUse=Sell' in (x.description or "")]
    assert [x.key for x in commercializable_models] == ["a"]


def test_version(store: ModelRecordServiceBase) -> None:
    # departure: each backend's own schema number (SQL migrations, YAML format), not "3.2"
    assert store.version() == ("3" if isinstance(store, ModelRecordServiceSQL) else "1")


def test_model_info_by_name(store: ModelRecordServiceBase) -> None:
    store.add_model(KEY, _sd15())
    found = store.model_info_by_name("stable-diffusion-v1-5", base_model=BaseModelType.StableDiffusion1,
                                     model_type=ModelType.Main)
    assert found.key == KEY
    assert store.model_info_by_name("stable-diffusion-v1-5", "sd-1", "main").key == KEY
    with pytest.raises(UnknownModelException):
        store.model_info_by_name("stable-diffusion-v1-5", base_model="sdxl", model_type="main")
    # two models with the same name, base and type at /foo/my_model and /bar/my_model
    store.add_model("foo", _sd15(path="/foo/my_model", name="my_model"))
    store.add_model("bar", _sd15(path="/bar/my_model", name="my_model"))
    with pytest.raises(DuplicateModelException, match="2 models named 'my_model'"):
        store.model_info_by_name("my_model", "sd-1", "main")


def test_get_model_by_attr(store: ModelRecordServiceBase) -> None:
    store.add_model(KEY, _sd15())
    configs = store.get_model_by_attr(name='stable-diffusion-v1-5')
    assert len(configs) > 0 and configs[0].key == KEY
    assert store.get_model_by_attr(name='stable-diffusion-v1-5', type="vae") == []


# --- "Writing model configs to the database" ----------------------------------------------------

def test_add_model_from_a_dict_or_a_config(store: ModelRecordServiceBase) -> None:
    added = store.add_model(KEY, _sd15())
    assert isinstance(added, MainCheckpointConfig)
    as_object = MainCheckpointConfig(**_sd15(path="/tmp/other.safetensors", name="other"))
    assert store.add_model("other", as_object).key == "other"
    with pytest.raises(DuplicateModelException):
        store.add_model(KEY, _sd15(path="/tmp/third.safetensors"))
    with pytest.raises(InvalidModelConfigException):
        store.add_model("bad", {"name": "x", "model_type": "main", "model_format": "checkpoint",
                                "base_model": "sd-9", "path": "x"})
    assert {c.key for c in store.all_models()} == {KEY, "other"}


def test_update_model_with_a_sparse_dict_or_a_config(store: ModelRecordServiceBase) -> None:
    store.add_model(KEY, _sd15())
    updated = store.update_model(KEY, {"description": "tuned", "base_model": "sd-2"})
    assert (updated.description, updated.base_model) == ("tuned", BaseModelType.StableDiffusion2)
    assert store.get_model(KEY).base is BaseModelType.StableDiffusion2
    whole = store.get_model(KEY).model_copy(update={"name": "renamed"})
    assert store.update_model(KEY, whole).name == "renamed"
    with pytest.raises(UnknownModelException):
        store.update_model("0" * 32, {"description": "x"})
    with pytest.raises(InvalidModelConfigException):
        store.update_model(KEY, {"variant": "sideways"})
