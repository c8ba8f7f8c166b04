"""Download jobs: what to fetch, where to, and how far along it is.

Jobs are pydantic models (as in the seed) so library users can inspect and dump them, but
the queue owns their mutable state: fields are written only by the queue's threads, and
callers control a job through the queue's methods.  ``access_token`` is excluded from
``repr`` and dumps, and :meth:`DownloadJobBase.event_payload` never includes it.

Event handlers are ``Callable[[DownloadJobBase], None]`` (:data:`DownloadEventHandler`): the
queue calls each with the job itself, after it has updated the job's fields for the status
change or progress mark.  A ``destination`` given as a string ending in ``/`` names a
folder (created when needed), as does an existing folder.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Optional
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)
from pydantic.networks import AnyUrl

from reconciler.errors import UnsafePathError

from .http import redact_url

DownloadEventHandler = Callable[["DownloadJobBase"], Any]
"""What a job's and a queue's ``event_handlers`` hold: called with the job on every event."""


class DownloadJobStatus(str, Enum):
    """Where a job is in its life. Terminal: completed, error, cancelled."""

    IDLE = "idle"
    ENQUEUED = "enqueued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    ERROR = "error"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        """The string value (``completed``), as the seed's string enum shows in f-strings."""
        return self.value

    @property
    def terminal(self) -> bool:
        """True for completed, error and cancelled."""
        return self in (DownloadJobStatus.COMPLETED, DownloadJobStatus.ERROR, DownloadJobStatus.CANCELLED)


def check_relpath(relpath: str | Path) -> PurePosixPath:
    """A relative path that stays inside its folder, or :class:`UnsafePathError` naming it.

    Refuses absolute paths (POSIX or Windows, drive letters included), ``..`` anywhere,
    empty paths, backslashes and control characters: a remote listing is untrusted input.
    """
    text = str(relpath)
    if (not text or "\\" in text or any(ord(c) < 32 or ord(c) == 127 for c in text)
            or PurePosixPath(text).is_absolute() or PureWindowsPath(text).anchor):
        raise UnsafePathError(f"unsafe path in remote listing: {text!r}")
    path = PurePosixPath(text)
    if any(p in ("..", "") for p in path.parts) or path.parts in ((), (".",)):
        raise UnsafePathError(f"unsafe path in remote listing: {text!r} (escapes its folder)")
    return path


class DownloadJobBase(BaseModel):
    """Fields every job has (the seed's), plus the queue's private control state."""

    model_config = ConfigDict(arbitrary_types_allowed=True, validate_assignment=False)

    id: int = -1
    priority: int = 10
    source: Any
    destination: Path
    status: DownloadJobStatus = DownloadJobStatus.IDLE
    event_handlers: list[DownloadEventHandler] = Field(default_factory=list)
    job_started: Optional[float] = None
    job_ended: Optional[float] = None
    job_sequence: Optional[int] = None
    error: Optional[BaseException] = None
    preserve_partial_downloads: bool = False
    download_path: Optional[Path] = Field(default=None, description="The final file or folder, once known")

    _stop: threading.Event = PrivateAttr(default_factory=threading.Event)
    _stop_reason: Optional[str] = PrivateAttr(default=None)  # "pause" | "cancel"
    _resume_requested: bool = PrivateAttr(default=False)
    _queue_token: int = PrivateAttr(default=0)
    _enqueued_once: bool = PrivateAttr(default=False)
    _owner: Any = PrivateAttr(default=None)
    _dest_is_dir: Optional[bool] = PrivateAttr(default=None)
    _partials: set[Path] = PrivateAttr(default_factory=set)
    _settled: bool = PrivateAttr(default=False)  # terminal event delivered
    _queue_handlers: bool = PrivateAttr(default=True)  # the queue's handlers run for this job
    # held while a status changes and its handlers run, so they see the statuses in order
    _events: Any = PrivateAttr(default_factory=threading.RLock)

    @model_validator(mode="wrap")
    @classmethod
    def _destination_folder(cls, data: Any, handler: ModelWrapValidatorHandler[DownloadJobBase]) -> DownloadJobBase:
        """Remember a trailing slash on ``destination`` (Path drops it): the job then names a folder."""
        dest = data.get("destination") if isinstance(data, dict) else None
        trailing = isinstance(dest, str) and dest.endswith(("/", os.sep))
        job = handler(data)
        if trailing:
            job._dest_is_dir = True
        return job

    def add_event_handler(self, handler: DownloadEventHandler) -> None:
        """Append a handler; it runs after the job's earlier ones, before the queue's."""
        self.event_handlers.append(handler)

    def clear_event_handlers(self) -> None:
        """Remove every handler of this job: its own, and the queue's for this job."""
        self.event_handlers.clear()
        self._queue_handlers = False

    @property
    def terminal(self) -> bool:
        """True once the job is completed, errored or cancelled."""
        return self.status.terminal

    def shown_source(self) -> str:
        """The source as it may be shown: a URL with credentials and query secrets redacted."""
        return str(self.source)

    def event_payload(self) -> dict[str, Any]:
        """What events carry: ids, redacted source, progress, status, error text (no token)."""
        payload: dict[str, Any] = {
            "job_id": self.id,
            "source": self.shown_source(),
            "destination": str(self.download_path or self.destination),
            "status": self.status.value,
            "priority": self.priority,
            "bytes": 0,
            "total_bytes": 0,
        }
        if self.error is not None:
            payload["error_type"] = type(self.error).__name__
            payload["error"] = str(self.error)
        return payload


class DownloadJobPath(DownloadJobBase):
    """Move a local file or folder to the destination, with the same events as a download."""

    source: Path


def _url_text(v: Any) -> Any:
    """A pydantic URL object (``AnyHttpUrl``) as its string; anything else unchanged."""
    return str(v) if isinstance(v, AnyUrl) else v


class DownloadJobRemoteSource(DownloadJobBase):
    """A remote download: progress counters, an optional token and optional expectations."""

    source: str
    bytes: int = 0
    total_bytes: int = 0
    access_token: Optional[str] = Field(default=None, repr=False, exclude=True)
    expected_size: Optional[int] = None
    sha256: Optional[str] = Field(default=None, description="Expected sha256 (hex), verified while streaming")
    actual_sha256: Optional[str] = Field(default=None, description="sha256 of the bytes received")

    @field_validator("source", mode="before")
    @classmethod
    def _source_text(cls, v: Any) -> Any:
        return _url_text(v)

    @field_validator("sha256")
    @classmethod
    def _hex(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        v = v.lower().removeprefix("sha256:")
        if len(v) != 64 or any(c not in "0123456789abcdef" for c in v):
            raise ValueError("sha256 must be 64 hex digits")
        return v

    def shown_source(self) -> str:
        """The source URL with credentials and query secrets redacted."""
        return redact_url(self.source)

    def event_payload(self) -> dict[str, Any]:
        """Base payload plus bytes/total_bytes (and the digest once known)."""
        payload = super().event_payload()
        payload["bytes"] = self.bytes
        payload["total_bytes"] = self.total_bytes
        if self.actual_sha256:
            payload["sha256"] = self.actual_sha256
        return payload


class DownloadJobURL(DownloadJobRemoteSource):
    """A remote download whose source must be an absolute http(s) URL.

    ``source`` may be given as a string or a pydantic ``AnyHttpUrl``; it is kept as the
    string, exactly as given (the URL object would re-encode a signed URL's query).
    """

    @field_validator("source", mode="before")
    @classmethod
    def _url(cls, v: Any) -> str:
        text = str(_url_text(v))
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {redact_url(text)}")
        return text


@dataclass
class DownloadPart:
    """One file of a multi-file job; its progress fields are written by the queue."""

    url: str
    dest_relpath: str | Path
    expected_size: int | None = None
    expected_sha256: str | None = None
    bytes: int = 0
    total_bytes: int = 0
    status: DownloadJobStatus = DownloadJobStatus.IDLE
    actual_sha256: str | None = None
    download_path: Path | None = field(default=None)

    def __post_init__(self) -> None:
        self.dest_relpath = str(check_relpath(self.dest_relpath))
        if self.expected_sha256 is not None:
            self.expected_sha256 = self.expected_sha256.lower().removeprefix("sha256:")

    def progress(self) -> dict[str, Any]:
        """Per-part progress as events show it."""
        return {"path": self.dest_relpath, "bytes": self.bytes, "total_bytes": self.total_bytes,
                "status": self.status.value}


class MultiFileDownloadJob(DownloadJobRemoteSource):
    """Several files (e.g. a Hugging Face repo snapshot) under one destination folder, as one job.

    ``source`` is a label shown in events (a repo URL, ``hf://repo@rev``); each part has its
    own URL.  ``bytes``/``total_bytes`` are sums over parts; ``parts[i]`` holds per-part
    progress.  A part whose path is absolute or leaves the folder is refused at creation.
    """

    parts: list[DownloadPart] = Field(default_factory=list)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)
        seen: set[str] = set()
        for part in self.parts:
            if not isinstance(part, DownloadPart):
                raise TypeError("parts must be DownloadPart objects")
            rel = str(check_relpath(part.dest_relpath))
            if rel in seen:
                raise UnsafePathError(f"duplicate path in remote listing: {rel!r}")
            seen.add(rel)
        if self.parts and all(p.expected_size is not None for p in self.parts):
            self.total_bytes = sum(p.expected_size or 0 for p in self.parts)

    def event_payload(self) -> dict[str, Any]:
        """Aggregate progress plus counts of parts; per-part detail is on ``job.parts``."""
        payload = super().event_payload()
        payload["parts_total"] = len(self.parts)
        payload["parts_completed"] = sum(p.status == DownloadJobStatus.COMPLETED for p in self.parts)
        return payload


__all__ = [
    "DownloadEventHandler",
    "DownloadJobBase",
    "DownloadJobPath",
    "DownloadJobRemoteSource",
    "DownloadJobStatus",
    "DownloadJobURL",
    "DownloadPart",
    "MultiFileDownloadJob",
    "check_relpath",
]
