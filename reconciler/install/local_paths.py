"""The seed's local-path API of the install service: register, install, adopt, replace and
delete models that lie on this machine.

:class:`LocalPathInstalls` is a mixin of :class:`~reconciler.install.service.ModelInstallService`
(it uses the service's record store, settings, prober and ``install_staged``); it lives here
so that each module has one job: the service runs install jobs, this module moves local files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from reconciler.configs import ModelConfigBase, new_model_key
from reconciler.errors import SourceNotFoundError
from reconciler.install import landing
from reconciler.install.copy import discard, files_aside, stage_copy
from reconciler.install.paths import (
    install_destination,
    is_inside,
    record_path,
    removable,
    resolve_model_path,
)
from reconciler.probe.hashing import file_states, states_hash

if TYPE_CHECKING:
    from reconciler.settings import AppSettings
    from reconciler.store.base import ModelRecordServiceBase


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


class LocalPathInstalls:
    """register_path, install_path, adopt_path, reinstall_path, delete... (see the module)."""

    app_config: AppSettings
    record_store: ModelRecordServiceBase

    # provided by the service
    def probe(self, model_path: Path, config: Optional[Mapping[str, Any]] = None) -> tuple[dict[str, Any], list[str]]:
        raise NotImplementedError

    def install_staged(self, model_path: Path, config: Mapping[str, Any], digests: Mapping[str, str],
                       replace_key: Optional[str], probed: bool = False, shown_as: Optional[str] = None) -> str:
        raise NotImplementedError

    def emit(self, name: str, **payload: Any) -> None:
        raise NotImplementedError

    @property
    def models_dir(self) -> Path:
        return self.app_config.models_dir

    # --- seed API: local paths --------------------------------------------------------------
    def register_path(self, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> str:
        """Register a model where it lies (in place); returns the new record's key."""
        model_path = self._existing(model_path)
        data, _ = self.probe(model_path, config)
        key = str(data.pop("key", None) or new_model_key())
        data.update(path=str(model_path.absolute()), inplace=True)
        data.setdefault("source", str(model_path.absolute()))
        states = file_states(model_path)
        data["hash"] = states_hash(states)
        return landing.add_record(self.record_store, key, data, states)

    def install_path(self, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> str:
        """Copy a model into ``<models_dir>/<base>/<type>/<name>`` and register it."""
        return self.copy_in(model_path, config, replace_key=None).key

    def reinstall_path(self, key: str, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> ModelConfigBase:
        """Replace or repair an existing record's files from ``model_path``, keeping its key.

        New bytes are staged beside the old ones; the swap is a rename, the record is
        rewritten, and only then are the old files removed.
        """
        self.record_store.get_model(key)  # UnknownModelException before any copying
        return self.copy_in(model_path, config, replace_key=key)

    def copy_in(self, model_path: Path | str, config: Optional[Mapping[str, Any]],
                 replace_key: Optional[str], emit: bool = True) -> ModelConfigBase:
        """Stage a copy of a local model under tmp/, then install it like a download.

        ``emit``: report ``model_install_running`` / ``_completed`` here (a direct call);
        an install job reports them itself, once.
        """
        model_path = self._existing(model_path)
        data, _ = self.probe(model_path, config)  # refuse a non-model before copying a byte
        data.setdefault("source", str(model_path.absolute()))
        data.setdefault("source_fingerprint", local_fingerprint(model_path))
        dest = install_destination(self.models_dir, data["base"], data["type"], data["name"], model_path)
        landing.check_destination_free(self.record_store, self.models_dir, dest, replace_key)
        if emit:
            self.emit("model_install_running", source=str(model_path), local_path=str(dest))
        staged, digests = stage_copy(model_path, self.app_config.tmp_dir)
        try:
            key = self.install_staged(staged, data, digests, replace_key, probed=True)
        finally:
            discard(staged)  # gone already when the install moved it into place
        record = self.record_store.get_model(key)
        dest = resolve_model_path(self.models_dir, record)
        if emit:
            self.emit("model_install_completed", source=str(model_path), key=key, total_bytes=files_size(dest))
        return record

    def adopt_path(
        self, model_path: Path | str, config: Optional[Mapping[str, Any]] = None, inplace: Optional[bool] = None
    ) -> str:
        """Register files that already lie in place (usually inside models_dir) without copying.

        ``inplace`` says who owns the files: True = the user's (never deleted), False = the
        record's.  By default files inside models_dir belong to the record.
        """
        model_path = self._existing(model_path)
        data, _ = self.probe(model_path, config)
        key = str(data.pop("key", None) or new_model_key())
        owned_by_user = not is_inside(model_path, self.models_dir) if inplace is None else inplace
        states = file_states(model_path)
        data.update(path=record_path(self.models_dir, model_path), inplace=owned_by_user, hash=states_hash(states))
        data.setdefault("source", str(model_path.absolute()))
        return landing.add_record(self.record_store, key, data, states)

    def reregister_inplace(self, key: str, model_path: Path | str, config: Optional[Mapping[str, Any]] = None) -> str:
        """Point an existing record (same key) at files registered in place.

        The old record's copied files are removed only after the new registration is
        written, and never when they are the new source itself.
        """
        old = self.record_store.get_model(key)
        model_path = self._existing(model_path)
        old_path = resolve_model_path(self.models_dir, old)
        old_files = self.record_store.get_files(key)
        owned = (not old.inplace and old_path.absolute() != model_path.absolute()
                 and removable(old_path, self.models_dir))
        # the old copy goes aside under tmp/ first: a crash at any later step leaves it for
        # gc, never in the models dir without a record
        with files_aside(old_path, self.app_config.tmp_dir, self.models_dir, owned):
            self.record_store.del_model(key)
            try:
                self.register_path(model_path, {**dict(config or {}), "key": key})
            except BaseException:
                self.record_store.add_model(key, old, files=old_files)
                raise
        return key

    def refresh_files(self, key: str) -> ModelConfigBase:
        """Re-read a record's file states and hash from disk (after in-place files changed)."""
        record = self.record_store.get_model(key)
        path = self._existing(resolve_model_path(self.models_dir, record))
        states = file_states(path)
        return self.record_store.update_model(key, {"hash": states_hash(states)}, files=states)  # one write

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
        owned = not record.inplace and removable(path, self.models_dir)
        # files first go aside under tmp/ (one rename), so a crash never leaves them in the
        # models dir without their record: at worst the record outlives them (the next apply
        # deletes it) and gc clears tmp/
        with files_aside(path, self.app_config.tmp_dir, self.models_dir, owned):
            self.record_store.del_model(key)
        self.emit("model_install_deleted", key=key, local_path=str(path))

    def unconditionally_delete(self, key: str) -> None:
        """Remove the record and its files wherever they are (the caller asked for it)."""
        record = self.record_store.get_model(key)
        path = resolve_model_path(self.models_dir, record)
        self.record_store.del_model(key)
        discard(path)
        self.emit("model_install_deleted", key=key, local_path=str(path))

    def _existing(self, model_path: Path | str) -> Path:
        path = Path(model_path).expanduser()
        if not path.exists():
            raise SourceNotFoundError(f"{path} does not exist")
        return path


def files_size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


__all__ = ["LocalPathInstalls", "files_size", "local_fingerprint"]
