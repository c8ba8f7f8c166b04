"""Find models in folders and register them: the seed's ``scan_directory`` and ``sync_to_config``.

ModelInstallService delegates to these functions (they take the installer as first argument).

What counts as one model while walking a folder:

* a folder that carries a model's marker files (``model_index.json``, ``config.json``,
  ``learned_embeds.*``, ``pytorch_lora_weights.*``, ``adapter_model.*``, ``image_encoder.txt``,
  ``unet/model.onnx``: the files the prober's folder rules key on) is ONE model and is not
  descended into, even when probing it then fails (its weights are parts, not models);
* elsewhere, each file with a weights extension (:data:`~reconciler.sources.base.WEIGHTS_EXTENSIONS`)
  is one model;
* hidden files and folders (``.reconciler``, ``.cache``, ``.git``, ...) are never entered, and
  neither is a path a record already points at.

A candidate that turns out not to be a model (text, HTML, a truncated header, a pickle with
code in it, an unrecognised state dict) is skipped with a logged warning and listed in the
report; it is never registered.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from reconciler.errors import (
    InstallError,
    InvalidModelConfigException,
    InvalidModelError,
    OptionalDependencyError,
    SourceNotFoundError,
    UnsafePathError,
)
from reconciler.install.paths import resolve_model_path
from reconciler.sources.base import is_weights_file

if TYPE_CHECKING:
    from reconciler.install.service import ModelInstallService

log = logging.getLogger(__name__)

__all__ = [
    "ScanReport",
    "SyncReport",
    "find_models",
    "known_model_paths",
    "looks_like_model_folder",
    "scan",
    "scan_directory",
    "sync_to_config",
]

#: state folders of the models dir, skipped by name even if someone un-hides them
SKIP_DIRS = frozenset({".reconciler", ".cache"})
_MARKER_FILES = ("model_index.json", "config.json", "image_encoder.txt")
_MARKER_WEIGHTS = ("learned_embeds", "pytorch_lora_weights", "adapter_model")

#: errors that mean "this candidate is not something we can register": skip and report it.
#: Anything else (a store error, a full disk) stops the scan.
_SKIPPABLE: tuple[type[Exception], ...] = (
    InvalidModelError,  # includes ModelNotRecognizedError
    InvalidModelConfigException,
    OptionalDependencyError,
    UnsafePathError,
    InstallError,
    SourceNotFoundError,
)


@dataclass
class ScanReport:
    """What one scan did: keys of the new records, and the candidates it skipped (with why)."""

    added: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


@dataclass
class SyncReport:
    """What :func:`sync_to_config` did.

    ``missing`` holds the keys of records whose files are gone; they are reported, not
    deleted (deleting is the reconciler's job, and only for the records it manages).
    """

    added: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def looks_like_model_folder(folder: Path) -> bool:
    """True when ``folder`` holds a file the prober's folder rules key on.

    Such a folder is one model (a diffusers pipeline, a component, an embedding or LoRA
    folder, an IP-Adapter, an ONNX pipeline), so a scan does not look inside it.
    """
    for name in _MARKER_FILES:
        if (folder / name).is_file():
            return True
    for stem in _MARKER_WEIGHTS:
        for suffix in (".safetensors", ".bin"):
            if (folder / f"{stem}{suffix}").is_file():
                return True
    return (folder / "unet" / "model.onnx").is_file()


def _real(path: Path | str) -> str:
    return os.path.realpath(path)


def known_model_paths(installer: ModelInstallService) -> set[str]:
    """Real paths (symlinks resolved) of every record's files, to tell new models from known ones."""
    return {_real(resolve_model_path(installer.models_dir, rec)) for rec in installer.record_store.all_models()}


def find_models(root: Path, exclude: Collection[str] = ()) -> Iterator[Path]:
    """Candidate models under ``root``, in a stable (sorted, top-down) order.

    ``exclude`` holds real paths (``os.path.realpath``) that are neither yielded nor entered:
    the paths records already own, or a subtree scanned separately.  ``root`` itself is
    yielded when it is a file or a model folder.  Symlinked folders are not followed into
    (they are yielded when they are model folders).
    """
    if root.is_file():
        yield root
        return
    if looks_like_model_folder(root):
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        keep: list[str] = []
        for name in sorted(dirnames):
            if name.startswith(".") or name in SKIP_DIRS:
                continue
            sub = here / name
            if _real(sub) in exclude:
                continue
            if looks_like_model_folder(sub):
                yield sub
                continue
            keep.append(name)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith(".") or not is_weights_file(name):
                continue
            path = here / name
            if _real(path) not in exclude:
                yield path


def _register_each(
    candidates: Iterator[Path],
    register: Callable[[Path], str],
    known: set[str],
    added: list[str],
    skipped: list[tuple[Path, str]],
) -> None:
    for candidate in candidates:
        real = _real(candidate)
        if real in known:  # registered earlier in this same run (a symlink to the same files)
            continue
        try:
            key = register(candidate)
        except _SKIPPABLE as exc:
            reason = str(exc)
            log.warning("skipped %s: %s", candidate, reason)
            skipped.append((candidate, reason))
            continue
        known.add(real)
        added.append(key)
        log.info("registered %s as %s", candidate, key)


def scan(installer: ModelInstallService, path: Path | str, install: bool = False) -> ScanReport:
    """Find every model under ``path`` that no record has and register it.

    In place (``installer.register_path``) by default; with ``install=True`` each is copied
    into the models dir (``installer.install_path``).  Returns the new keys and the skipped
    candidates.  Raises SourceNotFoundError when ``path`` does not exist.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise SourceNotFoundError(f"{root} does not exist")
    known = known_model_paths(installer)
    report = ScanReport()
    register = installer.install_path if install else installer.register_path
    _register_each(find_models(root, exclude=known), register, known, report.added, report.skipped)
    return report


def scan_directory(installer: ModelInstallService, path: Path | str, install: bool = False) -> list[str]:
    """The seed's ``scan_directory``: :func:`scan`, returning only the new records' keys.

    Skipped candidates are logged as warnings (use :func:`scan` to get them as data).
    """
    return scan(installer, path, install=install).added


def sync_to_config(installer: ModelInstallService) -> SyncReport:
    """Bring the record store in line with what lies on disk, without deleting anything.

    * models under the models dir that no record has are registered where they are with
      ``installer.adopt_path`` (their record path is relative to the models dir);
    * models under ``settings.autoimport_dir`` (when set and present) are registered in
      place with ``installer.register_path``; when that folder lies inside the models dir it
      is left out of the first walk, so its models are registered once, in place;
    * records whose files are gone are listed in ``missing`` (and logged), not removed.
    """
    models_dir = installer.models_dir
    autoimport: Optional[Path] = installer.app_config.autoimport_dir
    known = known_model_paths(installer)
    report = SyncReport()

    if models_dir.is_dir():
        exclude = set(known)
        if autoimport is not None and _real(autoimport) != _real(models_dir):
            exclude.add(_real(autoimport))
        _register_each(find_models(models_dir, exclude=exclude), installer.adopt_path, known,
                       report.added, report.skipped)
    if autoimport is not None:
        if autoimport.is_dir():
            _register_each(find_models(autoimport, exclude=known), installer.register_path, known,
                           report.added, report.skipped)
        else:
            log.warning("autoimport dir %s does not exist; nothing imported from it", autoimport)

    for rec in installer.record_store.all_models():
        path = resolve_model_path(models_dir, rec)
        if not path.exists():
            log.warning("model %r (%s): its files are missing at %s", rec.name, rec.key, path)
            report.missing.append(rec.key)
    return report
