"""The seed's "The Lowdown on the ModelLoadService" and the ModelManagerService's loading
shortcuts, run as written on tiny real models (offline, CPU)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import pytest

from reconciler import (
    AnyModelConfig,
    BaseModelType,
    DuplicateModelException,
    ModelCache,
    ModelConvertCache,
    ModelFormat,
    ModelLoader,
    ModelLoaderRegistry,
    ModelLoadService,
    ModelManagerService,
    ModelNotFoundException,
    ModelRepoVariant,
    ModelType,
    NotImplementedException,
    SubModelType,
    UnknownModelException,
)
from reconciler.events import Event
from reconciler.settings import AppSettings
from reconciler.testing.models import write_clip_vision, write_diffusers_pipeline

logger = logging.getLogger("seed.load")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


@pytest.fixture
def mm(config: AppSettings, offline: None) -> Iterator[ModelManagerService]:
    """A manager whose store holds a tiny sd-1 pipeline named like the seed's example."""
    write_diffusers_pipeline(config.models_dir / "sd-1" / "main" / "stable-diffusion-v1-5", base="sd-1")
    with ModelManagerService.build(config) as manager:  # start() registers the pipeline it finds
        yield manager


def test_creating_a_model_load_service_object(mm: ModelManagerService, config: AppSettings) -> None:
    ram_cache = ModelCache(
        max_cache_size=config.ram_cache_size, max_vram_cache_size=config.vram_cache_size, logger=logger
    )
    convert_cache = ModelConvertCache(
        cache_path=config.models_convert_cache_path, max_size=config.convert_cache_size
    )
    loader = ModelLoadService(
        app_config=config,
        ram_cache=ram_cache,
        convert_cache=convert_cache,
        registry=ModelLoaderRegistry,
        record_store=mm.store,
    )
    (model_config,) = mm.store.get_model_by_attr(name="stable-diffusion-v1-5")
    loaded_model = loader.load_model(model_config, SubModelType("vae"))
    assert loaded_model.config == model_config and type(loaded_model.model).__name__ == "AutoencoderKL"
    assert ram_cache.max_cache_size == config.ram_cache_size and ram_cache.resident_bytes() > 0


def test_get_model_by_key_and_using_the_loaded_model(mm: ModelManagerService) -> None:
    import torch

    (model_config,) = mm.store.get_model_by_attr(name="stable-diffusion-v1-5")
    key = model_config.key
    loaded_model = mm.load.get_model_by_key(key, SubModelType('vae'))
    latents = torch.zeros(1, 4, 4, 4)
    with loaded_model as vae:
        image = vae.decode(latents)[0]
        scale = 2 ** (len(vae.config.block_out_channels) - 1)
    assert image.shape == (1, 3, 4 * scale, 4 * scale)
    with loaded_model.model_on_device() as (state_dict, vae):
        image = vae.decode(latents)[0]
        assert state_dict is not None and set(state_dict) == set(vae.state_dict())
    with pytest.raises(UnknownModelException):
        mm.load.get_model_by_key('f13dd932c0c35c22dcb8d6cda4203764', SubModelType('vae'))


def test_get_model_by_key_errors(mm: ModelManagerService, tmp_path: Path) -> None:
    import shutil

    mm.store.add_model("olive", {"name": "olive", "model_type": "onnx", "model_format": "olive",
                                 "base_model": "sd-1", "path": str(tmp_path)})
    with pytest.raises(NotImplementedException):
        mm.load.get_model_by_key("olive")
    (model_config,) = mm.store.get_model_by_attr(name="stable-diffusion-v1-5")
    shutil.rmtree(mm.install.models_dir / model_config.path)
    with pytest.raises(ModelNotFoundException):
        mm.load.get_model_by_key(model_config.key, SubModelType.UNet)


def test_emitting_model_loading_events(mm: ModelManagerService) -> None:
    events: list[Event] = []
    mm.load.event_bus.subscribe(events.append)

    class Context:  # what an invocation context carries
        queue_id, queue_item_id, queue_batch_id, graph_execution_state_id = "q1", 4, "b1", "g1"

    (model_config,) = mm.store.get_model_by_attr(name="stable-diffusion-v1-5")
    mm.load.load_model(model_config, SubModelType.Vae, context=Context())
    started, completed = (e.payload for e in events)
    assert [e.name for e in events] == ["model_load_started", "model_load_completed"]
    assert started["queue_id"] == "q1" and started["graph_execution_state_id"] == "g1"
    assert (completed["model_key"], completed["submodel_type"]) == (model_config.key, "vae")
    assert completed["hash"] == model_config.hash and completed["location"] == str(model_config.path)
    assert completed["precision"] == "torch.float32" and completed["cache_hit"] is False


def test_adding_model_loaders_generic_diffusers_loader(mm: ModelManagerService, config: AppSettings) -> None:
    """The seed's complete GenericDiffusersLoader example, registered in place of the shipped
    loader for the test's duration."""
    from typing import Any as AnyModel

    shipped = ModelLoaderRegistry.registrations()
    for t in (ModelType.CLIPVision, ModelType.T2IAdapter):
        ModelLoaderRegistry.unregister(base=BaseModelType.Any, type=t, format=ModelFormat.Diffusers)
    try:
        @ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.CLIPVision, format=ModelFormat.Diffusers)
        @ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.T2IAdapter, format=ModelFormat.Diffusers)
        class GenericDiffusersLoader(ModelLoader):
            """Class to load simple diffusers models."""

            def _load_model(
                self,
                model_path: Path,
                model_variant: Optional[ModelRepoVariant] = None,
                submodel_type: Optional[SubModelType] = None,
            ) -> AnyModel:
                model_class = self._get_hf_load_class(model_path)
                if submodel_type is not None:
                    raise Exception(f"There are no submodels in models of type {model_class}")
                variant = model_variant.value if model_variant else None
                result: AnyModel = model_class.from_pretrained(model_path, torch_dtype=self._torch_dtype, variant=variant)  # type: ignore
                return result

        folder = write_clip_vision(config.models_dir / "any" / "clip_vision" / "vit")
        key = mm.install.register_path(folder)
        loaded = mm.load.get_model_by_key(key)
        assert type(loaded.model).__name__ == "CLIPVisionModelWithProjection"
        assert ModelLoaderRegistry.get_implementation(mm.store.get_model(key)) is GenericDiffusersLoader
        with pytest.raises(ValueError, match="already handles"):
            ModelLoaderRegistry.register(base=BaseModelType.Any, type=ModelType.CLIPVision,
                                         format=ModelFormat.Diffusers)(type("Another", (ModelLoader,), {}))
    finally:
        for t in (ModelType.CLIPVision, ModelType.T2IAdapter):
            ModelLoaderRegistry.unregister(base=BaseModelType.Any, type=t, format=ModelFormat.Diffusers)
            ModelLoaderRegistry.register(base=BaseModelType.Any, type=t, format=ModelFormat.Diffusers)(
                shipped[(BaseModelType.Any, t, ModelFormat.Diffusers)])


def test_the_model_manager_service_load_shortcuts(mm: ModelManagerService) -> None:
    configs = mm.store.get_model_by_attr(name='stable-diffusion-v1-5')
    assert len(configs) > 0
    loaded_model = mm.load.load_model(configs[0], SubModelType.Scheduler)
    assert type(loaded_model.model).__name__.endswith("Scheduler")
    by_config = mm.load_model_by_config(configs[0], SubModelType.Vae)
    by_attr = mm.load_model_by_attr("stable-diffusion-v1-5", BaseModelType.StableDiffusion1, ModelType.Main,
                                    SubModelType.Vae)
    by_key = mm.load_model_by_key(configs[0].key, SubModelType.Vae)
    assert by_attr.cache_hit and by_key.cache_hit and by_config.model is by_attr.model is by_key.model
    with pytest.raises(UnknownModelException):
        mm.load_model_by_attr("nope", "sd-1", "main")
    mm.store.add_model("twin", {**configs[0].model_dump(exclude={"key"}), "path": "elsewhere"})
    with pytest.raises(ValueError) as info:
        mm.load_model_by_attr("stable-diffusion-v1-5", "sd-1", "main")
    assert isinstance(info.value, DuplicateModelException)


def test_any_model_config_from_the_store_loads(mm: ModelManagerService) -> None:
    config: AnyModelConfig = mm.store.get_model_by_attr(name="stable-diffusion-v1-5")[0]
    with mm.load.load_model(config, SubModelType.UNet) as unet:
        assert type(unet).__name__ == "UNet2DConditionModel"
