"""`reconciler gc`: remove leftovers that no apply will use.

Runs under the models dir's apply lock, so it never races an apply.  Staging copies and
displaced old files (``stage-*``, ``old-*``) are always leftovers of an interrupted apply.
Partial downloads (``dl-*`` folders holding ``.part`` files and their resume state) are kept
unless asked, because the next apply of the same source and revision resumes from them; a
``dl-*`` folder without a ``.part`` file in it (an apply killed after it moved the files into
place, or before its first byte arrived) holds nothing to resume and goes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.download.segments import PART_SUFFIX
from reconciler.install.cache import DownloadCache
from reconciler.install.copy import discard
from reconciler.reconcile.apply import models_dir_lock
from reconciler.settings import AppSettings

RESUMABLE_PREFIX = "dl-"


@dataclass
class GcReport:
    """What gc removed and kept."""

    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    freed_bytes: int = 0


def _size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def _has_partial(path: Path) -> bool:
    """Whether a download staging folder holds a partial file that a later apply can resume."""
    if not path.is_dir() or path.is_symlink():
        return path.name.endswith(PART_SUFFIX)
    return next(path.rglob(f"*{PART_SUFFIX}"), None) is not None


def collect_garbage(settings: AppSettings, remove_partial: bool = False) -> GcReport:
    """Clear ``<models_dir>/.reconciler/tmp`` and sweep the download cache."""
    report = GcReport()
    if not settings.state_dir.exists():
        return report
    with models_dir_lock(settings.apply_lock_path, settings.apply_lock_timeout):
        if settings.tmp_dir.exists():
            for child in sorted(settings.tmp_dir.iterdir()):
                if child.name.startswith(RESUMABLE_PREFIX) and not remove_partial and _has_partial(child):
                    report.kept.append(child)
                    continue
                report.freed_bytes += _size(child)
                discard(child)
                report.removed.append(child)
        cache_root = settings.cache_dir / "downloads"
        if cache_root.exists():
            cache = DownloadCache(cache_root, settings.download_cache_size)
            for path in cache.sweep():
                report.removed.append(path)
            for source in cache.evict():
                report.removed.append(Path(source))
    return report
