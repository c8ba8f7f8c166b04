"""ModelLoadService: load a model record into memory, ready for inference (the seed's API).

    ram_cache = ModelCache(max_cache_size=config.ram_cache_size, max_vram_cache_size=config.vram_cache_size)
    convert_cache = ModelConvertCache(cache_path=config.convert_cache_dir, max_size=config.convert_cache_size)
    loader = ModelLoadService(app_config=config, ram_cache=ram_cache, convert_cache=convert_cache,
                              registry=ModelLoaderRegistry)
    with loader.get_model_by_key(key, SubModelType.Vae) as vae:
        ...

Every load reports ``model_load_started`` and ``model_load_completed`` on the service's
event bus with the seed's payload, plus ``cache_hit`` and ``load_time_s``.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.events import EventBus
from reconciler.load.cache import ModelCache
from reconciler.load.convert_cache import ModelConvertCache
from reconciler.load.devices import choose_device, choose_dtype
from reconciler.load.loaded import LoadedModel
from reconciler.load.registry import ModelLoaderRegistry
from reconciler.taxonomy import SubModelType

log = logging.getLogger(__name__)


class ModelLoadService:
    """Loads records through the loader registered for their base, type and format."""

    def __init__(
        self,
        app_config: Any,
        ram_cache: Optional[ModelCache] = None,
        convert_cache: Optional[ModelConvertCache] = None,
        registry: type[ModelLoaderRegistry] = ModelLoaderRegistry,
        *,
        record_store: Any = None,
        event_bus: Optional[EventBus] = None,
    ) -> None:
        self.app_config = app_config
        if ram_cache is None:
            device = choose_device(getattr(app_config, "device", "auto"))
            ram_cache = ModelCache(max_cache_size=app_config.ram_cache_size,
                                   max_vram_cache_size=app_config.vram_cache_size, execution_device=device)
        if convert_cache is None:
            convert_cache = ModelConvertCache(cache_path=app_config.convert_cache_dir,
                                              max_size=app_config.convert_cache_size)
        self.ram_cache = ram_cache
        self.convert_cache = convert_cache
        self.registry = registry
        self.event_bus = event_bus or EventBus()
        self._record_store = record_store
        self._own_store = False

    @property
    def record_store(self) -> Any:
        """The store records are read from: the one given, else the one the settings name."""
        if self._record_store is None:
            from reconciler.store.base import ModelRecordServiceBase

            self._record_store = ModelRecordServiceBase.from_db_file(self.app_config.db_path)
            self._own_store = True
        return self._record_store

    def load_model(self, model_config: ModelConfigBase, submodel_type: Optional[SubModelType | str] = None,
                   context: Any = None) -> LoadedModel:
        """Load ``model_config`` (a record from the store), or one submodel of a pipeline.

        NotImplementedException when no loader handles its base/type/format;
        ModelNotFoundException when its files are gone.
        """
        submodel = SubModelType(submodel_type) if submodel_type is not None else None
        loader_class = self.registry.get_implementation(model_config, submodel)
        loader = loader_class(app_config=self.app_config, logger=log, ram_cache=self.ram_cache,
                              convert_cache=self.convert_cache)
        payload = self._payload(model_config, submodel, context)
        self.event_bus.emit("model_load_started", **payload)
        started = time.perf_counter()
        loaded = loader.load_model(model_config, submodel)
        self.event_bus.emit("model_load_completed", **payload, cache_hit=loaded.cache_hit,
                            load_time_s=round(time.perf_counter() - started, 6))
        return loaded

    def get_model_by_key(self, key: str, submodel_type: Optional[SubModelType | str] = None,
                         context: Any = None) -> LoadedModel:
        """Load the record ``key`` (UnknownModelException when there is none)."""
        return self.load_model(self.record_store.get_model(key), submodel_type, context)

    def _payload(self, config: ModelConfigBase, submodel: Optional[SubModelType], context: Any) -> dict[str, Any]:
        def from_context(name: str) -> Any:
            value = getattr(context, name, None)
            if value is None and context is not None:
                value = getattr(getattr(context, "queue_item", None), name, None)
            return value

        return {
            "queue_id": from_context("queue_id"),
            "queue_item_id": from_context("queue_item_id"),
            "queue_batch_id": from_context("queue_batch_id"),
            "graph_execution_state_id": from_context("graph_execution_state_id"),
            "model_key": config.key,
            "submodel_type": submodel.value if submodel is not None else None,
            "hash": config.hash,
            "location": str(config.path),
            "precision": str(choose_dtype(getattr(self.app_config, "precision", "auto"),
                                          self.ram_cache.execution_device)),
        }

    def close(self) -> None:
        """Close the record store if the service opened it."""
        if self._own_store and self._record_store is not None:
            self._record_store.close()
            self._record_store = None
            self._own_store = False


__all__ = ["ModelLoadService"]
