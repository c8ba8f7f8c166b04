"""ModelInstallService: the one path through which models are installed, registered and
deleted (the seed's API).  The reconciler's apply calls it for every change to disk.

This module holds the local-path operations; remote sources (URL, Hugging Face, Civitai)
are added by later layers onto the same service.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import FileState, ModelConfigBase, new_model_key, validate_config
from reconciler.errors import InstallError, SourceNotFoundError, UnknownModelException
from reconciler.events import EventBus
from reconciler.install.copy import discard, move_into_place, prune_empty_parents, stage_copy
from reconciler.install.paths import install_destination, is_inside, record_path, resolve_model_path
from reconciler.probe.hashing import fast_hash, file_states
from reconciler.probe.probe import probe_model
from reconciler.settings import AppSettings
from reconciler.store.base import ModelRecordServiceBase

log = logging.getLogger(__name__)

#: config keys the prober decides unless the caller overrides them
PROBED_KEYS = ("type", "format", "base", "variant", "prediction_type", "upcast_attention", "repo_variant", "config")


def local_fingerprint(path: Path) -> str:
    """A cheap fingerprint of a local source: total size and newest mtime of its files."""
    if path.is_file():
        st = path.stat()
        return f"{st.st_size}:{st.st_mtime_ns}"
    total, newest, count = 0, 0, 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            st = Path(dirpath, name).stat()
            total += st.st_size
            newest = max(newest, st.st_mtime_ns)
            count += 1
    return f"{total}:{newest}:{count}"


class ModelInstallService:
    """Install, register and delete models, keeping records and files in step."""

    def __init__(
        self,
        app_config: AppSettings,
        record_store: ModelRecordServiceBase,
        download_queue: Any = None,
        metadata_store: Any = None,
        session: Any = None,
        event_bus: Optional[EventBus] = None,
    ) -> None:
        self.app_config = app_config
        self.record_store = record_store
        self.download_queue = download_queue
        self.metadata_store = metadata_store
        self.session = session
        self.event_bus = event_bus or EventBus()
        self._started = False

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Create the models dir and its state folders."""
        self.app_config.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._started = True

    def stop(self) -> None:
        """Stop background work (none for local installs)."""
        self._started = False

    @property
    def models_dir(self) -> Path:
        return self.app_config.models_dir

    # --- probing -------------------------------------------------------------------------------
    def probe(self, model_path: Path, config: Optional[Mapping[str, Any]] = None) -> tuple[dict[str, Any], list[str]]:
        """Probe ``model_path`` and merge ``config`` over the result (config wins).

        Returns the merged config dict (without key/path) and the prober's notes.
        """
        config = dict(config or {})
        overrides = {k: config[k] for k in PROBED_KEYS if config.get(k) is not None}
        result = probe_model(model_path, overrides)
        merged = {**result.fields, **{k: v for k, v in config.items() if v is not None}}
        merged.setdefault("name", model_path.stem if model_path.is_file() else model_path.name)
        return merged, list(result.notes)

    # --- seed API: local paths --------------------------------------------------------------
    def register_path(self, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> str:
        """Register a model where it lies (in place); returns the new record's key."""
        model_path = self._existing(model_path)
        data, _ = self.probe(model_path, config)
        key = str(data.pop("key", None) or new_model_key())
        data.update(path=str(model_path.absolute()), inplace=True)
        data.setdefault("source", str(model_path.absolute()))
        data["hash"] = fast_hash(model_path)
        return self._add_record(key, data, file_states(model_path))

    def install_path(self, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> str:
        """Copy a model into ``<models_dir>/<base>/<type>/<name>`` and register it."""
        model_path = self._existing(model_path)
        data, _ = self.probe(model_path, config)
        key = str(data.pop("key", None) or new_model_key())
        dest = install_destination(self.models_dir, data["base"], data["type"], data["name"], model_path)
        if dest.exists() and not self.record_store.search_by_path(record_path(self.models_dir, dest)):
            raise InstallError(f"{dest} already exists and no record owns it; refusing to overwrite it")
        self._emit("model_install_running", source=str(model_path), local_path=str(dest))
        staged, digests = stage_copy(model_path, self.app_config.tmp_dir)
        displaced = None
        try:
            displaced = move_into_place(staged, dest, self.app_config.tmp_dir)
            data.update(path=record_path(self.models_dir, dest), inplace=False, hash=fast_hash(dest))
            data.setdefault("source", str(model_path.absolute()))
            data.setdefault("source_fingerprint", local_fingerprint(model_path))
            key = self._add_record(key, data, _with_sha256(file_states(dest), digests))
        except BaseException:
            discard(staged)
            raise
        finally:
            discard(displaced)
        self._emit("model_install_completed", source=str(model_path), key=key, total_bytes=_size(dest))
        return key

    def reinstall_path(self, key: str, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> ModelConfigBase:
        """Replace or repair an existing record's files from ``model_path``, keeping its key.

        New bytes are staged beside the old ones; the swap is a rename, the record is
        rewritten, and only then are the old files removed.
        """
        old = self.record_store.get_model(key)
        model_path = self._existing(model_path)
        data, _ = self.probe(model_path, config)
        data.pop("key", None)
        dest = install_destination(self.models_dir, data["base"], data["type"], data["name"], model_path)
        old_path = resolve_model_path(self.models_dir, old)
        staged, digests = stage_copy(model_path, self.app_config.tmp_dir)
        displaced = None
        try:
            displaced = move_into_place(staged, dest, self.app_config.tmp_dir)
            data.update(path=record_path(self.models_dir, dest), inplace=False, hash=fast_hash(dest))
            data.setdefault("source", str(model_path.absolute()))
            data.setdefault("source_fingerprint", local_fingerprint(model_path))
            merged = {**old.model_dump(exclude={"key"}), **data}
            for stale in PROBED_KEYS:  # let the new probe decide what the old record said
                if stale not in data:
                    merged.pop(stale, None)
            record = self.record_store.update_model(key, validate_config({**merged, "key": key}))
            self.record_store.set_files(key, _with_sha256(file_states(dest), digests))
        except BaseException:
            discard(staged)
            if displaced is not None and not dest.exists():
                os.replace(displaced, dest)
                displaced = None
            raise
        finally:
            discard(displaced)
        if not old.inplace and old_path.absolute() != dest.absolute() and is_inside(old_path, self.models_dir):
            discard(old_path)
            prune_empty_parents(old_path, self.models_dir)
        self._emit("model_install_completed", source=str(model_path), key=key, total_bytes=_size(dest))
        return record

    def adopt_path(self, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> str:
        """Register files already lying at their install destination inside models_dir."""
        model_path = self._existing(model_path)
        data, _ = self.probe(model_path, config)
        key = str(data.pop("key", None) or new_model_key())
        inside = is_inside(model_path, self.models_dir)
        data.update(path=record_path(self.models_dir, model_path), inplace=not inside, hash=fast_hash(model_path))
        return self._add_record(key, data, file_states(model_path))

    def refresh_files(self, key: str) -> ModelConfigBase:
        """Re-read a record's file states and hash from disk (after in-place files changed)."""
        record = self.record_store.get_model(key)
        path = self._existing(resolve_model_path(self.models_dir, record))
        self.record_store.set_files(key, file_states(path))
        return self.record_store.update_model(key, {"hash": fast_hash(path)})

    def update_fields(self, key: str, changes: Mapping[str, Any]) -> ModelConfigBase:
        """Change record fields only (no bytes move)."""
        return self.record_store.update_model(key, dict(changes))

    def unregister(self, key: str) -> None:
        """Remove the record, leaving its files where they are."""
        self.record_store.del_model(key)

    def delete(self, key: str) -> None:
        """Remove the record and, for models copied into models_dir, their files.

        Files outside models_dir or registered in place are never removed.
        """
        record = self.record_store.get_model(key)
        path = resolve_model_path(self.models_dir, record)
        self.record_store.del_model(key)
        if not record.inplace and is_inside(path, self.models_dir):
            discard(path)
            prune_empty_parents(path, self.models_dir)
        self._emit("model_install_deleted", key=key, local_path=str(path))

    def unconditionally_delete(self, key: str) -> None:
        """Remove the record and its files wherever they are (the caller asked for it)."""
        record = self.record_store.get_model(key)
        path = resolve_model_path(self.models_dir, record)
        self.record_store.del_model(key)
        discard(path)
        self._emit("model_install_deleted", key=key, local_path=str(path))

    # --- helpers ---------------------------------------------------------------------------------
    def _existing(self, model_path: Path | str) -> Path:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise SourceNotFoundError(f"{path} does not exist")
        return path

    def _add_record(self, key: str, data: dict[str, Any], files: list[FileState]) -> str:
        config = validate_config({**data, "key": key})
        self.record_store.add_model(key, config)
        try:
            self.record_store.set_files(key, files)
        except UnknownModelException:  # pragma: no cover - added just above
            raise
        return key

    def _emit(self, name: str, **payload: Any) -> None:
        self.event_bus.emit(name, **payload)


def _with_sha256(states: list[FileState], digests: Mapping[str, str]) -> list[FileState]:
    return [s.model_copy(update={"sha256": digests.get(s.path)}) if s.path in digests else s for s in states]


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
