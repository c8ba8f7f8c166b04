"""Placing, checking and removing the files of a view.

A view link is one file in an app's folder made from one file of an installed model: a
hardlink (a copy when the app's root is on another filesystem), a symlink (relative where
the paths allow) or a copy.  What this module made is recorded by the caller as a
:class:`~reconciler.store.base.ViewLinkState`; only a destination that still is what was
recorded is ever removed.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple, Optional

from reconciler.probe.safetensors_header import read_safetensors_header
from reconciler.store.base import ViewLinkState
from reconciler.views import comfyconfig
from reconciler.views.apps import (
    HF_CACHE,
    SDNEXT_HF_FOLDERS,
    SKIP,
    App,
    LinkMode,
    app_folders,
    folder_for,
    kind_of,
)
from reconciler.views.hfcache import CacheRepo

TMP_SUFFIX = ".reconciler-tmp"

#: a link mode of its own: a small file the tool writes (a hub cache ref), its text in ``target``
WRITE = "write"


class Want(NamedTuple):
    """One destination a model needs in a view."""

    dest: Path
    target: str  # the file it is made from (a model's file, or a hub cache blob); WRITE: the text
    mode: str = ""  # "" (the view's link mode) or WRITE
    shared: str = ""  # models whose entries at one destination have equal keys share it (blobs, refs)


def model_links(app: App, root: Path, name: str, model_path: Path, type_: str, format_: str,
                hf: Optional[Callable[[], tuple[Optional[CacheRepo], str]]] = None,
                mode: LinkMode = LinkMode.hardlink) -> tuple[list[Want], str]:
    """The destinations a model needs in one app, and a note when it has none.

    A file model becomes ``<folder>/<name><suffix>``; a folder model ``<folder>/<name>/`` with
    its tree.  Where the app reads the kind from a Hugging Face cache, ``hf()`` gives the
    model's hub cache entries (see :mod:`reconciler.views.hfcache`).
    """
    if str(getattr(format_, "value", format_)) == "lycoris" and model_path.is_file() and not is_lycoris(model_path):
        format_ = "lora"  # a plain (kohya) LoRA: the record's format names every single-file LoRA "lycoris"
    cell, note = folder_for(app, type_, format_)
    if cell is SKIP:
        return [], note
    if cell is HF_CACHE:
        repo, why = hf() if hf is not None else (None, "no hub cache entries were asked for")
        if repo is None:
            return [], f"not in {app.value}'s Hugging Face cache layout: {why}"
        cache_root = root if app is App.hf_cache else root / SDNEXT_HF_FOLDERS[kind_of(type_, format_) or ""]
        return hf_cache_links(cache_root, repo, mode), ""
    folder = root / cell
    if model_path.is_dir():
        pairs = [Want(folder / name / p.relative_to(model_path), str(p))
                 for p in sorted(model_path.rglob("*")) if p.is_file()]
        return pairs, ""
    return [Want(folder / f"{name}{model_path.suffix.lower()}", str(model_path))], ""


def hf_cache_links(cache_root: Path, repo: CacheRepo, mode: LinkMode) -> list[Want]:
    """The hub cache layout of one model under ``cache_root`` (refs, snapshots, and blobs when symlinking)."""
    base = cache_root / repo.folder
    wants: list[Want] = []
    if repo.branch is not None:
        wants.append(Want(base / "refs" / repo.branch, repo.commit, WRITE, f"ref:{repo.commit}"))
    for f in repo.files:
        snap = base / "snapshots" / repo.commit / f.repo_path
        if mode is LinkMode.symlink:
            blob = base / "blobs" / f.etag
            wants.append(Want(blob, str(f.local), "", f"blob:{f.etag}"))
            wants.append(Want(snap, str(blob), "", f"blob:{f.etag}"))
        else:
            wants.append(Want(snap, str(f.local), "", f"blob:{f.etag}"))
    return wants


#: tensor name parts of the LyCORIS algorithms (LoHa, LoKr, (IA)^3, GLoRA)
_LYCORIS_MARKS = ("hada_w", "lokr_w", ".on_input", ".a1.weight", ".b1.weight")


def is_lycoris(path: Path) -> bool:
    """True for a LoRA file holding LyCORIS tensors (not the plain ``lora_up``/``lora_down`` pairs)."""
    try:
        keys = read_safetensors_header(path).tensors
    except Exception:  # noqa: BLE001 - not readable as safetensors: treat as a plain LoRA
        return False
    return any(mark in key for key in keys for mark in _LYCORIS_MARKS)


def same_filesystem(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` (or their nearest existing parents) are on one filesystem."""
    def dev(p: Path) -> int:
        p = p.absolute()
        while not p.exists() and p != p.parent:
            p = p.parent
        return p.stat().st_dev
    return dev(a) == dev(b)


def symlink_text(target: Path, dest: Path) -> str:
    """What a symlink at ``dest`` holds: relative where the paths allow, else absolute."""
    try:
        return os.path.relpath(os.path.abspath(target), os.path.abspath(dest.parent))
    except ValueError:  # another drive (Windows)
        return str(target.absolute())


def place(target: Path, dest: Path, mode: LinkMode) -> tuple[LinkMode, str]:
    """Make ``dest`` from ``target`` (replacing what is there: the caller decided it may).

    Returns the mode used (a hardlink across filesystems becomes a copy) and, for a symlink,
    its text.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}{TMP_SUFFIX}")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    text = ""
    used = mode
    if mode is LinkMode.hardlink:
        try:
            os.link(target, tmp)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                raise
            used = LinkMode.copy
    if used is LinkMode.symlink:
        text = symlink_text(target, dest)
        os.symlink(text, tmp)
    elif used is LinkMode.copy:
        shutil.copy2(target, tmp)
    os.replace(tmp, dest)
    return used, text


def write_text(text: str, dest: Path) -> None:
    """Write a small file (a hub cache ref) atomically, exactly ``text`` (no trailing newline)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}{TMP_SUFFIX}")
    if tmp.exists() or tmp.is_symlink():
        tmp.unlink()
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, dest)


def stamp(dest: Path) -> tuple[int, int]:
    """(size, mtime_ns) of what lies at ``dest`` (not following a symlink)."""
    st = dest.lstat()
    return st.st_size, st.st_mtime_ns


def link_state(link: ViewLinkState) -> str:
    """``in_sync``, ``missing`` or ``replaced`` (something else lies there now)."""
    if link.mode == comfyconfig.MODE:
        return comfyconfig.state(link.path, link.link_text)
    dest = Path(link.path)
    if not dest.exists() and not dest.is_symlink():
        return "missing"
    if link.mode == WRITE:
        try:
            ok = not dest.is_symlink() and dest.is_file() and dest.read_text(encoding="utf-8") == link.link_text
        except (OSError, UnicodeDecodeError):
            ok = False
        return "in_sync" if ok else "replaced"
    mode = LinkMode(link.mode)
    try:
        if mode is LinkMode.symlink:
            return "in_sync" if dest.is_symlink() and os.readlink(dest) == link.link_text else "replaced"
        if dest.is_symlink():
            return "replaced"
        if mode is LinkMode.hardlink:
            return "in_sync" if Path(link.target).exists() and os.path.samefile(dest, link.target) else "replaced"
        if mode is LinkMode.copy:
            return "in_sync" if stamp(dest) == (link.size, link.mtime_ns) else "replaced"
    except OSError:
        return "replaced"
    return "in_sync"


def remove(link: ViewLinkState, root: Path, app: Optional[App]) -> bool:
    """Remove the destination if it is still what this tool made; then its empty parent
    folders below the app's own folders.  False when something else lies there (kept)."""
    dest = Path(link.path)
    state = link_state(link)
    if state == "replaced":
        return False
    if link.mode == comfyconfig.MODE:
        if state == "in_sync":
            comfyconfig.remove_section(link.path)
        return True
    if state == "in_sync":
        dest.unlink()
    keep = {(root / f).absolute() for f in app_folders(app)} if app is not None else set()
    keep.add(root.absolute())
    parent = dest.parent.absolute()
    while parent not in keep and parent != parent.parent and root.absolute() in parent.parents:
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent
    return True
