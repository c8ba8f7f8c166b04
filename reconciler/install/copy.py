"""Copy a local model into place: through a staging path under ``.reconciler/tmp`` and a
rename, hashing each file (sha256) as its bytes go by so nothing is read twice."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from reconciler.configs import FileState
from reconciler.errors import InstallError

_CHUNK = 8 * 2**20


def _copy_file_hashing(src: Path, dst: Path) -> str:
    digest = hashlib.sha256()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while True:
            chunk = fin.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    shutil.copystat(src, dst, follow_symlinks=True)
    return digest.hexdigest()


def stage_copy(source: Path, tmp_dir: Path) -> tuple[Path, dict[str, str]]:
    """Copy ``source`` (file or folder) into a fresh staging path under ``tmp_dir``.

    Returns the staged path and ``{relative path: sha256}`` of every file copied ("" for a
    single file).  Symlinks that point outside the source folder are skipped, never followed.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    staged = tmp_dir / f"stage-{uuid.uuid4().hex}{'' if source.is_dir() else source.suffix}"
    digests: dict[str, str] = {}
    try:
        if source.is_dir():
            root = source.resolve()
            staged.mkdir()
            for dirpath, dirnames, filenames in os.walk(source):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(source)
                for dirname in list(dirnames):
                    target = Path(dirpath, dirname)
                    if target.is_symlink() and not _within(target, root):
                        dirnames.remove(dirname)
                for filename in sorted(filenames):
                    src = Path(dirpath, filename)
                    if src.is_symlink() and not _within(src, root):
                        continue
                    rel = (rel_dir / filename).as_posix()
                    dst = staged / rel
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    digests[rel] = _copy_file_hashing(src, dst)
        else:
            digests[""] = _copy_file_hashing(source, staged)
    except OSError as exc:
        discard(staged)
        raise InstallError(f"cannot copy {source}: {exc.strerror or exc}") from exc
    return staged, digests


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def move_into_place(staged: Path, dest: Path, tmp_dir: Path) -> Path | None:
    """Rename ``staged`` to ``dest``; an existing ``dest`` is first renamed aside.

    Returns the path the old ``dest`` was moved to (to be discarded once the record is
    written), or None.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    displaced = set_aside(dest, tmp_dir)
    try:
        os.replace(staged, dest)
    except OSError:
        if displaced is not None:
            os.replace(displaced, dest)
        raise
    return displaced


def set_aside(path: Path, tmp_dir: Path) -> Path | None:
    """Rename ``path`` (file or folder) to ``tmp_dir/old-<uuid>``; None when it is not there.

    The first step of removing installed files: a rename is atomic, so a crash leaves the
    files either where they were or under ``tmp_dir``, where ``reconciler gc`` clears them,
    never half removed, and never left in the models dir after their record is gone.
    """
    if not (path.exists() or path.is_symlink()):
        return None
    tmp_dir.mkdir(parents=True, exist_ok=True)
    aside = tmp_dir / f"old-{uuid.uuid4().hex}"
    os.replace(path, aside)
    return aside


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def same_content(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` hold the same bytes: two files, or two folders with the same
    files (relative paths, sizes, sha256).  Symlinks count as different."""
    if a.is_symlink() or b.is_symlink():
        return False
    if a.is_file() and b.is_file():
        return a.stat().st_size == b.stat().st_size and _sha256_of(a) == _sha256_of(b)
    if not (a.is_dir() and b.is_dir()):
        return False

    def listing(root: Path) -> dict[str, Path] | None:
        found: dict[str, Path] = {}
        for p in root.rglob("*"):
            if p.is_symlink():
                return None
            if p.is_file():
                found[p.relative_to(root).as_posix()] = p
        return found

    left, right = listing(a), listing(b)
    if left is None or right is None or left.keys() != right.keys():
        return False
    if any(left[k].stat().st_size != right[k].stat().st_size for k in left):
        return False
    return all(_sha256_of(left[k]) == _sha256_of(right[k]) for k in left)


@contextmanager
def files_aside(path: Path, tmp_dir: Path, models_dir: Path, owned: bool = True) -> Iterator[None]:
    """Hold ``path``'s files aside under ``tmp_dir`` while the block changes the record.

    The files leave the models dir first (one rename), so a crash never leaves them there
    without their record; a block that raises puts them back; a block that succeeds
    discards them and the folders they leave empty.  With ``owned`` False (in-place or
    outside files) nothing is moved and nothing is removed.
    """
    aside = set_aside(path, tmp_dir) if owned else None
    try:
        yield
    except BaseException:
        if aside is not None:
            os.replace(aside, path)
        raise
    discard(aside)
    if owned:
        prune_empty_parents(path, models_dir)


def discard(path: Path | None) -> None:
    """Remove a file or folder if present (staging leftovers, displaced old copies)."""
    if path is None:
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def prune_empty_parents(path: Path, stop: Path) -> None:
    """Remove empty folders above ``path`` up to (not including) ``stop``."""
    parent = path.parent
    stop = stop.resolve()
    while parent.resolve() != stop and stop in parent.resolve().parents:
        try:
            parent.rmdir()
        except OSError:
            return
        parent = parent.parent


def with_sha256(states: list[FileState], digests: Mapping[str, str]) -> list[FileState]:
    """File states with the sha256 computed while copying or downloading, where known."""
    return [s.model_copy(update={"sha256": digests.get(s.path)}) if s.path in digests else s for s in states]
