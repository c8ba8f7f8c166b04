"""One file, one or several connections, resumable across processes.

:class:`FileDownload` moves the bytes of one URL into ``<dest>.part`` and renames it to
``<dest>`` once the size and sha256 checks pass.  Next to the ``.part`` a small JSON
sidecar (``<dest>.part.json``) records the URL (redacted), the total size, the validator
(ETag / Last-Modified) and each segment's progress; it is rewritten atomically every
64 MiB or half second, and only ever claims bytes that were already written, so a process
killed at any point resumes in the next one from what it had.

Segments: when the server honours ``Range`` and the file is at least twice
``min_segment_size``, the file is split into up to ``connections`` ranges fetched in
parallel with ``os.pwrite`` into a preallocated (sparse) ``.part``.  Otherwise one stream.
A file of at least ``adaptive_min_size`` starts on ONE connection instead, and only when
that stream's rate after ``split_after`` seconds is under ``split_below`` is the rest split
into pieces for the other connections: on a fast link one sequential stream is cheaper
(and faster on few cores) than eight; behind a per-connection cap, splitting multiplies.

Bytes are read with ``recv`` straight into a few reused, page-aligned buffers per
connection (no bytes object per read).  A buffer is written with ``os.pwrite`` once full
(or after :data:`FLUSH_EVERY_SECONDS` on a slow link) through :class:`.writer.PartWriter`,
which writes aligned blocks with ``O_DIRECT`` where the filesystem allows it (see that
module for why); a stream that starts or ends off a block boundary writes that partial
block through the page cache.  Without ``O_DIRECT`` every ``recv`` is written at once.

sha256 is computed as bytes arrive, on a helper thread fed in file order through a small
bounded queue (hashlib releases the GIL, so it overlaps recv/write on another core): the
segment that holds the contiguous frontier hands over each buffer as it goes to be
written; bytes that other segments wrote ahead of the frontier are read back from the
file by the same thread while the download is still running (and, after a resume, the bytes from the previous run
are read once: hashlib state cannot be saved).  A single-stream download hashes everything from memory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests

from reconciler.errors import DiskFullError, DownloadError, IntegrityError, TransientDownloadError

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
from .writer import ALIGN, PartWriter, aligned_buffer

log = logging.getLogger(__name__)

PART_SUFFIX = ".part"
STATE_SUFFIX = ".part.json"
STATE_VERSION = 1
# The sidecar is rewritten (temp file + rename) after this many bytes or seconds, whichever
# comes first: a kill loses at most that much progress.  Each rewrite costs a file creation
# and a rename (~1-3 ms here); it runs on the thread that writes (with O_DIRECT a thread of
# its own, mostly waiting for the device), so the socket does not wait for it.  On slow
# links the half-second bound decides.
SAVE_EVERY_BYTES = 16 * 2**20
SAVE_EVERY_SECONDS = 0.5
HASH_READ = 2**20
BUFFERS_PER_CONNECTION = 16
# A partly filled buffer is written after this long, so a slow link still shows smooth
# progress and a kill loses little; a fast one fills its 1 MiB buffers long before.
FLUSH_EVERY_SECONDS = 0.2
# A write-behind thread joins up to this many queued bytes into one vectored write; with
# O_DIRECT, WRITERS threads per stream keep that many writes in flight.
WRITE_BATCH = 8 * 2**20
WRITERS = 2
# Adaptive segmentation (see FileDownload): a file of at least ADAPTIVE_MIN_SIZE starts on
# one connection; after SPLIT_AFTER seconds of body bytes, a rate under SPLIT_BELOW splits
# the rest over the other connections.  One loopback/LAN stream beats eight (no contention
# for two cores, one sequential write); a server capped per connection rewards splitting.
ADAPTIVE_MIN_SIZE = 64 * 2**20
SPLIT_AFTER = 0.25
SPLIT_BELOW = 200 * 2**20


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
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def split_segments(start: int, total: int, min_segment_size: int) -> list[Segment]:
    """``[start, total)`` as equal pieces of at least ``min_segment_size`` (at most MAX_PIECES).

    Pieces are fetched in order by up to ``connections`` workers, each taking the next free
    piece: the contiguous prefix then grows steadily, so the sha256 frontier can follow
    the download instead of waiting for the end, and resume state is fine-grained.  Inner
    bounds fall on :data:`~.writer.ALIGN` boundaries (when pieces are that big), so every
    piece's stream can write its blocks around the page cache.
    """
    length = total - start
    if length <= 0:
        return []
    piece = max(1, min_segment_size, -(-length // MAX_PIECES))
    n = max(1, length // piece)
    bounds = [start + length * i // n for i in range(n + 1)]
    if piece >= 2 * ALIGN:
        bounds[1:-1] = [b - b % ALIGN for b in bounds[1:-1]]
    return [Segment(bounds[i], bounds[i + 1], bounds[i]) for i in range(n)]


def _content_range(value: str | None) -> tuple[int, int, int | None] | None:
    m = re.match(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)", value or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), (None if m.group(3) == "*" else int(m.group(3)))


def _body_start(resp: requests.Response) -> int:
    """The file offset of a response's first body byte: its Content-Range start, else 0."""
    cr = _content_range(resp.headers.get("Content-Range")) if resp.status_code == 206 else None
    return cr[0] if cr is not None else 0


def _strong_etag(etag: str | None) -> str | None:
    return etag if etag and not etag.startswith("W/") else None


class _Hasher:
    """sha256 of the contiguous prefix, computed on a helper thread (see module doc).

    Streams :meth:`offer` each buffer they hand to be written; a buffer is queued only when it
    starts exactly where the queued bytes end (the segment holding the frontier), else it
    is declined and the bytes are read back later.  :meth:`catch_up` queues read-backs of
    bytes already on disk.  One consumer thread hashes the queue in order, so hashing
    (which releases the GIL) runs beside recv/write on another core, and the queue's bound
    (plus each stream's small buffer pool) keeps memory flat.
    """

    def __init__(self, fd: int, depth: int = 16) -> None:
        self.h = hashlib.sha256()
        self.fd = fd
        self.upto = 0  # hashed so far (written by the hash thread only)
        self.queued = 0  # end of the bytes handed to the hash thread
        self.error: BaseException | None = None
        self._order = threading.Lock()  # reserve-and-put is atomic: the queue stays in file order
        self._q: queue.Queue[tuple[int, memoryview | int | None, Callable[[], None] | None] | None] = \
            queue.Queue(maxsize=depth)
        self._closed = False
        self._abort = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="dl-sha256")
        self._thread.start()

    def offer(self, offset: int, data: memoryview, release: Callable[[], None]) -> bool:
        """Queue ``data`` (at ``offset``, already written) if it extends the queued prefix.

        True means the hash thread now owns the buffer and calls ``release`` when done.
        """
        if offset != self.queued or self._closed:  # unlocked peek; re-checked below
            return False
        with self._order:
            if offset != self.queued or self._closed:
                return False
            self.queued = offset + len(data)
            self._q.put((offset, data, release))
        return True

    def catch_up(self, frontier: int, block: bool = False) -> None:
        """Queue a read-back of ``[queued, frontier)`` (bytes already written by any stream)."""
        with self._order:
            start = self.queued
            if start >= frontier or self._closed:
                return
            try:
                self._q.put((start, frontier - start, None), block=block)
            except queue.Full:
                return
            self.queued = frontier

    def reset(self) -> None:
        """Start over from byte 0 (a server without Range forced a restart)."""
        with self._order:
            self.queued = 0
            self._q.put((-1, None, None))

    def finish(self, size: int) -> str:
        """Hash up to ``size`` and return the hex digest."""
        self.catch_up(size, block=True)
        self._shutdown(abort=False)
        if self.error is not None:
            raise self.error
        if self.upto != size:
            raise DownloadError(f"hashed {self.upto} of {size} bytes")
        return self.h.hexdigest()

    def close(self) -> None:
        """Stop the hash thread (pending buffers are released, not hashed); idempotent."""
        self._shutdown(abort=True)

    def _shutdown(self, abort: bool) -> None:
        with self._order:
            if abort:
                self._abort = True
            if not self._closed:
                self._closed = True
                self._q.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            offset, data, release = item
            try:
                if self.error is not None or self._abort:
                    continue
                if offset < 0:
                    self.h, self.upto = hashlib.sha256(), 0
                elif isinstance(data, memoryview):
                    if offset == self.upto:
                        self.h.update(data)
                        self.upto = offset + len(data)
                elif isinstance(data, int):
                    self._read_back(offset, data)
            except BaseException as exc:  # noqa: BLE001 - reported by finish()
                self.error = exc
            finally:
                if release is not None:
                    release()

    def _read_back(self, start: int, n: int) -> None:
        if start != self.upto:
            raise DownloadError(f"hash read-back at {start}, expected {self.upto}")
        end = start + n
        pos = start
        buf = bytearray(HASH_READ)
        view = memoryview(buf)
        while pos < end:
            if self._abort:
                return
            want = min(HASH_READ, end - pos)
            got = os.preadv(self.fd, [view[:want]], pos)
            if got <= 0:
                raise DownloadError("partial file shrank while hashing")
            self.h.update(view[:got])
            pos += got
            self.upto = pos


def _release_after_two(release: Callable[[], None]) -> Callable[[], None]:
    """A callback that calls ``release`` on its second call (writer and hasher both done)."""
    left = [2]
    lock = threading.Lock()

    def once_both() -> None:
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            release()

    return once_both


class _WriteBehind:
    """Writes one stream's filled buffers in file order and moves ``seg.pos`` (then calls
    ``done(bytes)``); hands each buffer to the hasher as it is submitted.

    The hash thread reads a buffer while it is being written, and the buffer goes back to
    the pool when both are done: its turn-around is the slower of the two, not their sum.
    With ``O_DIRECT`` a write waits for the device; done on the stream's thread, the
    socket would sit idle meanwhile, so those writes run on :data:`WRITERS` threads of
    their own (two requests in flight keep a disk busier than one), each taking the next
    run of contiguous queued buffers as one vectored write; the download then moves at
    the slowest of network, disk and sha256, not at their sum.  Batches are numbered as
    they are taken and counted in that order, so ``seg.pos`` only covers bytes with none
    missing before them.  Through the page cache a write is a memory copy and runs
    inline.  A failed write stops the writing: later buffers are released unwritten, and
    :meth:`submit` and :meth:`finish` raise the error.
    """

    def __init__(self, writer: PartWriter, seg: Segment, pool: _BufferPool, hasher: _Hasher | None,
                 done: Callable[[int], None]) -> None:
        self.writer = writer
        self.seg = seg
        self.pool = pool
        self.hasher = hasher
        self.done = done
        self.error: BaseException | None = None
        self._q: queue.SimpleQueue[_Write | None] | None = None
        self._threads: list[threading.Thread] = []
        self._take = threading.Lock()  # one writer at a time takes a batch: numbers follow the file
        self._held: list[_Write | None] = []  # taken from the queue, not in a batch yet
        self._taken = 0  # batches numbered so far
        self._count = threading.Lock()
        self._landed: dict[int, list[_Write]] = {}  # written, waiting for an earlier batch
        self._counted = 0  # the next batch number to count
        if writer.direct:
            self._q = queue.SimpleQueue()
            self._threads = [threading.Thread(target=self._run, daemon=True, name=f"dl-write-{i}")
                             for i in range(WRITERS)]
            for t in self._threads:
                t.start()

    def hand_over(self, buf: memoryview, pos: int, k: int, fill: int) -> tuple[memoryview, int]:
        """Submit ``buf[:k]`` (at file offset ``pos``); the ``fill - k`` bytes after it move
        to a fresh buffer, returned with their count."""
        # Waits without giving up on a pause: the writer and the hash thread free a buffer
        # within milliseconds, and a received byte is never dropped unwritten.
        nxt = self.pool.take()
        rest = fill - k
        if rest:
            nxt[:rest] = buf[k:fill]
        try:
            self.submit(buf, pos, k)
        except BaseException:
            self.pool.give(nxt)
            raise
        return nxt, rest

    def submit(self, buf: memoryview, pos: int, k: int) -> None:
        """Write ``buf[:k]`` at ``pos`` (now, or queued); the buffer is no longer the caller's."""
        if self.error is not None:
            self.pool.give(buf)
            raise self.error
        release = _release_after_two(lambda: self.pool.give(buf))
        if self.hasher is None or not self.hasher.offer(pos, buf[:k], release):
            release()  # no hash of these bytes from memory (a read-back covers them)
        item = _Write(buf[:k], pos, release)
        if self._q is not None:
            self._q.put(item)
            return
        number = self._taken  # inline: one thread, batches of one
        self._taken += 1
        self._write_and_land(number, [item])
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        """Wait for the queued writes; raise the error of a failed one."""
        if self._q is not None:
            for _ in self._threads:
                self._q.put(None)
            for t in self._threads:
                t.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        """A writer thread: take the next batch, write it, count it (in batch order)."""
        while True:
            taken = self._next_batch()
            if taken is None:
                return
            self._write_and_land(*taken)

    def _write_and_land(self, number: int, batch: list[_Write]) -> None:
        """Write ``batch`` unless an earlier write failed (keeping the first error), then land it."""
        if self.error is None:
            try:
                self.writer.write_many([w.data for w in batch], batch[0].pos)
            except BaseException as exc:  # noqa: BLE001 - raised by submit() and finish()
                if self.error is None:
                    self.error = exc
        self._land(number, batch)

    def _next_batch(self) -> tuple[int, list[_Write]] | None:
        """The next run of contiguous queued buffers (up to WRITE_BATCH bytes), numbered."""
        assert self._q is not None
        with self._take:
            item = self._held.pop() if self._held else self._q.get()
            if item is None:
                return None
            batch = [item]
            size = len(item.data)
            while size < WRITE_BATCH:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None or nxt.pos != batch[-1].pos + len(batch[-1].data):
                    self._held.append(nxt)  # an end, or not contiguous: the next batch
                    break
                batch.append(nxt)
                size += len(nxt.data)
            number = self._taken
            self._taken += 1
            return number, batch

    def _land(self, number: int, batch: list[_Write]) -> None:
        """Count written batches in number order; after an error, only release buffers."""
        with self._count:
            self._landed[number] = batch
            while self._counted in self._landed:
                for w in self._landed.pop(self._counted):
                    if self.error is None:
                        self.seg.pos = w.pos + len(w.data)
                        self.done(len(w.data))
                    w.release()
                self._counted += 1


@dataclass
class _Write:
    """One buffer's bytes queued for writing at ``pos``; ``release`` once written (or dropped)."""

    data: memoryview
    pos: int
    release: Callable[[], None]


class _SplitWatch:
    """The one-shot rate check of an adaptive download: after ``after`` seconds of body
    bytes, is the single stream slower than ``below`` bytes/s (and not held back by our
    own ``limit_rate``, which more connections would not beat)?"""

    def __init__(self, after: float, below: int, cap: int | None) -> None:
        self.after = after
        self.below = below
        self.cap = cap
        self.t0: float | None = None
        self.bytes = 0
        self.decided = False
        self.lock = threading.Lock()

    def observe(self, n: int) -> bool:
        """Count ``n`` more bytes (the clock starts at the first chunk); True once, when a split is due."""
        with self.lock:
            if self.decided:
                return False
            now = time.monotonic()
            if self.t0 is None:
                self.t0 = now
                return False
            self.bytes += n
            elapsed = now - self.t0
            if elapsed < self.after:
                return False
            self.decided = True
            rate = self.bytes / elapsed
            if self.cap is not None and rate >= 0.8 * self.cap:
                return False
            return rate < self.below


class _BufferPool:
    """A worker's few reusable read buffers; a buffer comes back once written (and hashed)."""

    def __init__(self, size: int, count: int = 4) -> None:
        self.size = -(-size // ALIGN) * ALIGN  # whole blocks: a full buffer is written directly
        self._free: queue.SimpleQueue[memoryview] = queue.SimpleQueue()
        for _ in range(count):
            self._free.put(aligned_buffer(self.size))

    def take(self, halt: threading.Event | None = None) -> memoryview:
        """A free buffer; waits for one (giving up with Interrupted once ``halt`` is set)."""
        if halt is None:
            return self._free.get()
        while True:
            try:
                return self._free.get(timeout=0.1)
            except queue.Empty:
                if halt.is_set():
                    raise Interrupted() from None

    def give(self, buf: memoryview) -> None:
        self._free.put(buf)


def _reader(resp: requests.Response) -> Callable[[memoryview], int]:
    """A ``readinto`` for the body (see :class:`_DirectReader`), else urllib3's decoding ``read1``."""
    direct = _DirectReader.for_response(resp)
    if direct is not None:
        return direct
    raw = resp.raw

    def slow(view: memoryview) -> int:
        data = raw.read1(len(view))
        view[:len(data)] = data
        return len(data)

    return slow


class _DirectReader:
    """Body bytes straight from the socket's buffered reader into our buffer.

    For an identity, non-chunked body, one ``readinto1`` (at most one ``recv``) per call:
    no bytes object per read and no copy, unlike urllib3's ``read1``.  ``readinto1`` and not
    ``readinto`` because the latter loops until the buffer is full and loses what it had
    when the connection then resets: a resume must start at the last byte received.  The
    http.client response's remaining length is kept exactly as its own ``readinto`` keeps
    it, so keep-alive and ``isclosed()`` behave as usual.
    """

    def __init__(self, hr: Any) -> None:
        self.hr = hr

    @classmethod
    def for_response(cls, resp: requests.Response) -> _DirectReader | None:
        enc = (resp.headers.get("Content-Encoding") or "identity").strip().lower()
        hr = getattr(resp.raw, "_fp", None)
        fp = getattr(hr, "fp", None)
        if (enc != "identity" or fp is None or not hasattr(fp, "readinto1") or getattr(hr, "chunked", True)
                or not hasattr(hr, "_close_conn") or getattr(resp.raw, "_decoded_buffer", None)):
            return None
        return cls(hr)

    def __call__(self, view: memoryview) -> int:
        hr = self.hr
        fp = hr.fp
        if fp is None:
            return 0
        if hr.length is not None and len(view) > hr.length:
            view = view[:hr.length]
        if not len(view):
            return 0
        n = fp.readinto1(view)
        if not n:
            hr._close_conn()
        elif hr.length is not None:
            hr.length -= n
            if not hr.length:
                hr._close_conn()
        return int(n)


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
        split_below: int | None = SPLIT_BELOW,
        split_after: float = SPLIT_AFTER,
        adaptive_min_size: int = ADAPTIVE_MIN_SIZE,
        direct_io: bool = True,
        quiet: bool = False,
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
        self.split_below = split_below
        self.split_after = split_after
        self.adaptive_min_size = adaptive_min_size
        self.direct_io = direct_io
        # a quiet queue's downloads log nothing at INFO or above (the seed's ``quiet``)
        self._info = logging.DEBUG if quiet else logging.INFO
        self._warning = logging.DEBUG if quiet else logging.WARNING
        self.split_done = False  # whether an adaptive split happened (tests, logs)
        self.fetched = 0
        self._halt = threading.Event()  # stop or a failed sibling segment
        self._save_lock = threading.Lock()
        self._unsaved = 0
        self._last_save = 0.0
        self._responses: set[requests.Response] = set()
        self._resp_lock = threading.Lock()
        self._fetched_lock = threading.Lock()
        self._watch: _SplitWatch | None = None
        self._state: PartState | None = None  # the transfer's, for a disk-full message

    # --- public ----------------------------------------------------------------------------
    def run(self) -> DownloadResult:
        """Download, verify and rename; returns the result or raises.

        A full disk (``ENOSPC``/``EDQUOT`` at any write) is a :class:`DiskFullError` that
        names the bytes the file needs and the space left.
        """
        try:
            return self._run()
        except OSError as exc:
            if exc.errno not in _DISK_FULL or isinstance(exc, DiskFullError):
                raise
            raise self._disk_full(exc) from None

    def _disk_full(self, exc: OSError) -> DiskFullError:
        state = self._state
        where = self.dest.parent if self.dest is not None else self.destdir
        try:
            free: int | None = shutil.disk_usage(where).free
        except OSError:
            free = None
        name = self.dest.name if self.dest is not None else redact_url(self.url)
        total = state.total_size if state is not None and state.total_size >= 0 else self.expected_size
        needs = f"it needs {total:,} bytes" if total is not None else "its size is unknown"
        if state is not None and total is not None:
            needs += f" ({max(0, total - state.done_bytes):,} not yet written)"
        have = f"{free:,} bytes free" if free is not None else "free space unknown"
        return DiskFullError(f"{name}: no space left on device in {where} ({os.strerror(exc.errno or 0)}): "
                             f"{needs}, {have}; free some space and run it again")

    def _run(self) -> DownloadResult:
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
                log.log(self._info, "%s: server ignored Range or the file changed; restarting from byte 0",
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
            log.log(self._info, "%s: resuming at %d of %d bytes", redact_url(self.url), state.done_bytes,
                    state.total_size)
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
            if self._adaptive_for(total) and first_end < total:
                segments = [Segment(0, first_end, 0), Segment(first_end, total, first_end)]
            else:
                segments = [Segment(0, first_end, 0)] + split_segments(first_end, total, self.min_segment_size)
        else:
            segments = [Segment(0, total if total is not None else -1, 0)]
        return PartState(url=redact_url(self.url), total_size=total if total is not None else -1,
                         etag=resp.headers.get("ETag"), last_modified=resp.headers.get("Last-Modified"),
                         segments=segments)

    def _adaptive_for(self, total: int) -> bool:
        """Whether a ranged file of ``total`` bytes starts on one connection and may split later."""
        return (self.split_below is not None and self.connections > 1 and total >= self.adaptive_min_size
                and total >= 2 * self.min_segment_size)

    def _halt_or_stop(self) -> threading.Event:
        return self._halt

    # --- transfer --------------------------------------------------------------------------
    def _transfer(self, state: PartState, first: requests.Response | None, ranged: bool) -> DownloadResult:
        assert self.dest is not None
        self._state = state
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        ppath, spath = part_path(self.dest), state_path(self.dest)
        resumable = ranged and state.total_size >= 0
        fresh = first is not None
        # O_DIRECT only with a known size: the file is preallocated, so no direct write extends it
        writer = PartWriter(ppath, truncate=fresh, direct=self.direct_io and state.total_size > 0)
        fd = writer.fd
        hasher: _Hasher | None = None
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
            hasher = _Hasher(fd) if self.want_hash else None
            errors: list[BaseException] = []
            segs = state.segments

            pending = [s for s in segs if not s.done or s.end < 0]
            take_lock = threading.Lock()
            threads: list[threading.Thread] = []
            threads_lock = threading.Lock()
            watch: _SplitWatch | None = None
            if (ranged and total is not None and pending and len(pending) <= 2
                    and self._splittable(pending[-1]) and self._adaptive_for(total)):
                watch = _SplitWatch(self.split_after, self.split_below or 0,
                                    self.bucket.rate if self.bucket.limited else None)

            def worker(initial: tuple[Segment, requests.Response] | None) -> None:
                # ``initial``: the probe's open response and the one segment it answers (taken
                # out of ``pending`` before any worker ran).  Popping "the next free piece"
                # instead would race with the other workers: while this one was still
                # allocating its buffers, another could take piece 0, and the probe's bytes
                # (from offset 0) were then streamed into the piece after it.
                box: list[requests.Response | None] = [None]
                own: Segment | None = None
                if initial is not None:
                    own, box[0] = initial
                try:
                    pool = _BufferPool(self.bucket.chunk_size(self.chunk_size), BUFFERS_PER_CONNECTION)
                    while not self._halt.is_set():
                        if own is not None:
                            seg, own = own, None
                        else:
                            with take_lock:
                                if not pending:
                                    return
                                seg = pending.pop(0)
                        self.retry.run(
                            lambda seg=seg: self._fetch(writer, seg, box, state, spath if resumable else None,
                                                        hasher, total, ranged, pool, split),
                            progress=lambda seg=seg: seg.pos, stop=self._halt)
                except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                    errors.append(exc)
                    self._halt.set()
                finally:
                    if box[0] is not None:
                        box[0].close()

            def spawn(n: int, initial: tuple[Segment, requests.Response] | None = None) -> None:
                with threads_lock:
                    for _ in range(n):
                        t = threading.Thread(target=worker, args=(initial,), daemon=True,
                                             name=f"dl-conn-{len(threads)}")
                        initial = None
                        threads.append(t)
                        t.start()

            def split(seg: Segment, n: int, at: int) -> None:
                """Called by the one running stream after each read while ``watch`` is undecided;
                ``at`` is where it reads next (bytes before it may still be in its buffer)."""
                assert watch is not None
                if not watch.observe(n):
                    return
                n = self._split(seg, at, segs, pending, take_lock)
                if n:
                    spawn(n)

            n_workers = 1 if watch is not None else min(self.connections if ranged else 1, len(pending))
            if first is not None and pending and pending[0].start == 0:
                spawn(n_workers, (pending.pop(0), first))  # no worker runs yet: no lock needed
            else:
                if first is not None:
                    first.close()
                spawn(n_workers)
            self._watch = watch
            stop_seen = False
            while True:
                with threads_lock:
                    alive = [t for t in threads if t.is_alive()]
                if not alive:
                    break
                if hasher is not None:
                    hasher.catch_up(self._frontier(segs))
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
                digest = hasher.finish(size)
                if self.expected_sha256 and digest != self.expected_sha256:
                    raise IntegrityError(
                        f"{redact_url(self.url)}: sha256 mismatch: got {digest}, expected {self.expected_sha256}")
            writer.datasync()
        finally:
            if hasher is not None:
                hasher.close()
            writer.close()
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

    def _splittable(self, seg: Segment, at: int | None = None) -> bool:
        return seg.end >= 0 and seg.end - (seg.pos if at is None else at) >= 2 * self.min_segment_size

    def _split(self, seg: Segment, at: int, segs: list[Segment], pending: list[Segment],
               take_lock: threading.Lock) -> int:
        """Split the remaining bytes into pieces for more connections; returns how many to add.

        Runs on the thread streaming ``seg`` (so cutting ``seg.end`` races with no reader),
        which has read up to ``at``: it keeps ``[seg.pos, at)`` and the piece after it.
        Pieces go into ``segs`` in file order (the hash frontier and the sidecar rely on it)
        under the save lock, so a sidecar written at any moment describes every byte once.
        """
        with take_lock, self._save_lock:
            if pending and self._splittable(pending[-1]):  # the big tail not started yet
                big = pending.pop()
                pieces = split_segments(big.pos, big.end, self.min_segment_size)
                idx = next(i for i, s in enumerate(segs) if s is big)
                segs[idx:idx + 1] = [Segment(big.start, pieces[0].end, big.pos)] + pieces[1:] \
                    if big.pos > big.start else pieces
                pending.extend(segs[idx:idx + len(pieces)])
            elif self._splittable(seg, at):  # the running stream keeps one piece
                pieces = split_segments(at, seg.end, self.min_segment_size)
                seg.end = pieces[0].end
                idx = next(i for i, s in enumerate(segs) if s is seg)
                segs[idx + 1:idx + 1] = pieces[1:]
                pending.extend(pieces[1:])
            else:
                return 0
            self.split_done = True
            add = min(self.connections - 1, len(pending))
        log.log(self._info, "%s: one stream is slow; splitting the rest over %d more connections",
                 redact_url(self.url), add)
        return add

    @staticmethod
    def _frontier(segs: list[Segment]) -> int:
        for s in segs:
            if not s.done:
                return s.pos
        return segs[-1].end if segs else 0

    def _fetch(self, writer: PartWriter, seg: Segment, box: list[requests.Response | None], state: PartState,
               spath: Path | None, hasher: _Hasher | None, total: int | None, ranged: bool,
               pool: _BufferPool, split: Callable[[Segment, int, int], None]) -> None:
        """One try at the rest of ``seg``: open (or reuse) a response, stream into the file."""
        if self._halt.is_set():
            raise Interrupted()
        resp = box[0]
        box[0] = None
        if resp is not None and _body_start(resp) != seg.pos:
            # Never stream a response into bytes it does not hold (the worker hands the probe
            # only to its own segment, so this is a safety net, not a path taken).
            log.log(self._warning, "%s: open response starts at byte %d, segment at %d; requesting the segment",
                        redact_url(self.url), _body_start(resp), seg.pos)
            resp.close()
            resp = None
        if resp is None:
            if not ranged and seg.pos > 0:  # no Range: only a restart from zero is correct
                self.on_progress(-seg.pos, total)
                seg.pos = 0
                if hasher is not None:
                    hasher.reset()
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
            self._stream(writer, seg, resp, state, spath, hasher, total, pool, split)
            if seg.end >= 0 and _fully_read(resp):
                resp._content_consumed = True  # keep-alive: hand the connection back to the pool
                resp.raw.release_conn()
        finally:
            with self._resp_lock:
                self._responses.discard(resp)
            resp.close()
            box[0] = None

    def _stream(self, writer: PartWriter, seg: Segment, resp: requests.Response, state: PartState,
                spath: Path | None, hasher: _Hasher | None, total: int | None, pool: _BufferPool,
                split: Callable[[Segment, int, int], None]) -> None:
        """Read into pooled buffers and hand each filled one to a :class:`_WriteBehind`.

        ``pos`` is the file offset of ``buf[0]`` and ``fill`` what the buffer holds;
        ``seg.pos`` counts written bytes only (the sidecar and the hash frontier read it)
        and is moved by the writer.  Whatever ends the stream (its end, a network error, a
        pause), the bytes received are written before it returns, so a resume starts at
        the last byte that arrived.
        """
        readinto = _reader(resp)
        first = seg.pos == 0
        expected_len = None
        cl = resp.headers.get("Content-Length")
        if cl and cl.isdigit():
            expected_len = int(cl)
        received = 0
        watching = self._watch is not None
        wb = _WriteBehind(writer, seg, pool, hasher, lambda k: self._written(k, state, spath, total))
        try:
            buf: memoryview | None = pool.take(self._halt)
            pos, fill = seg.pos, 0
            flushed_at = time.monotonic()
            try:
                while seg.end < 0 or pos + fill < seg.end:
                    if self._halt.is_set():
                        raise Interrupted()
                    room = pool.size - fill
                    if writer.direct and pos % ALIGN:  # a partial first block: read to its boundary
                        room = min(room, ALIGN - pos % ALIGN - fill)
                    if seg.end >= 0:
                        room = min(room, seg.end - pos - fill)
                    assert buf is not None
                    try:
                        n = readinto(buf[fill:fill + room])
                    except Exception as exc:  # urllib3 ProtocolError/ReadTimeoutError, OSError
                        if self._halt.is_set():
                            raise Interrupted() from None
                        raise network_error(exc, self.url, self.token) from None
                    if not n:
                        break
                    if first:
                        first = False
                        if looks_like_html(None, bytes(buf[:min(n, 512)])):
                            raise html_error(self.url, self.token)  # not model bytes: none written
                    fill += n
                    received += n
                    if self.bucket.limited:
                        self.bucket.consume(n, self._halt)
                    if watching:
                        split(seg, n, pos + fill)
                        watching = self._watch is not None and not self._watch.decided
                    if (not writer.direct or fill == pool.size or pos % ALIGN
                            or time.monotonic() - flushed_at >= FLUSH_EVERY_SECONDS):
                        k = fill if not writer.direct or pos % ALIGN else fill - fill % ALIGN
                        if k:
                            buf, fill = wb.hand_over(buf, pos, k, fill)
                            pos += k
                            flushed_at = time.monotonic()
            finally:
                if buf is not None and fill:
                    wb.submit(buf, pos, fill)
                elif buf is not None:
                    pool.give(buf)
        finally:
            wb.finish()
        if seg.end >= 0 and seg.pos < seg.end:
            if self._halt.is_set():
                raise Interrupted()
            raise TransientDownloadError(
                f"{redact_url(self.url)}: connection closed at byte {seg.pos} of a range ending at "
                f"{seg.end} (body shorter than announced)")
        if seg.end < 0 and expected_len is not None and received < expected_len:
            raise TransientDownloadError(
                f"{redact_url(self.url)}: body shorter than Content-Length ({received} < {expected_len})")

    def _written(self, k: int, state: PartState, spath: Path | None, total: int | None) -> None:
        """Bookkeeping after ``k`` more bytes reached the file (on the writing thread)."""
        with self._fetched_lock:
            self.fetched += k
        self.on_progress(k, total)
        if spath is not None:
            self._maybe_save(state, spath, k)

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
                    log.log(self._warning, "cannot save resume state %s: %s", spath, exc)


def _fully_read(resp: requests.Response) -> bool:
    fp = getattr(resp.raw, "_fp", None)
    return fp is None or bool(getattr(fp, "isclosed", lambda: False)())


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
