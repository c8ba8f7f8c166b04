"""Where installed models live, and how record paths map to disk.

Copied models go to ``<models_dir>/<base>/<type>/<name>`` (a single file keeps its
suffix); their record path is relative to models_dir so a models dir can move.  In-place
models keep their absolute path.

Names and record paths are untrusted (a manifest, a hand-edited record store): a copied
model is only ever written strictly inside models_dir (:func:`install_destination`), and
files are only ever removed strictly inside it, outside its ``.reconciler`` folder, after
resolving symlinks (:func:`removable`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from reconciler.configs import ModelConfigBase
from reconciler.errors import UnsafePathError

_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")
# Windows device names: a file called ``CON``, ``nul.safetensors`` or ``COM1.tar`` cannot be
# created there, and a models dir may be shared with Windows machines.  The manifest
# (reconciler/reconcile/manifest/models.py) applies the same rule to model names.
_WINDOWS_RESERVED = re.compile(r"(?:CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3]|CONIN\$|CONOUT\$)",
                               re.IGNORECASE)
STATE_DIR_NAME = ".reconciler"
"""models_dir's own folder (record store, staging, cache): never a model, never removed by one."""


def is_reserved_name(name: str) -> bool:
    """True for a Windows device name, with or without an extension (``CON``, ``nul.txt``)."""
    return _WINDOWS_RESERVED.fullmatch(name.split(".", 1)[0].rstrip(" ")) is not None


def safe_component(name: str) -> str:
    """A model name as one path component; refuses separators, control chars, dot names and
    Windows device names."""
    if not name or name in (".", "..") or _UNSAFE_NAME.search(name) or is_reserved_name(name):
        raise UnsafePathError(f"model name {name[:200]!r} cannot be used as a folder name")
    return name


def install_destination(models_dir: Path, base: str, type_: str, name: str, source: Path) -> Path:
    """The final path of a copied model: a folder, or a file keeping the source's suffix.

    Raises UnsafePathError unless it lies at least one level inside models_dir and outside
    its ``.reconciler`` folder (checked on the path as written: a folder the user symlinked
    inside models_dir, e.g. onto another disk, is used as it is).
    """
    folder = models_dir / str(base) / str(type_)
    component = safe_component(name)
    dest = folder / component if source.is_dir() else folder / f"{component}{source.suffix.lower()}"
    root = os.path.normpath(os.path.abspath(models_dir))
    where = os.path.normpath(os.path.abspath(dest))
    inside = os.path.commonpath([root, where]) == root and where != root
    if not inside or Path(where).relative_to(root).parts[0] == STATE_DIR_NAME:
        raise UnsafePathError(f"model {name[:200]!r} would be installed at {where}, outside the models dir {root}")
    return dest


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


def removable(path: Path, models_dir: Path) -> bool:
    """True when deleting ``path`` for a model is allowed: after resolving symlinks and
    ``..`` it lies strictly inside models_dir (not models_dir itself) and outside its
    ``.reconciler`` folder.  A record pointing elsewhere (hand-edited, or a symlink out of
    models_dir) never gets anything removed."""
    try:
        root = models_dir.resolve()
        rel = path.resolve().relative_to(root)
    except (ValueError, OSError, RuntimeError):
        return False
    return bool(rel.parts) and rel.parts[0] != STATE_DIR_NAME
