"""Observe the actual state: records joined with what is on disk.

Drift is found from the per-file table: a file whose size and mtime_ns are unchanged is
taken as unchanged without reading it; otherwise its sha256 (when recorded) or imohash
decides.  So a no-op plan over thousands of models costs one stat per file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from reconciler.configs import FileState, ModelConfigBase
from reconciler.install.paths import resolve_model_path
from reconciler.probe.hashing import fast_hash, sha256_file
from reconciler.store.base import ModelRecordServiceBase


class ModelState(str, Enum):
    """Live state of a record, as `status` reports it."""

    in_sync = "in_sync"
    drifted = "drifted"
    missing = "missing"
    unmanaged = "unmanaged"


@dataclass
class ObservedModel:
    """One record and what its files look like now."""

    record: ModelConfigBase
    path: Path
    files: list[FileState]
    missing_files: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)

    @property
    def files_state(self) -> ModelState:
        """in_sync, drifted or missing, judged from the files alone."""
        if not self.path.exists() or (self.files and len(self.missing_files) == len(self.files)):
            return ModelState.missing
        if self.missing_files or self.changed_files:
            return ModelState.drifted
        return ModelState.in_sync

    @property
    def state(self) -> ModelState:
        """The state `status` shows: unmanaged records say so, whatever their files."""
        if self.record.managed_by is None:
            return ModelState.unmanaged
        return self.files_state

    def drift_summary(self) -> str:
        """A short reason naming the files that drifted."""
        parts = []
        if self.missing_files:
            parts.append("missing: " + ", ".join(_label(p) for p in self.missing_files[:5]))
        if self.changed_files:
            parts.append("changed on disk: " + ", ".join(_label(p) for p in self.changed_files[:5]))
        return "; ".join(parts) or "files missing"


def _label(rel: str) -> str:
    return rel or "(the model file)"


def _file_changed(path: Path, recorded: FileState, st: os.stat_result) -> bool:
    if st.st_size != recorded.size:
        return True
    if st.st_mtime_ns == recorded.mtime_ns:
        return False
    if recorded.sha256:
        return sha256_file(path) != recorded.sha256
    return fast_hash(path) != recorded.imohash


def observe_model(models_dir: Path, record: ModelConfigBase, files: list[FileState]) -> ObservedModel:
    """Compare one record's file table with the disk."""
    path = resolve_model_path(models_dir, record)
    observed = ObservedModel(record=record, path=path, files=files)
    for recorded in files:
        file_path = path / recorded.path if recorded.path else path
        try:
            st = os.stat(file_path)
        except (FileNotFoundError, NotADirectoryError):
            observed.missing_files.append(recorded.path)
            continue
        if _file_changed(file_path, recorded, st):
            observed.changed_files.append(recorded.path)
    return observed


def observe_all(store: ModelRecordServiceBase, models_dir: Path) -> list[ObservedModel]:
    """Every record with its live state (two store queries, one stat per file)."""
    all_files = store.all_files()
    return [observe_model(models_dir, rec, all_files.get(rec.key, [])) for rec in store.all_models()]
