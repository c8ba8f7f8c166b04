"""What resolving a remote source gives: a pinned revision and the exact files to fetch.

A :class:`ResolvedSource` is what the planner diffs, the lock file records and the
installer downloads.  Nothing in it holds an access token: URLs are the bare download
URLs, and the source's token field is excluded from its repr and dumps.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Optional

from reconciler.errors import UnsafePathError
from reconciler.metadata import AnyModelRepoMetadata
from reconciler.sources.base import ModelSource

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass
class RemoteFile:
    """One file to download."""

    path: str  # repo-relative path (Civitai/URL: the remote file name)
    dest: str  # relative path inside the installed model (file or folder)
    url: str  # download URL, without any token
    size: Optional[int] = None  # bytes, when the listing says
    sha256: Optional[str] = None  # lower-case hex, when the listing says
    git_blob: Optional[str] = None  # a plain git file's blob id (Hugging Face), checked when there is no sha256


@dataclass
class ResolvedSource:
    """A remote source resolved to a pinned revision and a file list.

    ``revision``: Hugging Face commit sha, Civitai version id, or the URL's ETag.
    ``single_file``: the model is one file (``files[0]``, installed as a file); otherwise a
    folder whose layout is ``files[*].dest``.  ``notes`` say what a person should know
    (a component without the requested variant, ...).  ``etag``: the URL's ETag.
    ``api_response``: the source API's answer as JSON text (Hugging Face's model info,
    Civitai's model version), kept in the record's ``source_api_response``; None for URLs.
    """

    source: ModelSource
    revision: Optional[str]
    files: list[RemoteFile]
    single_file: bool
    name_hint: str
    notes: list[str] = field(default_factory=list)
    metadata: Optional[AnyModelRepoMetadata] = None
    etag: Optional[str] = None
    api_response: Optional[str] = None

    @property
    def download_bytes(self) -> int:
        """Bytes to download (files of unknown size count 0)."""
        return sum(f.size or 0 for f in self.files)


def git_blob_id(data: bytes) -> str:
    """The git object id of a blob holding ``data`` (what the hub lists for a plain git file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def check_remote_path(path: str, where: str) -> str:
    """Return ``path`` if it stays inside its folder; raise UnsafePathError naming it otherwise.

    Refuses absolute paths (``/x``, ``\\\\x``, ``C:x``), ``..`` parts, backslashes, empty
    parts and control characters.  ``where`` names the listing in the message.
    """
    parts = path.split("/")
    bad = (
        not path
        or path.startswith("/")
        or "\\" in path
        or _DRIVE.match(path) is not None
        or any(p in ("", ".", "..") for p in parts)
        or not path.isprintable()
    )
    if bad:
        raise UnsafePathError(
            f"{where} lists the file {path!r}, which would land outside the model's folder; "
            "the whole source is refused"
        )
    return path


__all__ = ["RemoteFile", "ResolvedSource", "check_remote_path", "git_blob_id"]
