"""ModelManagerService: the seed's facade holding the store, the installer and the loader."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from reconciler.events import EventBus
from reconciler.install.service import ModelInstallService
from reconciler.settings import AppSettings
from reconciler.store.base import ModelRecordServiceBase


@dataclass
class ModelManagerService:
    """One object with every model service, as an application wires them.

    ``load`` is the ModelLoadService; it is optional so that an installer-only process
    (a CI job, `reconciler apply` without warm-up) never imports torch.
    """

    store: ModelRecordServiceBase
    install: ModelInstallService
    load: Optional[Any] = None

    @classmethod
    def build(cls, settings: AppSettings, event_bus: Optional[EventBus] = None,
              load: Optional[Any] = None) -> ModelManagerService:
        """Open the configured record store and start an installer on it."""
        store = ModelRecordServiceBase.from_db_file(settings.db_path)
        metadata_store = metadata_store_for(store)
        installer = ModelInstallService(app_config=settings, record_store=store, metadata_store=metadata_store,
                                        event_bus=event_bus)
        installer.start()
        return cls(store=store, install=installer, load=load)

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
    try:
        from reconciler.store.metadata import ModelMetadataStore
        from reconciler.store.sql import ModelRecordServiceSQL
    except ImportError:  # pragma: no cover - metadata store not built yet
        return None
    if isinstance(store, ModelRecordServiceSQL):
        return ModelMetadataStore(store)
    return None
