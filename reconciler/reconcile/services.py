"""Wiring: open the record store and the install service from AppSettings.

Every entry point (CLI, library `plan()`/`apply()`, watch) builds its services here, so
the rules "which store file", "create or not" live in one place.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from reconciler.install.service import ModelInstallService
from reconciler.settings import AppSettings
from reconciler.store.base import ModelRecordServiceBase
from reconciler.store.sql import ModelRecordServiceSQL


@dataclass
class Services:
    """The services one command works with."""

    settings: AppSettings
    store: ModelRecordServiceBase
    installer: ModelInstallService
    #: False when the store file did not exist and an empty in-memory one stands in for it
    store_exists: bool = True


def open_store(settings: AppSettings, create: bool) -> tuple[ModelRecordServiceBase, bool]:
    """Open the configured store; with ``create=False`` a missing one reads as empty."""
    path = settings.db_path
    if path.exists() or create:
        return ModelRecordServiceBase.from_db_file(path), True
    return ModelRecordServiceSQL.from_connection(sqlite3.connect(":memory:", check_same_thread=False), threading.Lock()), False


@contextmanager
def open_services(settings: AppSettings, create: bool = False, download_queue: Any = None) -> Iterator[Services]:
    """Open store + installer; ``create`` makes the store file (apply) or not (plan, status).

    ``download_queue``: a DownloadQueueService the caller keeps (``watch`` owns one for its
    life, to pause its downloads on SIGTERM); by default the installer makes its own."""
    from reconciler.install.manager import metadata_store_for

    store, exists = open_store(settings, create)
    installer = ModelInstallService(app_config=settings, record_store=store, metadata_store=metadata_store_for(store),
                                    download_queue=download_queue)
    try:
        yield Services(settings=settings, store=store, installer=installer, store_exists=exists)
    finally:
        installer.stop()
        store.close()
