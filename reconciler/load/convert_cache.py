"""ModelConvertCache: single-file checkpoints converted to diffusers folders, kept on disk.

An entry's folder is named after what decides the conversion: the record key, the source
file's size and mtime, and the config fields that change the result (prediction type,
variant, upcast_attention, base).  So an edited checkpoint or a changed prediction type
converts again, and an unchanged one loads from the converted folder in any later
process.  The cache is trimmed to ``max_size`` GB, least recently used first (the use
time is the folder's mtime, touched on every hit).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Optional

from reconciler.load.devices import GB

#: config fields that change what a conversion produces
CONVERSION_FIELDS = ("base", "variant", "prediction_type", "upcast_attention", "config")


def _folder_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


class ModelConvertCache:
    """Converted models under ``cache_path``, at most ``max_size`` GB."""

    def __init__(self, cache_path: Path | str, max_size: float = 10.0) -> None:
        self.cache_path = Path(cache_path)
        self.max_size = max_size
        self._lock = threading.Lock()

    @property
    def max_bytes(self) -> int:
        return int(self.max_size * GB)

    def cache_key(self, config: Any, source: Path) -> str:
        """The entry name for ``config`` converted from ``source`` as it is now."""
        st = source.stat()
        fields = {name: _plain(getattr(config, name, None)) for name in CONVERSION_FIELDS}
        digest = hashlib.sha256(json.dumps([st.st_size, st.st_mtime_ns, fields], sort_keys=True).encode())
        return f"{config.key}-{digest.hexdigest()[:16]}"

    def path_for(self, config: Any, source: Path) -> Path:
        """Where ``config``'s conversion of ``source`` lives (it may not exist yet)."""
        return self.cache_path / self.cache_key(config, source)

    def lookup(self, config: Any, source: Path) -> Optional[Path]:
        """The converted folder when it is there and complete (its use time is touched)."""
        path = self.path_for(config, source)
        if not (path / ".complete").is_file():
            return None
        now = time.time()
        os.utime(path, (now, now))
        return path

    def stale_entries(self, config: Any, source: Path) -> list[Path]:
        """Older conversions of the same record (another mtime or other fields)."""
        current = self.path_for(config, source)
        if not self.cache_path.is_dir():
            return []
        return [p for p in self.cache_path.iterdir() if p.name.startswith(f"{config.key}-") and p != current]

    def mark_complete(self, path: Path) -> None:
        """Declare a conversion written whole (a crash before this leaves it ignored and trimmed)."""
        (path / ".complete").write_text("ok\n")
        now = time.time()
        os.utime(path, (now, now))

    def make_room(self, size: int) -> None:
        """Remove entries, least recently used first, until ``size`` more bytes fit."""
        with self._lock:
            if not self.cache_path.is_dir():
                return
            entries = sorted((p for p in self.cache_path.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
            total = sum(_folder_size(p) for p in entries)
            for entry in entries:
                if total + size <= self.max_bytes:
                    break
                total -= _folder_size(entry)
                shutil.rmtree(entry, ignore_errors=True)

    def total_bytes(self) -> int:
        """Bytes of every entry."""
        if not self.cache_path.is_dir():
            return 0
        return sum(_folder_size(p) for p in self.cache_path.iterdir())


def _plain(value: Any) -> Any:
    return getattr(value, "value", value)


__all__ = ["CONVERSION_FIELDS", "ModelConvertCache"]
