"""A size-bounded, least-recently-used cache of downloaded files and folders.

Used by ``ModelInstallService.download_and_cache`` under ``<models_dir>/.cache/downloads``.
Layout::

    <root>/index.json           {"version": 1, "clock": N, "entries": {digest: {...}}}
    <root>/.lock                filelock: every read-modify-write of the index holds it
    <root>/<digest>/<name>      one entry: the file or folder under its own name
    <root>/.tmp-<uuid>/         a put being staged (never an entry)
    <root>/.trash-<uuid>/       an entry being removed (never an entry)

``digest`` is the sha256 of the source string, so any source (URL, repo id) is a safe
folder name.  **The index is the truth**: a folder without an index entry is not an entry
(it is an orphan left by a crash, removed by :meth:`DownloadCache.sweep`), so a crash at
any point of :meth:`~DownloadCache.put` leaves either the old state or the new one.

The bytes are staged outside the lock (a large copy does not block other processes); only
the renames and the index write happen under it.  Recency is a counter stored in the index
and bumped under the lock, so two processes touching entries within the same clock tick
still order them exactly.  An evicted entry's files are removed even if another process
still holds its path from an earlier ``get``; callers that need the files for a long time
should copy or hard-link them out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any, Optional

from filelock import FileLock

from reconciler.errors import InstallError
from reconciler.install.copy import discard

log = logging.getLogger(__name__)

__all__ = ["DownloadCache", "source_digest"]

INDEX_NAME = "index.json"
LOCK_NAME = ".lock"
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
_INDEX_VERSION = 1


def source_digest(source: str) -> str:
    """The folder name of ``source``'s entry (sha256 hex of the source string)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _tree_size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _remove(path: Path) -> None:
    discard(path)


class DownloadCache:
    """Files and folders kept by source string, evicting the least recently used over ``max_bytes``.

    Safe across threads and processes that share ``root`` (a filelock guards the index).
    """

    def __init__(self, root: Path | str, max_bytes: int, lock_timeout: float = 60.0) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(str(self.root / LOCK_NAME), timeout=lock_timeout)

    # --- index -------------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.root / INDEX_NAME

    def _read_index(self) -> dict[str, Any]:
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": _INDEX_VERSION, "clock": 0, "entries": {}}
        except (OSError, ValueError) as exc:
            # an unreadable index loses the cache's contents, never anything else
            log.warning("download cache index %s is unreadable (%s); starting empty", self.index_path, exc)
            return {"version": _INDEX_VERSION, "clock": 0, "entries": {}}
        if not isinstance(data, dict) or not isinstance(data.get("entries"), dict):
            return {"version": _INDEX_VERSION, "clock": 0, "entries": {}}
        data.setdefault("clock", 0)
        return data

    def _write_index(self, data: dict[str, Any]) -> None:
        """Write the index through a temp file and a rename, so readers see old or new."""
        tmp = self.root / f"{_TMP_PREFIX}index-{uuid.uuid4().hex}.json"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.index_path)

    @staticmethod
    def _tick(data: dict[str, Any]) -> int:
        data["clock"] = int(data.get("clock", 0)) + 1
        return int(data["clock"])

    def _entry_path(self, digest: str, entry: dict[str, Any]) -> Path:
        return self.root / digest / str(entry["name"])

    # --- public API ---------------------------------------------------------------------------
    def get(self, source: str) -> Optional[Path]:
        """The cached path for ``source`` (marking it most recently used), or None."""
        digest = source_digest(source)
        with self._lock:
            data = self._read_index()
            entry = data["entries"].get(digest)
            if entry is None:
                return None
            path = self._entry_path(digest, entry)
            if not path.exists():  # removed behind our back: forget it
                del data["entries"][digest]
                self._write_index(data)
                return None
            entry["last_used"] = self._tick(data)
            entry["atime"] = time.time()
            self._write_index(data)
            return path

    def __contains__(self, source: object) -> bool:
        """True when ``source`` has an entry (does not touch its recency)."""
        if not isinstance(source, str):
            return False
        with self._lock:
            entry = self._read_index()["entries"].get(source_digest(source))
        return entry is not None and self._entry_path(source_digest(source), entry).exists()

    def put(self, source: str, path: Path | str, *, move: bool = False) -> Path:
        """Store the file or folder at ``path`` as ``source``'s entry; returns the cached path.

        The bytes are copied (or, with ``move=True``, moved) into a staging folder under the
        cache root first, then renamed into place under the lock, and only then does the
        index name the entry.  An existing entry for ``source`` is replaced.  Afterwards
        least recently used entries are evicted until the cache fits ``max_bytes``; the entry
        just put is never evicted, even when it alone is larger than the bound.
        """
        src = Path(path)
        if not src.exists():
            raise InstallError(f"cannot cache {src}: it does not exist")
        digest = source_digest(source)
        staging = self.root / f"{_TMP_PREFIX}{uuid.uuid4().hex}"
        staging.mkdir()
        staged = staging / src.name
        try:
            if move:
                shutil.move(str(src), str(staged))
            elif src.is_dir():
                shutil.copytree(src, staged, symlinks=True)
            else:
                shutil.copy2(src, staged)
            size = _tree_size(staged)
            with self._lock:
                data = self._read_index()
                final_dir = self.root / digest
                aside = None
                if final_dir.exists():  # the old entry (or an orphan of a crash): set aside
                    aside = self._to_trash(final_dir)
                os.replace(staging, final_dir)
                data["entries"][digest] = {
                    "source": source,
                    "name": src.name,
                    "size": size,
                    "last_used": self._tick(data),
                    "atime": time.time(),
                    "created": time.time(),
                }
                try:
                    self._write_index(data)
                except BaseException:  # the index still describes the old state: restore it
                    os.replace(final_dir, staging)
                    if aside is not None:
                        os.replace(aside, final_dir)
                    raise
                self._evict_locked(data, keep=digest)
        except BaseException:
            if move and staged.exists() and not src.exists():  # give the caller its file back
                shutil.move(str(staged), str(src))
            raise
        finally:
            if staging.exists():
                _remove(staging)
            self._empty_trash()
        return self.root / digest / src.name

    def evict(self, keep: Optional[str] = None) -> list[str]:
        """Remove least recently used entries until the total fits ``max_bytes``.

        ``keep`` (a source string) is never evicted.  Returns the evicted sources.
        """
        with self._lock:
            data = self._read_index()
            evicted = self._evict_locked(data, keep=source_digest(keep) if keep is not None else None)
        self._empty_trash()
        return evicted

    def remove(self, source: str) -> bool:
        """Drop ``source``'s entry; True when there was one."""
        digest = source_digest(source)
        with self._lock:
            data = self._read_index()
            if data["entries"].pop(digest, None) is None:
                return False
            self._write_index(data)
            if (self.root / digest).exists():
                self._to_trash(self.root / digest)
        self._empty_trash()
        return True

    def entries(self) -> list[dict[str, Any]]:
        """Every entry's index record (source, name, size, last_used, ...), least recent first."""
        with self._lock:
            data = self._read_index()
        return sorted((dict(e) for e in data["entries"].values()), key=lambda e: e["last_used"])

    @property
    def total_bytes(self) -> int:
        """Bytes of every entry, as recorded when each was put."""
        return sum(int(e["size"]) for e in self.entries())

    def sweep(self, max_tmp_age: float = 3600.0) -> list[Path]:
        """Remove what no entry owns: folders missing from the index (left by a crash between
        the rename and the index write), trash, and staging folders older than
        ``max_tmp_age`` seconds (younger ones may belong to a put in progress elsewhere).
        Returns what was removed."""
        removed: list[Path] = []
        now = time.time()
        with self._lock:
            data = self._read_index()
            for child in sorted(self.root.iterdir()):
                name = child.name
                if name in (INDEX_NAME, LOCK_NAME):
                    continue
                if name.startswith(_TMP_PREFIX):
                    try:
                        age = now - child.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    if age < max_tmp_age:
                        continue
                elif not name.startswith(_TRASH_PREFIX) and name in data["entries"]:
                    continue
                _remove(child)
                removed.append(child)
        return removed

    # --- helpers ---------------------------------------------------------------------------------
    def _evict_locked(self, data: dict[str, Any], keep: Optional[str]) -> list[str]:
        entries: dict[str, dict[str, Any]] = data["entries"]
        total = sum(int(e["size"]) for e in entries.values())
        evicted: list[str] = []
        for digest, entry in sorted(entries.items(), key=lambda kv: kv[1]["last_used"]):
            if total <= self.max_bytes:
                break
            if digest == keep:
                continue
            del entries[digest]
            total -= int(entry["size"])
            evicted.append(str(entry["source"]))
        if evicted:
            # index first: a crash before the files go leaves orphans (swept), never a
            # dangling entry
            self._write_index(data)
            for digest in [source_digest(s) for s in evicted]:
                if (self.root / digest).exists():
                    self._to_trash(self.root / digest)
            log.info("download cache: evicted %d entries to fit %d bytes", len(evicted), self.max_bytes)
        return evicted

    def _to_trash(self, path: Path) -> Path:
        trash = self.root / f"{_TRASH_PREFIX}{uuid.uuid4().hex}"
        os.replace(path, trash)
        return trash

    def _empty_trash(self) -> None:
        for child in self.root.glob(f"{_TRASH_PREFIX}*"):
            _remove(child)
