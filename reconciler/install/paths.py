"""Where installed models live, and how record paths map to disk.

Copied models go to ``<models_dir>/<base>/<type>/<name>`` (a single file keeps its
suffix); their record path is relative to models_dir so a models dir can move.  In-place
models keep their absolute path.
"""

from __future__ import annotations

import re
from pathlib import Path

from reconciler.configs import ModelConfigBase
from reconciler.errors import UnsafePathError

_UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\]")


def safe_component(name: str) -> str:
    """A model name as one path component; refuses separators, control chars and dot names."""
    if not name or name in (".", "..") or _UNSAFE_NAME.search(name):
        raise UnsafePathError(f"model name {name!r} cannot be used as a folder name")
    return name


def install_destination(models_dir: Path, base: str, type_: str, name: str, source: Path) -> Path:
    """The final path of a copied model: a folder, or a file keeping the source's suffix."""
    folder = models_dir / str(base) / str(type_)
    component = safe_component(name)
    if source.is_dir():
        return folder / component
    return folder / f"{component}{source.suffix.lower()}"


def record_path(models_dir: Path, path: Path) -> str:
    """The string stored in a record: relative inside models_dir, absolute outside."""
    path = path.absolute()
    try:
        return path.relative_to(models_dir.absolute()).as_posix()
    except ValueError:
        return str(path)


def resolve_model_path(models_dir: Path, config: ModelConfigBase | str) -> Path:
    """The absolute path of a record's model."""
    raw = config if isinstance(config, str) else config.path
    path = Path(raw)
    return path if path.is_absolute() else models_dir / path


def is_inside(path: Path, folder: Path) -> bool:
    """True when ``path`` lies inside ``folder`` (after resolving symlinks and ``..``)."""
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False
