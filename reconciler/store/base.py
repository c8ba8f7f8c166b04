"""The record store's abstract interface and the ``from_db_file`` factory.

Two backends implement it: :class:`~reconciler.store.sql.ModelRecordServiceSQL` (the
default, a SQLite database) and :class:`~reconciler.store.yamlfile.ModelRecordServiceFile`
(one YAML file).  Every store carries a ``lineage`` (a uuid4 hex fixed when the store file
is created) and a ``serial`` (bumped by every write), so a saved plan can tell whether the
store it was made against is still the same store in the same state.
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Optional

from pydantic import BaseModel

from reconciler.configs import AnyModelConfig, FileState, ModelConfigBase
from reconciler.errors import DuplicateModelException, StoreFormatError, UnknownModelException
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType

SQL_SUFFIXES = frozenset({".db", ".sqlite", ".sqlite3"})
YAML_SUFFIXES = frozenset({".yaml", ".yml"})


class ViewLinkState(BaseModel):
    """One file a ModelView made in an app's folder (or, with ``mode: config``, one section of
    ComfyUI's extra_model_paths.yaml).  Prune removes only what is recorded here."""

    view: str
    path: str  # the destination, absolute (config: "<file>#<section>")
    model: str = ""  # the model's name
    model_key: str = ""
    target: str = ""  # the model's file, absolute
    mode: str  # hardlink | symlink | copy | config
    link_text: str = ""  # a symlink's text
    size: int = 0  # a copy's size and mtime when made
    mtime_ns: int = 0


class ModelRecordServiceBase(ABC):
    """Stores model config records, their tags and their per-file states."""

    # --- opening ------------------------------------------------------------------------

    @classmethod
    def from_db_file(cls, path: Path | str) -> ModelRecordServiceBase:
        """Open (creating and initialising if missing) the store at ``path``.

        On the base class the backend is picked by extension: ``.db``/``.sqlite``/
        ``.sqlite3`` -> SQL, ``.yaml``/``.yml`` -> YAML file.  On a concrete subclass that
        class is used whatever the extension.  A file of the wrong kind, or one without
        this package's schema, raises :class:`StoreFormatError` naming the path.
        """
        from reconciler.store.sql import ModelRecordServiceSQL
        from reconciler.store.yamlfile import ModelRecordServiceFile

        path = Path(path)
        if path.is_dir():
            raise StoreFormatError(f"{path}: is a directory, not a record store file")
        if cls is not ModelRecordServiceBase:
            return cls(path)  # type: ignore[call-arg]
        suffix = path.suffix.lower()
        if suffix in SQL_SUFFIXES:
            return ModelRecordServiceSQL(path)
        if suffix in YAML_SUFFIXES:
            return ModelRecordServiceFile(path)
        raise StoreFormatError(
            f"{path}: unknown record store extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(sorted(SQL_SUFFIXES | YAML_SUFFIXES))}"
        )

    @classmethod
    def open(
        cls,
        config: Any,
        conn: Optional[sqlite3.Connection] = None,
        lock: Optional[threading.Lock] = None,
    ) -> ModelRecordServiceBase:
        """The seed's start-up form: the store that ``config`` (an AppSettings) names.

        With ``conn`` and ``lock`` (an application's own open SQLite database, as the seed
        passes them) the records live in that database; otherwise the store file is
        ``config.db_path`` (``--db`` / ``RECONCILER_DB``, by default
        ``<models_dir>/.reconciler/records.db``), opened by :meth:`from_db_file`: ``.db``
        for SQLite, ``.yaml`` for the file store.
        """
        from reconciler.store.sql import ModelRecordServiceSQL

        if conn is not None:
            return ModelRecordServiceSQL.from_connection(conn, lock or threading.Lock())
        return ModelRecordServiceBase.from_db_file(Path(config.db_path))

    # --- records ------------------------------------------------------------------------

    @abstractmethod
    def add_model(self, key: str, config: ModelConfigBase | dict[str, Any],
                  files: Optional[Sequence[FileState]] = None) -> AnyModelConfig:
        """Add a record under ``key`` (which overrides any key in ``config``).

        ``files``: the record's file states, written in the same atomic write as the record
        (a crash leaves the record with its files or no record, never a record without
        them).  Raises DuplicateModelException when ``key`` exists or another record has the
        same ``path``; InvalidModelConfigException when ``config`` does not validate.
        """

    @abstractmethod
    def update_model(self, key: str, config: ModelConfigBase | dict[str, Any],
                     files: Optional[Sequence[FileState]] = None) -> AnyModelConfig:
        """Replace (config object) or patch (sparse dict) the record ``key``.

        ``files``: when given, they replace the record's file states in the same atomic
        write.  Raises UnknownModelException, InvalidModelConfigException, or
        DuplicateModelException when the new path belongs to another record.
        """

    @abstractmethod
    def del_model(self, key: str) -> None:
        """Delete the record ``key`` and its file states (UnknownModelException)."""

    @abstractmethod
    def get_model(self, key: str) -> AnyModelConfig:
        """The record ``key`` (UnknownModelException)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether a record ``key`` exists."""

    @abstractmethod
    def all_models(self) -> list[AnyModelConfig]:
        """Every record, in insertion order."""

    # --- searches -----------------------------------------------------------------------

    @abstractmethod
    def search_by_path(self, path: str | Path) -> list[AnyModelConfig]:
        """Records whose ``path`` equals ``str(path)`` (a plain string compare)."""

    @abstractmethod
    def search_by_attr(
        self,
        model_name: Optional[str] = None,
        base_model: Optional[BaseModelType | str] = None,
        model_type: Optional[ModelType | str] = None,
        model_format: Optional[ModelFormat | str] = None,
    ) -> list[AnyModelConfig]:
        """Records matching every criterion given; none given = all records."""

    def search_by_name(
        self,
        name: Optional[str] = None,
        base: Optional[BaseModelType | str] = None,
        type: Optional[ModelType | str] = None,  # noqa: A002 - the seed's parameter name
    ) -> list[AnyModelConfig]:
        """The seed's spelling of :meth:`search_by_attr` (without format)."""
        return self.search_by_attr(model_name=name, base_model=base, model_type=type)

    @abstractmethod
    def search_by_hash(self, hash: str) -> list[AnyModelConfig]:  # noqa: A002 - seed name
        """Records whose ``hash`` equals ``hash``."""

    @abstractmethod
    def search_by_tag(self, tags: Iterable[str]) -> list[AnyModelConfig]:
        """Records having ALL of ``tags`` (no tags = all records)."""

    def get_model_by_attr(
        self,
        name: Optional[str] = None,
        base: Optional[BaseModelType | str] = None,
        type: Optional[ModelType | str] = None,  # noqa: A002 - the seed's parameter name
        format: Optional[ModelFormat | str] = None,  # noqa: A002
    ) -> list[AnyModelConfig]:
        """Records matching every attribute given (the seed's ``mm.store.get_model_by_attr``)."""
        return self.search_by_attr(model_name=name, base_model=base, model_type=type, model_format=format)

    def model_info_by_name(
        self,
        name: str,
        base_model: BaseModelType | str,
        model_type: ModelType | str,
    ) -> AnyModelConfig:
        """The one record with this name, base and type (the seed's argument names).

        UnknownModelException if none; DuplicateModelException if several (then use
        :meth:`search_by_name` and pick by key).
        """
        found = self.search_by_attr(model_name=name, base_model=base_model, model_type=model_type)
        if not found:
            raise UnknownModelException(f"no model named {name!r} with base {base_model} and type {model_type}")
        if len(found) > 1:
            keys = ", ".join(c.key for c in found)
            raise DuplicateModelException(
                f"{len(found)} models named {name!r} with base {base_model} and type {model_type}: {keys}")
        return found[0]

    # --- store identity -----------------------------------------------------------------

    @abstractmethod
    def version(self) -> str:
        """The store's schema version."""

    @property
    @abstractmethod
    def lineage(self) -> str:
        """A uuid4 hex made when the store file was created; never changes."""

    @property
    @abstractmethod
    def serial(self) -> int:
        """Bumped by one by every write; persisted and visible to other processes."""

    # --- per-file states ----------------------------------------------------------------

    @abstractmethod
    def set_files(self, key: str, files: Sequence[FileState]) -> None:
        """Replace the file states of model ``key`` (UnknownModelException)."""

    @abstractmethod
    def get_files(self, key: str) -> list[FileState]:
        """The file states of model ``key``, in the order set (UnknownModelException)."""

    @abstractmethod
    def all_files(self) -> dict[str, list[FileState]]:
        """File states of every model, keyed by model key (``[]`` for a model without any)."""

    # --- view links ---------------------------------------------------------------------

    def view_links(self) -> list[ViewLinkState]:
        """Every file (or config section) a ModelView made, in the order recorded."""
        raise NotImplementedError(f"{type(self).__name__} does not record view links")

    def update_view_links(self, add: Sequence[ViewLinkState] = (),
                          remove: Sequence[tuple[str, str]] = ()) -> None:
        """One write: forget the (view, path) pairs of ``remove``, then record (or re-record) ``add``."""
        raise NotImplementedError(f"{type(self).__name__} does not record view links")

    # --- lifetime -----------------------------------------------------------------------

    @abstractmethod
    def close(self) -> None:
        """Release the store's connection / handles; further use is an error."""

    def __enter__(self) -> ModelRecordServiceBase:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


__all__ = ["ModelRecordServiceBase", "SQL_SUFFIXES", "ViewLinkState", "YAML_SUFFIXES"]
