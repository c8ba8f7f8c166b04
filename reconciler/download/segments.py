"""One file, one or several connections, resumable across processes.

:class:`FileDownload` moves the bytes of one URL into ``<dest>.part`` and renames it to
``<dest>`` once the size and sha256 checks pass.  Next to the ``.part`` a small JSON
sidecar (``<dest>.part.json``) records the URL (redacted), the total size, the validator
(ETag / Last-Modified) and each segment's progress; it is rewritten atomically every
few MiB, and only ever claims bytes that were already written, so a process killed at any
point resumes in the next one from what it had.

Segments: when the server honours ``Range`` and the file is at least twice
``min_segment_size``, the file is split into up to ``connections`` ranges fetched in
parallel with ``os.pwrite`` into a preallocated (sparse) ``.part``.  Otherwise one stream.

sha256 is computed as bytes arrive: the segment that holds the contiguous frontier hashes
its chunks from memory; bytes that other segments wrote ahead of the frontier are hashed
by a helper that reads them back from the page cache while the download is still running
(and, after a resume, the bytes from the previous run are read once: hashlib state cannot
be saved).  A single-stream download hashes everything from memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from reconciler.errors import DownloadError, IntegrityError, TransientDownloadError

from .http import (
    check_status,
    html_error,
    looks_like_html,
    network_error,
    open_stream,
    redact_url,
    remote_filename,
)
from .ratelimit import TokenBucket
from .retry import Interrupted, RetryPolicy

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
STATE_SUFFIX = ".part.json"
STATE_VERSION = 1
SAVE_EVERY_BYTES = 8 * 2**20
SAVE_EVERY_SECONDS = 0.5
HASH_READ = 2**20


class RangeIgnored(Exception):
    """Internal: a ranged request got 200 (or a different entity): restart from byte zero."""


@dataclass
class Segment:
    """Bytes ``[start, end)`` of the file; ``pos`` is the next byte to fetch (``end`` -1: unknown)."""

    start: int
    end: int
    pos: int

    @property
    def done(self) -> bool:
        return self.end >= 0 and self.pos >= self.end


@dataclass
class PartState:
    """The sidecar's content: enough to resume in another process."""

    url: str
    total_size: int
    etag: str | None = None
    last_modified: str | None = None
    segments: list[Segment] = field(default_factory=list)
    version: int = STATE_VERSION

    @property
    def done_bytes(self) -> int:
        return sum(s.pos - s.start for s in self.segments)

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename) so a kill never leaves half a sidecar."""
        tmp = path.with_name(path.name + ".tmp")
        data = asdict(self)
        tmp.write_text(json.dumps(data, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> PartState | None:
        """The state in ``path``, or None when missing, unreadable or of another version."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                return None
            segs = [Segment(int(s["start"]), int(s["end"]), int(s["pos"])) for s in data["segments"]]
            state = cls(url=str(data["url"]), total_size=int(data["total_size"]), etag=data.get("etag"),
                        last_modified=data.get("last_modified"), segments=segs)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if state.total_size < 0 or not segs or any(
                not (s.start <= s.pos <= s.end <= state.total_size) for s in segs):
            return None
        return state


def part_path(dest: Path) -> Path:
    """``<dest>.part``."""
    return dest.with_name(dest.name + PART_SUFFIX)


def state_path(dest: Path) -> Path:
    """``<dest>.part.json``."""
    return dest.with_name(dest.name + STATE_SUFFIX)


def remove_partials(dest: Path) -> None:
    """Delete ``<dest>.part`` and its sidecar (and a stray sidecar temp file)."""
    for p in (part_path(dest), state_path(dest), state_path(dest).with_name(state_path(dest).name + ".tmp")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def find_state_for_url(destdir: Path, url: str) -> Path | None:
    """The destination whose sidecar in ``destdir`` belongs to ``url`` (a resume after restart)."""
    shown = redact_url(url)
    try:
        candidates = sorted(destdir.glob("*" + STATE_SUFFIX))
    except OSError:
        return None
    for sidecar in candidates:
        state = PartState.load(sidecar)
        if state is not None and state.url == shown:
            return sidecar.with_name(sidecar.name[: -len(STATE_SUFFIX)])
    return None


MAX_PIECES = 4096


def split_segments(start: int, total: int, min_segment_size: int) -> list[Segment]:
    """``[start, total)`` as equal pieces of at least ``min_segment_size`` (at most MAX_PIECES).

    Pieces are fetched in order by up to ``connections`` workers, each taking the next free
    piece: the contiguous prefix then grows steadily, so the sha256 frontier can follow
    the download instead of waiting for the end, and resume state is fine-grained.
    """
    length = total - start
    if length <= 0:
        return []
    piece = max(1, min_segment_size, -(-length // MAX_PIECES))
    n = max(1, length // piece)
    bounds = [start + length * i // n for i in range(n + 1)]
    return [Segment(bounds[i], bounds[i + 1], bounds[i]) for i in range(n)]


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", value or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), (None if m.group(3) == "*" else int(m.group(3)))


def _strong_etag(etag: str | None) -> str | None:
    return etag if etag and not etag.startswith("W/") else None


class _Hasher:
    """sha256 of the contiguous prefix, fed from memory when possible (see module doc)."""

    def __init__(self) -> None:
        self.h = hashlib.sha256()
        self.upto = 0
        self.lock = threading.Lock()

    def feed(self, offset: int, data: memoryview | bytes) -> None:
        with self.lock:
            if offset == self.upto:
                self.h.update(data)
                self.upto += len(data)

    def catch_up(self, fd: int, frontier: int, stop: Callable[[], bool] = lambda: False) -> None:
        """Hash bytes already on disk up to ``frontier`` (all of them written)."""
        while not stop():
            with self.lock:
                start = self.upto
            if start >= frontier:
                return
            n = min(HASH_READ, frontier - start)
            data = os.pread(fd, n, start)
            if len(data) != n:
                raise DownloadError("partial file shrank while hashing")
            with self.lock:
                if self.upto == start:
                    self.h.update(data)
                    self.upto = start + n


@dataclass
class DownloadResult:
    """What a finished :class:`FileDownload` produced."""

    path: Path
    size: int
    sha256: str | None
    fetched: int  # bytes received over the network in this run


class FileDownload:
    """Fetch one URL to one file; see the module docstring for the mechanics.

    ``dest`` is the final file path, or None to name the file from the response
    (Content-Disposition, else the URL) inside ``destdir``.  ``on_progress(delta, total)``
    is called from the transfer threads as bytes land (delta may be negative when a
    server without Range forces a restart).  ``on_dest(path)`` is called once the name is
    known.  ``stop`` set means pause or cancel: :class:`Interrupted` is raised and the
    ``.part`` and sidecar are left in place for the caller to keep or remove.
    """

    def __init__(
        self,
        *,
        session: requests.Session,
        url: str,
        dest: Path | None,
        destdir: Path,
        token: str | None = None,
        connections: int = 8,
        min_segment_size: int = 16 * 2**20,
        chunk_size: int = 2**20,
        bucket: TokenBucket | None = None,
        retry: RetryPolicy | None = None,
        timeout: float = 30.0,
        stop: threading.Event | None = None,
        expected_size: int | None = None,
        expected_sha256: str | None = None,
        compute_sha256: bool = True,
        on_progress: Callable[[int, int | None], None] | None = None,
        on_dest: Callable[[Path], None] | None = None,
    ) -> None:
        self.session = session
        self.url = url
        self.dest = dest
        self.destdir = destdir
        self.token = token
        self.connections = max(1, connections)
        self.min_segment_size = max(1, min_segment_size)
        self.chunk_size = chunk_size
        self.bucket = bucket or TokenBucket(None)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.stop = stop or threading.Event()
        self.expected_size = expected_size
        self.expected_sha256 = expected_sha256.lower() if expected_sha256 else None
        self.want_hash = compute_sha256 or expected_sha256 is not None
        self.on_progress = on_progress or (lambda d, t: None)
        self.on_dest = on_dest or (lambda p: None)
        self.fetched = 0
        self._halt = threading.Event()  # stop or a failed sibling segment
        self._save_lock = threading.Lock()
        self._unsaved = 0
        self._last_save = 0.0
        self._responses: set[requests.Response] = set()
        self._resp_lock = threading.Lock()
        self._fetched_lock = threading.Lock()

    # --- public ----------------------------------------------------------------------------
    def run(self) -> DownloadResult:
        """Download, verify and rename; returns the result or raises."""
        if self.dest is None:
            found = find_state_for_url(self.destdir, self.url)
            if found is not None:
                self._set_dest(found)
        for attempt in range(3):
            try:
                # a resume whose entity changed gets a fresh ranged plan first; a server that
                # answers 206 to the probe but 200 to segments gets one plain stream at last
                return self._attempt(no_range=attempt >= 2)
            except RangeIgnored:
                log.info("%s: server ignored Range or the file changed; restarting from byte 0",
                         redact_url(self.url))
                if self.dest is not None:
                    remove_partials(self.dest)
        raise DownloadError(f"{redact_url(self.url)}: server keeps changing the file during download")

    def abort_connections(self) -> None:
        """Shut down open sockets so a read blocked on a stalled server returns now."""
        with self._resp_lock:
            responses = list(self._responses)
        for resp in responses:
            conn = getattr(resp.raw, "_connection", None) or getattr(resp.raw, "connection", None)
            sock = getattr(conn, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    # --- plan ------------------------------------------------------------------------------
    def _set_dest(self, dest: Path) -> None:
        self.dest = dest
        self.on_dest(dest)

    def _load_state(self) -> PartState | None:
        assert self.dest is not None
        state = PartState.load(state_path(self.dest))
        if state is None or state.url != redact_url(self.url):
            return None
        try:
            if part_path(self.dest).stat().st_size != state.total_size:
                return None
        except OSError:
            return None
        if self.expected_size is not None and state.total_size != self.expected_size:
            return None
        return state

    def _open(self, headers: dict[str, str]) -> requests.Response:
        resp = open_stream(self.session, self.url, headers=headers, token=self.token, timeout=self.timeout)
        if resp.status_code == 416 and headers.get("Range", "").startswith("bytes=0-"):  # an empty file
            resp.close()
            rest = {k: v for k, v in headers.items() if k != "Range"}
            resp = open_stream(self.session, self.url, headers=rest, token=self.token, timeout=self.timeout)
        try:
            check_status(resp, self.url, self.token)
        except Exception:
            resp.close()
            raise
        return resp

    def _attempt(self, no_range: bool) -> DownloadResult:
        self._halt.clear()
        if self.stop.is_set():
            raise Interrupted()
        state = self._load_state() if (self.dest is not None and not no_range) else None
        first: requests.Response | None = None
        if state is None:
            if no_range:
                probe: dict[str, str] = {}
            elif self.connections > 1:  # piece 0 exactly, so its connection is reused
                probe = {"Range": f"bytes=0-{self.min_segment_size - 1}"}
            else:
                probe = {"Range": "bytes=0-"}
            first = self.retry.run(lambda: self._open(probe), stop=self._halt_or_stop())
            try:
                state = self._plan_from(first, no_range)
            except BaseException:
                first.close()
                raise
            if state is None:  # a sidecar for the name the server gave: resume from it
                first.close()
                first = None
                state = self._load_state()
                assert state is not None
        else:
            log.info("%s: resuming at %d of %d bytes", redact_url(self.url), state.done_bytes, state.total_size)
        ranged = not no_range and (first is None or first.status_code == 206)
        return self._transfer(state, first, ranged=ranged)

    def _plan_from(self, resp: requests.Response, no_range: bool) -> PartState | None:
        """Name, size and segments from the first response; None means 'resume the sidecar'."""
        if looks_like_html(resp.headers.get("Content-Type"), b""):
            raise html_error(self.url, self.token)
        if self.dest is None:
            name = remote_filename(resp, self.url)
            if not name:
                raise DownloadError(f"{redact_url(self.url)}: cannot tell a file name; give one")
            self._set_dest(self.destdir / name)
            if not no_range and self._load_state() is not None:
                return None
        assert self.dest is not None
        total: int | None = None
        ranged = False
        first_end: int | None = None
        if resp.status_code == 206:
            cr = _content_range(resp.headers.get("Content-Range"))
            if cr is None or cr[0] != 0:
                raise RangeIgnored()
            total = cr[2]
            ranged = total is not None
            first_end = cr[1] + 1
        elif not resp.headers.get("Content-Encoding") or resp.headers["Content-Encoding"] == "identity":
            cl = resp.headers.get("Content-Length")
            total = int(cl) if cl and cl.isdigit() else None
        if total is not None and self.expected_size is not None and total != self.expected_size:
            raise IntegrityError(
                f"{redact_url(self.url)}: server reports {total} bytes, expected {self.expected_size}")
        if ranged and total is not None and first_end is not None:
            first_end = min(first_end, total)
            segments = [Segment(0, first_end, 0)] + split_segments(first_end, total, self.min_segment_size)
        else:
            segments = [Segment(0, total if total is not None else -1, 0)]
        return PartState(url=redact_url(self.url), total_size=total if total is not None else -1,
                         etag=resp.headers.get("ETag"), last_modified=resp.headers.get("Last-Modified"),
                         segments=segments)

    def _halt_or_stop(self) -> threading.Event:
        return self._halt

    # --- transfer --------------------------------------------------------------------------
    def _transfer(self, state: PartState, first: requests.Response | None, ranged: bool) -> DownloadResult:
        assert self.dest is not None
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        ppath, spath = part_path(self.dest), state_path(self.dest)
        resumable = ranged and state.total_size >= 0
        fresh = first is not None
        fd = os.open(ppath, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if fresh else 0), 0o644)
        try:
            if fresh and state.total_size > 0:
                os.ftruncate(fd, state.total_size)  # sparse preallocation: pwrite anywhere
            if resumable:
                state.save(spath)
            elif spath.exists():
                spath.unlink()
            total = state.total_size if state.total_size >= 0 else None
            already = state.done_bytes
            if already:
                self.on_progress(already, total)
            hasher = _Hasher() if self.want_hash else None
            errors: list[BaseException] = []
            segs = state.segments

            pending = [s for s in segs if not s.done or s.end < 0]
            take_lock = threading.Lock()

            def worker(initial: requests.Response | None) -> None:
                box = [initial]
                try:
                    while not self._halt.is_set():
                        with take_lock:
                            if not pending:
                                return
                            seg = pending.pop(0)
                        self.retry.run(
                            lambda seg=seg: self._fetch(fd, seg, box, state, spath if resumable else None,
                                                        hasher, total, ranged),
                            progress=lambda seg=seg: seg.pos, stop=self._halt)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    errors.append(exc)
                    self._halt.set()
                finally:
                    if box[0] is not None:
                        box[0].close()

            n_workers = min(self.connections if ranged else 1, len(pending))
            use_first = first is not None and bool(pending) and pending[0].start == 0
            threads = []
            for i in range(n_workers):
                t = threading.Thread(target=worker, args=(first if (use_first and i == 0) else None,),
                                     daemon=True, name=f"dl-conn-{i}")
                threads.append(t)
                t.start()
            if first is not None and not use_first:
                first.close()
            stop_seen = False
            while True:
                alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                if hasher is not None:
                    hasher.catch_up(fd, self._frontier(segs),
                                    stop=lambda: self._halt.is_set() or self.stop.is_set())
                alive[0].join(0.05)
                if self.stop.is_set() and not stop_seen:
                    stop_seen = True
                    self._halt.set()
                    self.abort_connections()
            if resumable:
                with self._save_lock:
                    state.save(spath)
            if self.stop.is_set():
                raise Interrupted()
            if errors:
                real = [e for e in errors if not isinstance(e, Interrupted)]
                raise (real or errors)[0]
            size = segs[0].pos if total is None else total
            if any(not s.done for s in segs if s.end >= 0):
                raise TransientDownloadError(f"{redact_url(self.url)}: transfer ended early")
            if self.expected_size is not None and size != self.expected_size:
                raise IntegrityError(
                    f"{redact_url(self.url)}: got {size} bytes, expected {self.expected_size}")
            digest = None
            if hasher is not None:
                hasher.catch_up(fd, size)
                digest = hasher.h.hexdigest()
                if self.expected_sha256 and digest != self.expected_sha256:
                    raise IntegrityError(
                        f"{redact_url(self.url)}: sha256 mismatch: got {digest}, expected {self.expected_sha256}")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(ppath, self.dest)
        with contextlib.suppress(FileNotFoundError):
            spath.unlink()
        with contextlib.suppress(OSError):
            dfd = os.open(self.dest.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return DownloadResult(self.dest, size, digest, self.fetched)

    @staticmethod
    def _frontier(segs: list[Segment]) -> int:
        for s in segs:
            if not s.done:
                return s.pos
        return segs[-1].end if segs else 0

    def _fetch(self, fd: int, seg: Segment, box: list[requests.Response | None], state: PartState,
               spath: Path | None, hasher: _Hasher | None, total: int | None, ranged: bool) -> None:
        """One try at the rest of ``seg``: open (or reuse) a response, stream into the file."""
        if self._halt.is_set():
            raise Interrupted()
        resp = box[0]
        box[0] = None
        if resp is None:
            if not ranged and seg.pos > 0:  # no Range: only a restart from zero is correct
                self.on_progress(-seg.pos, total)
                seg.pos = 0
                if hasher is not None:
                    with hasher.lock:
                        hasher.h, hasher.upto = hashlib.sha256(), 0
            headers: dict[str, str] = {}
            if ranged:
                headers["Range"] = f"bytes={seg.pos}-{seg.end - 1}" if seg.end >= 0 else f"bytes={seg.pos}-"
                validator = _strong_etag(state.etag) or state.last_modified
                if validator:
                    headers["If-Range"] = validator
            resp = self._open(headers)
            if ranged:
                cr = _content_range(resp.headers.get("Content-Range")) if resp.status_code == 206 else None
                if cr is None or cr[0] != seg.pos or (cr[2] is not None and cr[2] != state.total_size):
                    resp.close()
                    raise RangeIgnored()
        box[0] = resp
        with self._resp_lock:
            self._responses.add(resp)
        try:
            self._stream(fd, seg, resp, state, spath, hasher, total)
            if seg.end >= 0 and _fully_read(resp):
                resp._content_consumed = True  # keep-alive: hand the connection back to the pool
                resp.raw.release_conn()
        finally:
            with self._resp_lock:
                self._responses.discard(resp)
            resp.close()
            box[0] = None

    def _stream(self, fd: int, seg: Segment, resp: requests.Response, state: PartState,
                spath: Path | None, hasher: _Hasher | None, total: int | None) -> None:
        raw = resp.raw
        chunk = self.bucket.chunk_size(self.chunk_size)
        first = seg.pos == 0
        expected_len = None
        cl = resp.headers.get("Content-Length")
        if cl and cl.isdigit():
            expected_len = int(cl)
        received = 0
        while seg.end < 0 or seg.pos < seg.end:
            if self._halt.is_set():
                raise Interrupted()
            want = chunk if seg.end < 0 else min(chunk, seg.end - seg.pos)
            try:
                data = raw.read1(want)
            except Exception as exc:  # urllib3 ProtocolError/ReadTimeoutError, OSError
                if self._halt.is_set():
                    raise Interrupted() from None
                raise network_error(exc, self.url, self.token) from None
            if not data:
                break
            if first:
                first = False
                if looks_like_html(None, data):
                    raise html_error(self.url, self.token)
            n = len(data)
            off = seg.pos
            view = memoryview(data)
            written = 0
            while written < n:
                written += os.pwrite(fd, view[written:], off + written)
            seg.pos = off + n
            received += n
            with self._fetched_lock:
                self.fetched += n
            if hasher is not None:
                hasher.feed(off, view)
            self.on_progress(n, total)
            if spath is not None:
                self._maybe_save(state, spath, n)
            self.bucket.consume(n, self._halt)
        if seg.end >= 0 and seg.pos < seg.end:
            if self._halt.is_set():
                raise Interrupted()
            raise TransientDownloadError(
                f"{redact_url(self.url)}: connection closed at byte {seg.pos} of a range ending at "
                f"{seg.end} (body shorter than announced)")
        if seg.end < 0 and expected_len is not None and received < expected_len:
            raise TransientDownloadError(
                f"{redact_url(self.url)}: body shorter than Content-Length ({received} < {expected_len})")

    def _maybe_save(self, state: PartState, spath: Path, n: int) -> None:
        with self._save_lock:
            self._unsaved += n
            now = time.monotonic()
            if self._unsaved >= SAVE_EVERY_BYTES or now - self._last_save >= SAVE_EVERY_SECONDS:
                self._unsaved = 0
                self._last_save = now
                try:
                    state.save(spath)
                except OSError as exc:
                    log.warning("cannot save resume state %s: %s", spath, exc)


def _fully_read(resp: requests.Response) -> bool:
    fp = getattr(resp.raw, "_fp", None)
    return fp is None or bool(getattr(fp, "isclosed", lambda: False)())


def describe(state: PartState) -> dict[str, Any]:
    """A short summary of a sidecar (for ``gc`` and debugging)."""
    return {"url": state.url, "total_size": state.total_size, "done_bytes": state.done_bytes,
            "segments": len(state.segments)}


__all__ = [
    "DownloadResult",
    "FileDownload",
    "PartState",
    "Segment",
    "find_state_for_url",
    "part_path",
    "remove_partials",
    "split_segments",
    "state_path",
]
