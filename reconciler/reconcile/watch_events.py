"""What `watch` looks at and which file events count: the watched folders, the event filter,
the trailing debouncer and the manifests' revision.

Folders, not files, are watched: editors save by rename, git-sync publishes a checkout by
renaming a symlink in the link's parent, and a Kubernetes ConfigMap volume swaps its
``..data`` symlink.  Every path is re-resolved on each pass (:func:`watch_targets`), so a
symlink that moved is followed.  The tool's own writes never count: paths under the state
dir (``.reconciler``: temporary downloads, the record store, the apply lock), the record
store file with its ``-wal``/``-shm``/``-journal`` siblings wherever it lives, the loader's
``.cache``, and the status file (and temporary siblings named after it).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

MANIFEST_SUFFIXES = (".yaml", ".yml")
#: event types that change nothing (reads): the loader opening a model must not trigger
IGNORED_EVENT_TYPES = frozenset({"opened", "closed_no_write"})


@dataclass(frozen=True)
class WatchSpec:
    """One folder to watch."""

    path: str
    recursive: bool


def _symlink_parents(path: str) -> list[str]:
    """The parent folders of every symlink on the way to ``path`` (a git-sync ``--link``)."""
    out: list[str] = []
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        prefix = os.path.join(*parts[:i])
        if os.path.islink(prefix):
            out.append(os.path.dirname(prefix))
    return out


def _existing_ancestor(path: str) -> str:
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def watch_targets(manifest_paths: Sequence[Path], lock_path: Path, models_dir: Path,
                  autoimport_dir: Optional[Path]) -> list[WatchSpec]:
    """The folders to watch now (symlinks resolved afresh), deduplicated."""
    specs: dict[str, bool] = {}

    def add(path: str, recursive: bool) -> None:
        path = _existing_ancestor(path)
        specs[path] = specs.get(path, False) or recursive

    for given in manifest_paths:
        abspath = os.path.abspath(given)
        for parent in _symlink_parents(abspath):
            add(parent, False)
        real = os.path.realpath(abspath)
        if os.path.isdir(real):
            add(real, True)
        else:
            add(os.path.dirname(real), False)
            add(os.path.dirname(abspath), False)
    lock_abs = os.path.abspath(lock_path)
    add(os.path.dirname(lock_abs), False)
    add(os.path.dirname(os.path.realpath(lock_abs)), False)
    add(os.path.realpath(models_dir), True)
    if autoimport_dir is not None:
        add(os.path.realpath(autoimport_dir), True)
    # a recursive watch already covers what lies under it
    recursive_roots = [p for p, r in specs.items() if r]
    out = []
    for path, recursive in sorted(specs.items()):
        covered = any(path != root and _under(path, root) for root in recursive_roots)
        if not covered:
            out.append(WatchSpec(path, recursive))
    return out


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass
class EventFilter:
    """Classifies a watchdog event as a trigger: ``manifests``, ``lock``, ``models``,
    ``autoimport``, or None (not ours to react to).  Rebuild it after each pass
    (:meth:`refresh`), as symlinks may have moved."""

    manifest_paths: Sequence[Path]
    lock_path: Path
    models_dir: Path
    state_dir: Path
    db_path: Path
    autoimport_dir: Optional[Path] = None
    status_file: Optional[Path] = None
    _manifest_files: set[str] = field(default_factory=set)
    _manifest_dirs: list[str] = field(default_factory=list)
    _lock_files: set[str] = field(default_factory=set)
    _models: list[str] = field(default_factory=list)
    _ignored_roots: list[str] = field(default_factory=list)
    _ignored_files: set[str] = field(default_factory=set)
    _status_names: tuple[str, ...] = ()
    _status_dirs: set[str] = field(default_factory=set)
    _autoimport: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.refresh()

    @staticmethod
    def _both(path: Path | str) -> set[str]:
        return {os.path.abspath(path), os.path.realpath(path)}

    def refresh(self) -> None:
        files: set[str] = set()
        dirs: list[str] = []
        for given in self.manifest_paths:
            abspath = os.path.abspath(given)
            files.update(_symlink_chain(abspath))  # a git-sync link swapped in its parent
            if os.path.isdir(abspath):
                dirs.extend(self._both(abspath))
            else:
                files.update(self._both(abspath))
        self._manifest_files, self._manifest_dirs = files, dirs
        self._lock_files = self._both(self.lock_path)
        self._models = sorted(self._both(self.models_dir))
        ignored = [*self._both(self.state_dir), *(os.path.join(m, ".cache") for m in self._models)]
        self._ignored_roots = ignored
        self._ignored_files = {p + suffix for p in self._both(self.db_path)
                               for suffix in ("", "-wal", "-shm", "-journal", ".lock")}
        if self.status_file is not None:
            name = os.path.basename(self.status_file)
            self._status_names = (name, "." + name)
            self._status_dirs = {os.path.dirname(p) for p in self._both(self.status_file)}
        self._autoimport = sorted(self._both(self.autoimport_dir)) if self.autoimport_dir else []

    def ignored(self, path: str) -> bool:
        """The tool's own files: never a trigger."""
        if path in self._ignored_files or any(_under(path, r) for r in self._ignored_roots):
            return True
        if self._status_names and os.path.dirname(path) in self._status_dirs:
            return os.path.basename(path).startswith(self._status_names)
        return False

    def classify_path(self, path: str, is_directory: bool) -> Optional[str]:
        if not path or self.ignored(path):
            return None
        if any(_under(path, r) for r in self._autoimport):
            return "autoimport"
        if path in self._manifest_files:
            return "manifests"
        for root in self._manifest_dirs:
            if _under(path, root) and path != root:
                if _manifest_change(os.path.relpath(path, root), is_directory):
                    return "manifests"
        if path in self._lock_files:
            return "lock"
        if any(_under(path, r) for r in self._models):
            return "models"
        return None

    def classify(self, event: Any) -> Optional[str]:
        """The trigger of a watchdog event, or None."""
        if event.event_type in IGNORED_EVENT_TYPES:
            return None
        if event.is_directory and event.event_type == "modified":
            return None  # a folder's own mtime: the child's event says what changed
        kinds = [self.classify_path(os.fsdecode(p), event.is_directory)
                 for p in (event.src_path, getattr(event, "dest_path", "")) if p]
        for kind in ("manifests", "lock", "autoimport", "models"):
            if kind in kinds:
                return kind
        return None


def _symlink_chain(path: str) -> list[str]:
    """Every symlink on the way to ``path`` (the path as written, not resolved)."""
    parts = Path(path).parts
    return [os.path.join(*parts[:i]) for i in range(2, len(parts) + 1) if os.path.islink(os.path.join(*parts[:i]))]


def _manifest_change(rel: str, is_directory: bool) -> bool:
    """Whether a change at ``rel`` (inside a manifests folder) can change the manifests read:
    a ``*.yaml``/``*.yml`` file, a folder, or a ConfigMap ``..data`` style swap; never
    inside hidden folders (``.git``) or an editor's temporary file."""
    parts = rel.split(os.sep)
    if any(p.startswith(".") and not p.startswith("..") for p in parts):
        return False
    name = parts[-1]
    return is_directory or name.endswith(MANIFEST_SUFFIXES) or name.startswith("..")


class Debouncer:
    """Trailing debounce: fires ``delay`` s after the last event, or ``cap`` s after the first
    of a continuous burst, whichever comes first."""

    def __init__(self, delay: float, cap: float = 10.0) -> None:
        self.delay, self.cap = delay, cap
        self._first: Optional[float] = None
        self._due: Optional[float] = None
        self.reasons: dict[str, int] = {}

    def add(self, reason: str, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        if self._first is None:
            self._first = now
        self._due = min(now + self.delay, self._first + self.cap)
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    @property
    def due(self) -> Optional[float]:
        return self._due

    def take(self) -> dict[str, int]:
        reasons, self.reasons = self.reasons, {}
        self._first = self._due = None
        return reasons

    def __len__(self) -> int:
        return sum(self.reasons.values())


# --- revision -----------------------------------------------------------------------------------
def _read(path: Path) -> Optional[str]:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _gitdir(checkout: Path) -> Optional[Path]:
    dot = checkout / ".git"
    if dot.is_dir():
        return dot
    text = _read(dot) if dot.is_file() else None  # a worktree (git-sync): "gitdir: PATH"
    if text and text.startswith("gitdir:"):
        return (checkout / text.split(":", 1)[1].strip()).resolve()
    return None


def read_git_head(gitdir: Path) -> Optional[str]:
    """The commit HEAD names, read from the files (no git process)."""
    head = _read(gitdir / "HEAD")
    if not head:
        return None
    if not head.startswith("ref:"):
        return head
    ref = head[4:].strip()
    roots = [gitdir]
    common = _read(gitdir / "commondir")
    if common:
        roots.append((gitdir / common).resolve())
    for root in roots:
        value = _read(root / ref)
        if value:
            return value
        packed = _read(root / "packed-refs") or ""
        for line in packed.splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref:
                return sha
    return _git_rev_parse(gitdir)


def _git_rev_parse(gitdir: Path) -> Optional[str]:
    try:
        out = subprocess.run(["git", "--git-dir", str(gitdir), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def revision_of(path: Path) -> Optional[str]:
    """The git commit of the checkout holding ``path``, else the name a symlink on the way
    points at (git-sync names worktrees by commit), else None."""
    real = Path(os.path.realpath(path))
    start = real if real.is_dir() else real.parent
    for folder in (start, *start.parents):
        gitdir = _gitdir(folder)
        if gitdir is not None:
            return read_git_head(gitdir)
    links = _symlink_chain(os.path.abspath(path))
    if links:
        return os.path.basename(os.path.realpath(links[-1]))
    return None


def manifests_revision(paths: Iterable[Path]) -> Optional[str]:
    """The revision of the manifests (several distinct ones joined with commas)."""
    seen: list[str] = []
    for path in paths:
        rev = revision_of(path)
        if rev and rev not in seen:
            seen.append(rev)
    return ",".join(seen) or None


__all__ = ["Debouncer", "EventFilter", "WatchSpec", "manifests_revision", "read_git_head", "revision_of",
           "watch_targets"]
