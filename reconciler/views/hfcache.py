"""The Hugging Face hub cache layout of an installed model (the ``hf-cache`` view, SD.Next's
"hf cache" cells).

For a model whose source is a Hugging Face repo, huggingface_hub's cache holds::

    models--{org}--{name}/refs/{branch}            the commit, no trailing newline
    models--{org}--{name}/snapshots/{commit}/{path}  every installed file at its repo path
    models--{org}--{name}/blobs/{etag}             sha256 (LFS files) or git blob sha1 (others)

With ``link: symlink`` the snapshot entries are relative symlinks to ``../../blobs/{etag}``
(huggingface_hub's own layout) and each blob a relative symlink to the model's file; with a
hardlink or a copy the snapshot entries are the files themselves and there are no blobs.
No ``.no_exist/`` entries and no ``trees/`` listings are written.

A file's repo path is its subfolder plus its path in the model, or the file the source names;
for a single-file source that names no file (``hf://owner/lora``) it is the repo file whose
sha256 (or blob sha1) is the installed file's, from the hub listing kept in the record.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Optional

from reconciler.configs import FileState, ModelConfigBase
from reconciler.sources.base import HFModelSource
from reconciler.sources.parse import parse_source

#: what ``.gitattributes`` stores in git LFS on hub repos (used when the record keeps no listing)
LFS_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".msgpack", ".gguf", ".h5", ".pb",
                ".pkl", ".npy", ".npz", ".tflite", ".ot", ".model", ".xml")
LFS_MIN_SIZE = 10 * 2**20
_SHA1 = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def git_blob_sha1(path: Path) -> str:
    """The git blob id of a file's bytes (the hub's ETag of a file not in LFS)."""
    size = path.stat().st_size
    digest = hashlib.sha1(b"blob %d\0" % size)  # noqa: S324 - git's object id, not security
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheFile:
    """One installed file as the hub cache holds it."""

    repo_path: str  # its path in the repo (posix)
    local: Path  # the installed file
    etag: str  # sha256 (LFS) or git blob sha1


@dataclass(frozen=True)
class CacheRepo:
    """What an installed model adds to a hub cache."""

    repo_id: str
    branch: Optional[str]  # the ref to write (None: the source pinned a commit)
    commit: str
    files: tuple[CacheFile, ...]

    @property
    def folder(self) -> str:
        return "models--" + self.repo_id.replace("/", "--")


def _siblings(record: ModelConfigBase) -> Optional[dict[str, dict[str, Any]]]:
    """The hub listing kept in the record: repo path -> sibling (None when not kept)."""
    if not record.source_api_response:
        return None
    try:
        api = json.loads(record.source_api_response)
    except ValueError:
        return None
    siblings = api.get("siblings") if isinstance(api, dict) else None
    if not isinstance(siblings, list):
        return None
    return {s["rfilename"]: s for s in siblings if isinstance(s, dict) and isinstance(s.get("rfilename"), str)}


def _lfs_sha256(sibling: Optional[dict[str, Any]]) -> Optional[str]:
    lfs = (sibling or {}).get("lfs")
    sha = lfs.get("sha256") if isinstance(lfs, dict) else None
    return sha.lower() if isinstance(sha, str) and _SHA256.fullmatch(sha.lower()) else None


def cache_repo(record: ModelConfigBase, model_path: Path, states: list[FileState]) -> tuple[Optional[CacheRepo], str]:
    """The hub cache entries of an installed model, or (None, why not)."""
    if not record.source or not record.source.startswith("hf://"):
        return None, "its source is not a Hugging Face repo: it has no hub cache layout"
    try:
        source = parse_source(record.source)
    except Exception as exc:  # noqa: BLE001 - a record of an older source grammar
        return None, f"its source {record.source} cannot be read ({exc})"
    if not isinstance(source, HFModelSource):
        return None, "its source is not a Hugging Face repo: it has no hub cache layout"
    commit = (record.source_revision or "").lower()
    if not _SHA1.fullmatch(commit):
        return None, "its record keeps no commit of the repo"
    branch: Optional[str] = source.revision or "main"
    if branch is not None and branch.lower() == commit:
        branch = None  # pinned to the commit: huggingface_hub writes no ref for that either
    siblings = _siblings(record)
    files: list[CacheFile] = []
    for state in states:
        local = model_path / state.path if state.path else model_path
        if not local.is_file():
            return None, f"{local} is missing (repair the model first)"
        if source.file is not None and not state.path:
            repo_path: Optional[str] = source.file
        elif state.path:
            repo_path = str(PurePosixPath(source.subfolder, state.path)) if source.subfolder else state.path
        else:
            repo_path = _find_by_digest(siblings, state, local)
            if repo_path is None:
                return None, "the repo path of its file is not known (the record keeps no hub listing that matches it)"
        sibling = (siblings or {}).get(repo_path)
        if siblings is not None and sibling is None:
            return None, f"{repo_path} is not in the repo's listing kept in the record"
        files.append(CacheFile(repo_path, local, _etag(state, local, sibling, siblings is not None)))
    if not files:
        return None, "it has no recorded files"
    return CacheRepo(source.repo_id, branch, commit, tuple(files)), ""


def _etag(state: FileState, local: Path, sibling: Optional[dict[str, Any]], listed: bool) -> str:
    sha = _lfs_sha256(sibling)
    if sha is not None:
        return sha
    lfs = not listed and (local.suffix.lower() in LFS_SUFFIXES or state.size >= LFS_MIN_SIZE)
    if lfs and state.sha256:
        return state.sha256.lower()
    return git_blob_sha1(local)


def _find_by_digest(siblings: Optional[dict[str, dict[str, Any]]], state: FileState, local: Path) -> Optional[str]:
    if not siblings:
        return None
    if state.sha256:
        found = [p for p, s in siblings.items() if _lfs_sha256(s) == state.sha256.lower()]
        if len(found) == 1:
            return found[0]
    blob = git_blob_sha1(local) if state.size < LFS_MIN_SIZE else None
    found = [p for p, s in siblings.items() if blob and str(s.get("blobId", "")).lower() == blob]
    return found[0] if len(found) == 1 else None


__all__ = ["CacheFile", "CacheRepo", "cache_repo", "git_blob_sha1"]
