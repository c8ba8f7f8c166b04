"""ModelManagerService: the seed's facade holding the store, the installer and the loader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import ModelConfigBase
from reconciler.events import EventBus
from reconciler.install.service import ModelInstallService
from reconciler.settings import AppSettings
from reconciler.sources.base import ModelSource
from reconciler.store.base import ModelRecordServiceBase
from reconciler.taxonomy import BaseModelType, ModelType, SubModelType


class ModelManagerService:
    """One object with every model service, as an application wires them.

    ``load`` (the ModelLoadService) is built on first use, so an installer-only process (a
    CI job, ``reconciler apply`` without warm-up) never imports torch.
    """

    def __init__(self, store: ModelRecordServiceBase, install: ModelInstallService, load: Optional[Any] = None,
                 event_bus: Optional[EventBus] = None) -> None:
        self.store = store
        self.install = install
        self._load = load
        self.event_bus = event_bus if event_bus is not None else install.event_bus

    @classmethod
    def build(cls, settings: AppSettings, event_bus: Optional[EventBus] = None,
              load: Optional[Any] = None) -> ModelManagerService:
        """Open the configured record store and start an installer on it."""
        store = ModelRecordServiceBase.from_db_file(settings.db_path)
        metadata_store = metadata_store_for(store)
        installer = ModelInstallService(app_config=settings, record_store=store, metadata_store=metadata_store,
                                        event_bus=event_bus)
        installer.start()
        return cls(store=store, install=installer, load=load, event_bus=event_bus)

    @property
    def load(self) -> Any:
        """The ModelLoadService (the seed's ``mm.load``), reading records from ``store``."""
        if self._load is None:
            from reconciler.load.service import ModelLoadService

            self._load = ModelLoadService(app_config=self.install.app_config, record_store=self.store,
                                          event_bus=self.event_bus)
        return self._load

    # --- the seed's loading shortcuts ------------------------------------------------------------
    def load_model_by_config(self, model_config: ModelConfigBase, submodel: Optional[SubModelType | str] = None,
                             context: Any = None) -> Any:
        """Same as ``mm.load.load_model()``."""
        return self.load.load_model(model_config, submodel, context)

    def load_model_by_key(self, key: str, submodel: Optional[SubModelType | str] = None, context: Any = None) -> Any:
        """Look ``key`` up in ``store`` and load it (UnknownModelException, NotImplementedException)."""
        return self.load_model_by_config(self.store.get_model(key), submodel, context)

    def load_model_by_attr(self, model_name: str, base_model: BaseModelType | str, model_type: ModelType | str,
                           submodel: Optional[SubModelType | str] = None, context: Any = None) -> Any:
        """Load the one model with this name, base and type.

        UnknownModelException when none matches; ValueError (DuplicateModelException) when
        several do; NotImplementedException when no loader handles it.
        """
        config = self.store.model_info_by_name(model_name, base_model, model_type)
        return self.load_model_by_config(config, submodel, context)

    # --- the seed's invocation-context helpers ------------------------------------------------
    def download_and_cache_model(self, source: str | ModelSource) -> Path:
        """Download a URL or Hugging Face source into the download cache; returns its path."""
        from reconciler.install.context import download_and_cache_model

        return download_and_cache_model(source, self)

    def load_local_model(self, model_path: Path | str, loader: Optional[Callable[[Path], Any]] = None) -> Any:
        """Load a file or folder that is not in the store (see :mod:`reconciler.install.context`)."""
        from reconciler.install.context import load_local_model

        return load_local_model(model_path, loader, self)

    def load_remote_model(self, source: str | ModelSource, loader: Optional[Callable[[Path], Any]] = None) -> Any:
        """Download (or find in the cache) and load a remote source that is not in the store."""
        from reconciler.install.context import load_remote_model

        return load_remote_model(source, loader, self)

    # --- lifetime -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the installer and close the store."""
        self.install.stop()
        self.store.close()

    def __enter__(self) -> ModelManagerService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def metadata_store_for(store: ModelRecordServiceBase) -> Optional[Any]:
    """The metadata store beside a SQLite record store (the YAML store keeps none)."""
    from reconciler.store.metadata import ModelMetadataStore
    from reconciler.store.sql import ModelRecordServiceSQL

    if isinstance(store, ModelRecordServiceSQL):
        return ModelMetadataStore(store)
    return None
