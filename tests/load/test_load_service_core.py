"""ModelLoadService and the registry, with a loader of the test's own (the shipped loaders
have their own tests): lookup order, errors, events, cache hits that read no file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Optional

import pytest

from reconciler import ModelRecordServiceSQL
from reconciler.errors import ModelNotFoundException, NotImplementedException, UnknownModelException
from reconciler.events import Event
from reconciler.load import ModelCache, ModelConvertCache, ModelLoader, ModelLoaderRegistry, ModelLoadService
from reconciler.settings import AppSettings, load_settings
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelRepoVariant, ModelType, SubModelType
from reconciler.testing.models import write_lora_kohya


class CountingLoraLoader(ModelLoader):
    """Reads a safetensors LoRA as a state dict and counts how often it really loads."""

    loads: list[Path] = []

    def _load_model(self, model_path: Path, model_variant: Optional[ModelRepoVariant] = None,
                    submodel_type: Optional[SubModelType] = None) -> Any:
        from safetensors.torch import load_file

        type(self).loads.append(model_path)
        return load_file(str(model_path))


@pytest.fixture
def counting_loader() -> Iterator[type[CountingLoraLoader]]:
    CountingLoraLoader.loads = []
    ModelLoaderRegistry.register(base=BaseModelType.StableDiffusion1, type=ModelType.LoRA,
                                 format=ModelFormat.LyCORIS)(CountingLoraLoader)
    yield CountingLoraLoader
    ModelLoaderRegistry.unregister(base=BaseModelType.StableDiffusion1, type=ModelType.LoRA,
                                   format=ModelFormat.LyCORIS)


@pytest.fixture
def settings(tmp_path: Path) -> AppSettings:
    return load_settings(models_dir=tmp_path / "models", environ={})


@pytest.fixture
def store(settings: AppSettings) -> Iterator[ModelRecordServiceSQL]:
    opened = ModelRecordServiceSQL(settings.db_path)
    yield opened
    opened.close()


def add_lora(store: ModelRecordServiceSQL, settings: AppSettings, name: str = "lora") -> Path:
    path = write_lora_kohya(settings.models_dir / "sd-1" / "lora" / f"{name}.safetensors", base="sd-1")
    store.add_model(name, {"name": name, "type": "lora", "format": "lycoris", "base": "sd-1",
                           "path": f"sd-1/lora/{name}.safetensors", "hash": "h"})
    return path


def make_service(settings: AppSettings, store: ModelRecordServiceSQL) -> ModelLoadService:
    """The seed's initialization pattern."""
    config = settings
    ram_cache = ModelCache(
        max_cache_size=config.ram_cache_size, max_vram_cache_size=config.vram_cache_size, execution_device="cpu"
    )
    convert_cache = ModelConvertCache(
        cache_path=config.convert_cache_dir, max_size=config.convert_cache_size
    )
    return ModelLoadService(
        app_config=config,
        ram_cache=ram_cache,
        convert_cache=convert_cache,
        registry=ModelLoaderRegistry,
        record_store=store,
    )


def test_registering_one_combination_twice_raises(counting_loader: type[CountingLoraLoader]) -> None:
    class Other(ModelLoader):
        pass

    with pytest.raises(ValueError, match="CountingLoraLoader already handles"):
        ModelLoaderRegistry.register(base=BaseModelType.StableDiffusion1, type=ModelType.LoRA,
                                     format=ModelFormat.LyCORIS)(Other)


def test_lookup_takes_the_exact_base_before_any(counting_loader: type[CountingLoraLoader], store, settings) -> None:
    add_lora(store, settings)
    sd1 = store.get_model("lora")
    assert ModelLoaderRegistry.get_implementation(sd1) is CountingLoraLoader
    sdxl = sd1.model_copy(update={"base": BaseModelType.StableDiffusionXL})
    shipped_any = ModelLoaderRegistry.registrations()[(BaseModelType.Any, ModelType.LoRA, ModelFormat.LyCORIS)]
    assert ModelLoaderRegistry.get_implementation(sdxl) is shipped_any is not CountingLoraLoader


def test_no_loader_is_not_implemented(store, settings) -> None:
    store.add_model("olive", {"name": "olive", "type": "onnx", "format": "olive", "base": "sd-1", "path": "x"})
    service = make_service(settings, store)
    with pytest.raises(NotImplementedException, match="olive"):
        service.get_model_by_key("olive")


def test_unknown_key_and_missing_files(counting_loader, store, settings) -> None:
    service = make_service(settings, store)
    with pytest.raises(UnknownModelException):
        service.get_model_by_key("f13dd932c0c35c22dcb8d6cda4203764")
    add_lora(store, settings).unlink()
    with pytest.raises(ModelNotFoundException, match="lora.safetensors"):
        service.get_model_by_key("lora")


def test_events_and_a_cache_hit_that_reads_no_file(counting_loader, store, settings) -> None:
    path = add_lora(store, settings)
    service = make_service(settings, store)
    events: list[Event] = []
    service.event_bus.subscribe(events.append)
    first = service.get_model_by_key("lora")
    with first as state_dict:
        assert state_dict and all(k.startswith("lora_") for k in state_dict)
    path.unlink()  # a hit must not need the file at all
    second = service.get_model_by_key("lora")
    assert second.cache_hit and not first.cache_hit and len(counting_loader.loads) == 1
    with second as again:
        assert again is state_dict
    names = [e.name for e in events]
    assert names == ["model_load_started", "model_load_completed"] * 2
    completed = [e.payload for e in events if e.name == "model_load_completed"]
    assert [p["cache_hit"] for p in completed] == [False, True]
    assert all(p["load_time_s"] >= 0 for p in completed)
    seed_keys = {"queue_id", "queue_item_id", "queue_batch_id", "graph_execution_state_id", "model_key",
                 "submodel_type", "hash", "location", "precision"}
    assert all(seed_keys <= set(e.payload) for e in events)
    assert completed[0]["model_key"] == "lora" and completed[0]["hash"] == "h"
    assert completed[0]["location"] == "sd-1/lora/lora.safetensors" and completed[0]["precision"] == "torch.float32"


def test_context_ids_go_into_the_event_payload(counting_loader, store, settings) -> None:
    add_lora(store, settings)
    service = make_service(settings, store)
    events: list[Event] = []
    service.event_bus.subscribe(events.append)

    class Context:
        queue_id, queue_item_id, queue_batch_id, graph_execution_state_id = "q", 7, "b", "g"

    service.load_model(store.get_model("lora"), context=Context())
    assert {(e.payload["queue_id"], e.payload["queue_item_id"], e.payload["graph_execution_state_id"])
            for e in events} == {("q", 7, "g")}


def test_without_a_record_store_the_settings_store_is_opened(counting_loader, store, settings) -> None:
    add_lora(store, settings)
    service = ModelLoadService(app_config=settings, ram_cache=ModelCache(execution_device="cpu"),
                               convert_cache=ModelConvertCache(settings.convert_cache_dir))
    try:
        with service.get_model_by_key("lora") as model:
            assert model
    finally:
        service.close()
