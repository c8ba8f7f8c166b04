"""The last step of every install: move verified, staged files into place and record them.

Called by :meth:`ModelInstallService.install_staged` under the service's install lock (the
seed's "single serialized background thread"), so two installs never pass the destination
check together.  A failure after the rename puts everything back as it was: the new files
return to staging and any files they displaced return to their place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Optional

from reconciler.configs import FileState, new_model_key, validate_config
from reconciler.errors import DuplicateModelException, InstallError
from reconciler.install.copy import discard, files_aside, move_into_place, same_content, with_sha256
from reconciler.install.paths import install_destination, record_path, removable, resolve_model_path
from reconciler.probe.hashing import file_states, states_hash
from reconciler.settings import AppSettings
from reconciler.store.base import ModelRecordServiceBase

#: config keys the prober decides unless the caller overrides them
PROBED_KEYS = ("type", "format", "base", "variant", "prediction_type", "upcast_attention", "repo_variant", "config")


def check_destination_free(store: ModelRecordServiceBase, models_dir: Path, dest: Path,
                           replace_key: Optional[str], staged: Optional[Path] = None) -> None:
    """Refuse to put new files at ``dest`` unless they replace ``replace_key``'s own.

    Files that no record owns are the user's (InstallError), unless they are byte for byte
    the ``staged`` files about to land (an apply killed between its rename and its record
    write left them): replacing them with the same bytes loses nothing.  Files of another
    record are that model (DuplicateModelException: installing the same model twice, or two
    models whose name, base and type meet at one path).
    """
    if not (dest.exists() or dest.is_symlink()):
        return
    owners = [c for c in store.search_by_path(record_path(models_dir, dest)) if c.key != replace_key]
    if owners:
        raise DuplicateModelException(
            f"{dest} is already installed as model {owners[0].key} ({owners[0].name!r}); "
            "delete it or install under another name")
    if replace_key is None and not (staged is not None and same_content(dest, staged)):
        raise InstallError(f"{dest} already exists and no record owns it; refusing to overwrite it")


def add_record(store: ModelRecordServiceBase, key: str, data: Mapping[str, Any], files: Sequence[FileState]) -> str:
    """Validate ``data`` into a config, add it under ``key`` with its file states; returns ``key``."""
    store.add_model(key, validate_config({**data, "key": key}), files=list(files))  # one atomic write
    return key


def land(store: ModelRecordServiceBase, settings: AppSettings, model_path: Path, data: dict[str, Any],
         digests: Mapping[str, str], replace_key: Optional[str]) -> str:
    """Rename the staged ``model_path`` to its destination and write (or rewrite) the record.

    ``data`` holds the probed and overridden config fields; ``digests`` the verified sha256
    of each file (by path inside the model, ``""`` for a single file).  With
    ``replace_key`` the record keeps its key and its old files go once the new ones are in.
    """
    models_dir = settings.models_dir
    new_key = str(data.pop("key", None) or new_model_key())
    dest = install_destination(models_dir, data["base"], data["type"], data["name"], model_path)
    old = store.get_model(replace_key) if replace_key else None
    check_destination_free(store, models_dir, dest, replace_key, staged=model_path)
    displaced = move_into_place(model_path, dest, settings.tmp_dir)
    try:
        states = with_sha256(file_states(dest), digests)
        data.update(path=record_path(models_dir, dest), inplace=False, hash=states_hash(states))
        if old is None:
            key = add_record(store, new_key, data, states)
        else:
            merged = {**old.model_dump(exclude={"key"}), **data}
            for stale in PROBED_KEYS:
                if stale not in data:
                    merged.pop(stale, None)
            old_path = resolve_model_path(models_dir, old)
            moved = not old.inplace and old_path.absolute() != dest.absolute() and removable(old_path, models_dir)
            # the old files go aside before the record moves on: a crash never strands them
            with files_aside(old_path, settings.tmp_dir, models_dir, owned=moved):
                store.update_model(old.key, validate_config({**merged, "key": old.key}), files=states)
            key = old.key
    except BaseException:
        os.replace(dest, model_path)  # the new files go back to staging, which the caller clears
        if displaced is not None:
            os.replace(displaced, dest)
            displaced = None
        raise
    finally:
        discard(displaced)
    return key


__all__ = ["PROBED_KEYS", "add_record", "check_destination_free", "land"]
