"""The record store: model config records, their tags and per-file states; repository metadata.

``open_record_store(path)`` picks the backend by extension (``.db`` -> SQLite,
``.yaml`` -> YAML file); see :class:`ModelRecordServiceBase` for the interface.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.store.base import ModelRecordServiceBase
from reconciler.store.metadata import ModelMetadataStore
from reconciler.store.sql import ModelRecordServiceSQL
from reconciler.store.yamlfile import ModelRecordServiceFile


def open_record_store(path: Path | str) -> ModelRecordServiceBase:
    """Open (creating if missing) the record store at ``path``; see ``from_db_file``."""
    return ModelRecordServiceBase.from_db_file(path)


__all__ = [
    "ModelMetadataStore",
    "ModelRecordServiceBase",
    "ModelRecordServiceFile",
    "ModelRecordServiceSQL",
    "open_record_store",
]
