"""Fingerprints of model files: imohash for "did it change?", sha256 for "is it the right bytes?".

imohash samples three 16 KiB windows and the size, so :func:`fast_hash` costs the same for
a 10 MB and a 10 GB file (about a millisecond).  It is **not** a content hash: a changed
byte between the samples keeps the same imohash.  Use it to skip rehashing unchanged files
and as the record's ``hash``; use :func:`sha256_file` to verify downloads and locks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from imohash import hashfile

from reconciler.configs import FileState

__all__ = ["fast_hash", "states_hash", "imohash_file", "sha256_file", "file_states", "model_files"]

_SHA256_CHUNK = 4 * 1024 * 1024


def imohash_file(path: str | Path) -> str:
    """imohash (32 hex characters) of one file."""
    return hashfile(os.fspath(path), hexdigest=True)


def model_files(model_path: str | Path) -> list[Path]:
    """The regular files that make up a model, in a stable order.

    A file is itself; a folder is every regular file below it, sorted by its POSIX path
    relative to the folder.  Symlinks are not followed out of the folder: a link is listed
    only when it resolves inside ``model_path``.
    """
    model_path = Path(model_path)
    if not model_path.is_dir():
        return [model_path]
    root = model_path.resolve()
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(model_path):
        dirnames.sort()
        for name in filenames:
            p = Path(dirpath) / name
            if p.is_symlink():
                target = p.resolve()
                if not target.is_relative_to(root) or not target.is_file():
                    continue
            elif not p.is_file():
                continue
            found.append((p.relative_to(model_path).as_posix(), p))
    found.sort(key=lambda item: item[0])
    return [p for _, p in found]


def fast_hash(path: str | Path) -> str:
    """Size-independent fingerprint of a model file or folder (hex); see :func:`states_hash`."""
    return states_hash(file_states(path))


def states_hash(states: Sequence[FileState]) -> str:
    """The fingerprint of a model from its file states (no file is read again).

    A single file: its imohash.  A folder: the sha256 over ``"<relative path>\\0<imohash>\\n"``
    of each of its files in sorted order, so renaming, adding or removing a file changes it,
    and the result does not depend on the order the filesystem lists them.
    """
    if len(states) == 1 and states[0].path == "":
        return states[0].imohash
    digest = hashlib.sha256()
    for state in sorted(states, key=lambda s: s.path):
        digest.update(state.path.encode())
        digest.update(b"\0")
        digest.update(state.imohash.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def sha256_file(path: str | Path, chunk: int = _SHA256_CHUNK) -> str:
    """sha256 (hex) of a file's bytes, read in ``chunk``-byte blocks into one reused buffer."""
    digest = hashlib.sha256()
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def file_states(model_path: str | Path) -> list[FileState]:
    """One :class:`~reconciler.configs.FileState` per file of a model (sha256 left None).

    ``path`` is relative to ``model_path`` (``""`` for a single-file model).
    """
    model_path = Path(model_path)
    states = []
    single = not model_path.is_dir()
    for f in model_files(model_path):
        st = f.stat()
        rel = "" if single else f.relative_to(model_path).as_posix()
        states.append(FileState(path=rel, size=st.st_size, mtime_ns=st.st_mtime_ns, imohash=imohash_file(f)))
    return states
