"""The YAML file record store.

File layout::

    __metadata__: {version: '1', lineage: <uuid4 hex>, serial: <int>}
    models: {<key>: {<config fields>}}
    files: {<key>: [{path, size, mtime_ns, imohash, sha256}]}
    view_links: [{view, path, model, model_key, target, mode, ...}]   # only once a view made one

Every write is a read-modify-write under ``filelock.FileLock(<path>.lock)`` (so two
processes never interleave) that re-reads the file first and replaces it atomically (temp
file in the same folder, fsync, ``os.replace``): a crash leaves the old file or the new
one, never a truncated one (a temp file a killed writer leaves is removed by the next
writer, or by the next open, under the lock).  Readers need no file lock; they re-read the
file when its inode, mtime or size changed since they last read it.  The in-memory state
is replaced whole on each write (copy-on-write), so a reader can use a snapshot outside
the lock.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Optional, TypeVar

from filelock import FileLock, Timeout

from reconciler.configs import AnyModelConfig, FileState, ModelConfigBase, canonical_field_names
from reconciler.errors import (
    DuplicateModelException,
    StoreFormatError,
    StoreLockedError,
    UnknownModelException,
)
from reconciler.store import _yamlio
from reconciler.store._records import (
    coerce_files,
    config_for_add,
    config_for_update,
    decode_record,
    enum_str,
    tag_list,
    to_record,
)
from reconciler.store.base import ModelRecordServiceBase, ViewLinkState
from reconciler.store.sql import SQLITE_MAGIC
from reconciler.taxonomy import BaseModelType, ModelFormat, ModelType

FORMAT_VERSION = 1
HEADER_KEY = "__metadata__"
LOCK_TIMEOUT_S = 10.0
_BANNER = "# model-reconciler record store. Written atomically by the tool; edit only while it is not running.\n"

T = TypeVar("T")
Models = dict[str, dict[str, Any]]
Files = dict[str, list[dict[str, Any]]]


class _State:
    """One parsed version of the file; never mutated once published."""

    __slots__ = ("meta", "models", "files", "links")

    def __init__(self, meta: dict[str, Any], models: Models, files: Files,
                 links: Optional[list[dict[str, Any]]] = None) -> None:
        self.meta = meta
        self.models = models
        self.files = files
        self.links = links or []


def _parse(raw: bytes, where: Path) -> _State:
    """Parse and check the file's bytes; StoreFormatError (one line, naming the file) if wrong."""
    if raw.startswith(SQLITE_MAGIC):
        raise StoreFormatError(f"{where}: is a SQLite database, not a YAML record store")
    try:
        doc = _yamlio.load(raw.decode("utf-8"))
    except (UnicodeDecodeError, _yamlio.YAMLParseError) as exc:
        raise StoreFormatError(f"{where}: not a readable YAML record store: {exc}") from exc
    meta = doc.get(HEADER_KEY) if isinstance(doc, dict) else None
    if not isinstance(meta, dict) or not isinstance(meta.get("lineage"), str) or "version" not in meta:
        raise StoreFormatError(f"{where}: YAML file without the model-reconciler {HEADER_KEY} header")
    try:
        version = int(str(meta["version"]).split(".")[0])
        serial = int(meta.get("serial", 0))
    except ValueError as exc:
        raise StoreFormatError(f"{where}: bad {HEADER_KEY} header: {exc}") from exc
    if version > FORMAT_VERSION:
        raise StoreFormatError(
            f"{where}: record store format version {meta['version']} was written by a newer model-reconciler "
            f"(this one knows up to {FORMAT_VERSION}); upgrade model-reconciler"
        )
    raw_models = doc.get("models") or {}
    raw_files = doc.get("files") or {}
    if not isinstance(raw_models, dict) or not isinstance(raw_files, dict):
        raise StoreFormatError(f"{where}: 'models' and 'files' must be mappings")
    models: Models = {}
    for key, record in raw_models.items():
        if not isinstance(record, dict):
            raise StoreFormatError(f"{where}: model {key} is not a mapping")
        models[str(key)] = {**canonical_field_names(record), "key": str(key)}
    files: Files = {}
    for key, states in raw_files.items():
        if not isinstance(states, list) or not all(isinstance(s, dict) for s in states):
            raise StoreFormatError(f"{where}: files of model {key} must be a list of mappings")
        if str(key) in models:  # states of a deleted model are dropped
            files[str(key)] = states
    links = doc.get("view_links") or []
    if not isinstance(links, list) or not all(isinstance(x, dict) for x in links):
        raise StoreFormatError(f"{where}: 'view_links' must be a list of mappings")
    return _State({"version": str(meta["version"]), "lineage": meta["lineage"], "serial": serial}, models, files,
                  links)


def _render(state: _State) -> bytes:
    doc: dict[str, Any] = {HEADER_KEY: state.meta, "models": state.models, "files": state.files}
    if state.links:
        doc["view_links"] = state.links
    return (_BANNER + _yamlio.dump(doc)).encode("utf-8")


def _atomic_write(path: Path, data: bytes) -> tuple[int, int, int]:
    """Write ``data`` to ``path`` atomically; return the new file's (inode, mtime_ns, size)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
            st = os.fstat(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (POSIX)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _file_dicts(files: Optional[Sequence[FileState]]) -> Optional[list[dict[str, Any]]]:
    return None if files is None else [s.model_dump(mode="json") for s in coerce_files(files)]


def _put_files(state: _State, key: str, states: list[dict[str, Any]]) -> None:
    if states:
        state.files[key] = states
    else:
        state.files.pop(key, None)


class ModelRecordServiceFile(ModelRecordServiceBase):
    """Model records in one YAML file."""

    def __init__(self, path: Path | str) -> None:
        self._path = Path(path)
        self._lock = threading.RLock()
        self._flock = FileLock(f"{self._path}.lock", timeout=LOCK_TIMEOUT_S)
        self._state: Optional[_State] = None
        self._raw: Optional[bytes] = None
        self._stamp: Optional[tuple[int, int, int]] = None
        self._closed = False
        if self._path.is_dir():
            raise StoreFormatError(f"{self._path}: is a directory, not a YAML record store")
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if not self._nonempty():
                with self._file_lock():
                    if not self._nonempty():  # another process may have created it meanwhile
                        fresh = _State({"version": str(FORMAT_VERSION), "lineage": uuid.uuid4().hex, "serial": 0}, {}, {})
                        raw = _render(fresh)
                        self._stamp = _atomic_write(self._path, raw)
                        self._state, self._raw = fresh, raw
            if self._stale_temps():
                try:
                    with self._flock.acquire(timeout=0):
                        self._clear_stale_temps()
                except Timeout:
                    pass  # a writer is at work (its temp file is live); the next write clears them
            self._refresh(strict=True)

    # --- plumbing -----------------------------------------------------------------------

    def _nonempty(self) -> bool:
        try:
            return self._path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def _stale_temps(self) -> list[Path]:
        """Temp files of :func:`_atomic_write` beside the store (``.<name>.*.tmp``)."""
        return list(self._path.parent.glob(f".{glob.escape(self._path.name)}.*.tmp"))

    def _clear_stale_temps(self) -> None:
        """Remove temp files a killed writer left; caller holds the file lock.

        Every writer holds the file lock while its temp file exists, so one seen under the
        lock belongs to a writer that died between creating it and the rename.
        """
        for tmp in self._stale_temps():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @contextlib.contextmanager
    def _file_lock(self) -> Any:
        try:
            with self._flock:
                yield
        except Timeout as exc:
            raise StoreLockedError(f"{self._path}: record store locked by another process ({exc.lock_file})") from exc

    def _refresh(self, strict: bool) -> _State:
        """Re-read the file if it changed; ``strict`` compares bytes, not just the stat stamp.

        Writers use ``strict``: a stamp can repeat (coarse mtimes, a reused inode), bytes
        cannot lie.  Caller holds ``self._lock``.
        """
        if self._closed:
            raise ValueError(f"{self._path}: record store is closed")
        try:
            with self._path.open("rb") as fh:
                st = os.fstat(fh.fileno())
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
                if not strict and stamp == self._stamp and self._state is not None:
                    return self._state
                raw = fh.read()
        except FileNotFoundError:
            raise StoreFormatError(f"{self._path}: record store file has disappeared") from None
        if raw != self._raw or self._state is None:
            self._state = _parse(raw, self._path)
            self._raw = raw
        self._stamp = stamp
        return self._state

    def _snapshot(self) -> _State:
        with self._lock:
            return self._refresh(strict=False)

    def _write(self, change: Callable[[_State], T]) -> T:
        """Run ``change`` on a copy of the current state, bump the serial, write atomically.

        ``change`` may raise; then nothing is written and the serial is unchanged.
        """
        with self._lock, self._file_lock():
            self._clear_stale_temps()
            current = self._refresh(strict=True)
            draft = _State(dict(current.meta), dict(current.models), dict(current.files), list(current.links))
            result = change(draft)
            draft.meta["serial"] = int(draft.meta["serial"]) + 1
            raw = _render(draft)
            stamp = _atomic_write(self._path, raw)
            self._state, self._raw, self._stamp = draft, raw, stamp
            return result

    # --- records ------------------------------------------------------------------------

    def add_model(self, key: str, config: ModelConfigBase | dict[str, Any],
                  files: Optional[Sequence[FileState]] = None) -> AnyModelConfig:
        """See :meth:`ModelRecordServiceBase.add_model` (record and file states: one file write)."""
        record = config_for_add(key, config)
        states = _file_dicts(files)

        def change(state: _State) -> None:
            if key in state.models:
                raise DuplicateModelException(f"a model with key {key} already exists")
            self._check_path_free(state, record)
            state.models[key] = to_record(record)
            if states is not None:
                _put_files(state, key, states)

        self._write(change)
        return record

    def update_model(self, key: str, config: ModelConfigBase | dict[str, Any],
                     files: Optional[Sequence[FileState]] = None) -> AnyModelConfig:
        """See :meth:`ModelRecordServiceBase.update_model` (record and file states: one file write)."""
        states = _file_dicts(files)

        def change(state: _State) -> ModelConfigBase:
            if key not in state.models:
                raise UnknownModelException(f"unknown model key {key}")
            record = config_for_update(key, state.models[key], config)
            self._check_path_free(state, record)
            state.models[key] = to_record(record)
            if states is not None:
                _put_files(state, key, states)
            return record

        return self._write(change)

    def del_model(self, key: str) -> None:
        """See :meth:`ModelRecordServiceBase.del_model`."""

        def change(state: _State) -> None:
            if key not in state.models:
                raise UnknownModelException(f"unknown model key {key}")
            del state.models[key]
            state.files.pop(key, None)

        self._write(change)

    @staticmethod
    def _check_path_free(state: _State, record: ModelConfigBase) -> None:
        for other, data in state.models.items():
            if other != record.key and data.get("path") == record.path:
                raise DuplicateModelException(f"path {record.path!r} is already recorded as model {other}")

    def get_model(self, key: str) -> AnyModelConfig:
        """See :meth:`ModelRecordServiceBase.get_model`."""
        data = self._snapshot().models.get(key)
        if data is None:
            raise UnknownModelException(f"unknown model key {key}")
        return decode_record(data)

    def exists(self, key: str) -> bool:
        """See :meth:`ModelRecordServiceBase.exists`."""
        return key in self._snapshot().models

    def all_models(self) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.all_models`."""
        return [decode_record(d) for d in self._snapshot().models.values()]

    def _filter(self, keep: Callable[[dict[str, Any]], bool]) -> list[AnyModelConfig]:
        return [decode_record(d) for d in self._snapshot().models.values() if keep(d)]

    # --- searches -----------------------------------------------------------------------

    def search_by_path(self, path: str | Path) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.search_by_path`."""
        wanted = str(path)
        return self._filter(lambda d: d.get("path") == wanted)

    def search_by_attr(
        self,
        model_name: Optional[str] = None,
        base_model: Optional[BaseModelType | str] = None,
        model_type: Optional[ModelType | str] = None,
        model_format: Optional[ModelFormat | str] = None,
    ) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.search_by_attr`."""
        wanted = {
            field: enum_str(value)
            for field, value in (("name", model_name), ("base", base_model), ("type", model_type), ("format", model_format))
            if value is not None
        }
        return self._filter(lambda d: all(enum_str(d.get(f)) == v for f, v in wanted.items()))

    def search_by_hash(self, hash: str) -> list[AnyModelConfig]:  # noqa: A002 - seed name
        """See :meth:`ModelRecordServiceBase.search_by_hash`."""
        return self._filter(lambda d: d.get("hash") == hash)

    def search_by_tag(self, tags: Iterable[str]) -> list[AnyModelConfig]:
        """See :meth:`ModelRecordServiceBase.search_by_tag`."""
        wanted = set(tag_list(tags))
        return self._filter(lambda d: wanted.issubset(d.get("tags") or ()))

    # --- store identity -----------------------------------------------------------------

    def version(self) -> str:
        """See :meth:`ModelRecordServiceBase.version`."""
        return str(self._snapshot().meta["version"])

    @property
    def lineage(self) -> str:
        """See :attr:`ModelRecordServiceBase.lineage`."""
        return str(self._snapshot().meta["lineage"])

    @property
    def serial(self) -> int:
        """See :attr:`ModelRecordServiceBase.serial` (always checks the file's bytes)."""
        with self._lock:
            return int(self._refresh(strict=True).meta["serial"])

    # --- per-file states ----------------------------------------------------------------

    def set_files(self, key: str, files: Sequence[FileState]) -> None:
        """See :meth:`ModelRecordServiceBase.set_files`."""
        states = _file_dicts(files) or []

        def change(state: _State) -> None:
            if key not in state.models:
                raise UnknownModelException(f"unknown model key {key}")
            _put_files(state, key, states)

        self._write(change)

    def get_files(self, key: str) -> list[FileState]:
        """See :meth:`ModelRecordServiceBase.get_files`."""
        state = self._snapshot()
        if key not in state.models:
            raise UnknownModelException(f"unknown model key {key}")
        return [FileState.model_validate(s) for s in state.files.get(key, [])]

    def all_files(self) -> dict[str, list[FileState]]:
        """See :meth:`ModelRecordServiceBase.all_files`."""
        state = self._snapshot()
        return {key: [FileState.model_validate(s) for s in state.files.get(key, [])] for key in state.models}

    # --- view links ---------------------------------------------------------------------

    def view_links(self) -> list[ViewLinkState]:
        """See :meth:`ModelRecordServiceBase.view_links`."""
        return [ViewLinkState.model_validate(x) for x in self._snapshot().links]

    def update_view_links(self, add: Sequence[ViewLinkState] = (),
                          remove: Sequence[tuple[str, str]] = ()) -> None:
        """See :meth:`ModelRecordServiceBase.update_view_links`."""
        gone = set(remove) | {(link.view, link.path) for link in add}

        def change(state: _State) -> None:
            state.links = [x for x in state.links if (x.get("view"), x.get("path")) not in gone]
            state.links.extend(link.model_dump() for link in add)

        self._write(change)

    # --- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Forget the cached state; further use raises."""
        with self._lock:
            self._closed = True
            self._state = None
            self._raw = None


__all__ = ["FORMAT_VERSION", "HEADER_KEY", "ModelRecordServiceFile"]
