"""DownloadQueueService: a pool of worker threads taking jobs by priority.

The queue owns job state: every status change happens under its lock and is followed by
one event: the job's handlers and then the queue's are called with the job itself
(``handler(job)``, as the seed's ``Callable[[DownloadJobBase], None]``), after its fields
were updated.  A handler that raises is logged with its traceback and otherwise ignored,
so a broken progress bar cannot break a download.  Progress events (status ``running``)
come about every 1% of the bytes, or every half second when the size is unknown; they are
delivered while the job's counters are held still, so ``job.bytes``, ``job.total_bytes``
and (multi-file jobs) each ``job.parts[i]`` agree with one another.  A job's status events
reach its handlers in the order the statuses were taken.

Defaults mirror :class:`reconciler.settings.AppSettings` (max_parallel_dl,
connections_per_file, min_segment_size, limit_rate, download_retries, download_timeout,
direct_io);
the queue takes plain arguments so it stays usable as a library without settings.
"""

from __future__ import annotations

import itertools
import logging
import queue as _queue
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional, Union

import requests
from pydantic.networks import AnyUrl

from reconciler.errors import DownloadError, UnknownJobIDException

from .http import make_session, redact_url, scrub
from .jobs import (
    DownloadEventHandler,
    DownloadJobBase,
    DownloadJobPath,
    DownloadJobRemoteSource,
    DownloadJobStatus,
    DownloadJobURL,
    DownloadPart,
    MultiFileDownloadJob,
)
from .ratelimit import TokenBucket
from .retry import Interrupted, RetryPolicy
from .segments import (
    ADAPTIVE_MIN_SIZE,
    SPLIT_AFTER,
    SPLIT_BELOW,
    FileDownload,
    part_path,
    remove_partials,
)

log = logging.getLogger(__name__)

EVENT_PREFIX = "download_"
"""Event names, where a status is shown as one: ``EVENT_PREFIX + job.status.value``."""
PARALLEL_PARTS = 3
"""Parts of one multi-file job downloading at once.  They share the job's
``connections_per_file`` (each gets its share), so a job opens no more connections than
before; side by side, one file's fixed costs (request, fsync, rename) and the hash thread's
turn overlap another's transfer."""
_ACTIVE = (DownloadJobStatus.ENQUEUED, DownloadJobStatus.RUNNING)


class _Progress:
    """Turns byte deltas into ``running`` events about every 1% (or 0.5 s without a size).

    One per job run: the parts of a multi-file job that download side by side report
    through :meth:`for_part`, under this one lock, so the job's sums and its event marks
    stay consistent.
    """

    def __init__(self, job: DownloadJobRemoteSource, emit: Callable[[], None],
                 part: DownloadPart | None = None) -> None:
        self.job = job
        self.emit = emit
        self.part = part
        self.lock = threading.Lock()
        self.next_mark = 0
        self.last_time = 0.0

    def __call__(self, delta: int, total: int | None) -> None:
        self.add(delta, total, self.part)

    def for_part(self, part: DownloadPart) -> Callable[[int, int | None], None]:
        """The progress callback of one part."""
        return lambda delta, total: self.add(delta, total, part)

    def add(self, delta: int, total: int | None, part: DownloadPart | None) -> None:
        with self.lock:
            job = self.job
            job.bytes += delta
            if part is not None:
                part.bytes += delta
                if total is not None and part.total_bytes != total:
                    part.total_bytes = total
                    parts = getattr(job, "parts", [])
                    job.total_bytes = sum(p.expected_size if p.expected_size is not None else p.total_bytes
                                          for p in parts)
            elif total is not None:
                job.total_bytes = total
            now = time.monotonic()
            if job.total_bytes > 0:
                step = max(1, job.total_bytes // 100)
                if job.bytes >= self.next_mark or job.bytes >= job.total_bytes:
                    if job.bytes >= job.total_bytes and self.next_mark > job.total_bytes:
                        return
                    self.next_mark = (job.bytes // step + 1) * step
                    self.emit()
            elif now - self.last_time >= 0.5:
                self.last_time = now
                self.emit()


class _Downloads:
    """The FileDownloads a multi-file job has running at once (for :meth:`cancel_job`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: list[FileDownload] = []

    def add(self, dl: FileDownload) -> None:
        with self._lock:
            self._running.append(dl)

    def discard(self, dl: FileDownload) -> None:
        with self._lock:
            if dl in self._running:
                self._running.remove(dl)

    def abort_connections(self) -> None:
        with self._lock:
            running = list(self._running)
        for dl in running:
            dl.abort_connections()


class DownloadQueueService:
    """Parallel, resumable, verified downloads with events; see the module docstring.

    The first four arguments are the seed's, in its order: ``event_handlers`` (run for
    every job, after the job's own), ``max_parallel_dl``, ``requests_session`` and
    ``quiet`` (no log messages at INFO or above, except a handler's failure).
    """

    def __init__(
        self,
        event_handlers: Optional[list[DownloadEventHandler]] = None,
        max_parallel_dl: int = 5,
        requests_session: Optional[requests.Session] = None,
        quiet: bool = False,
        *,
        connections_per_file: int = 8,
        min_segment_size: int = 16 * 2**20,
        limit_rate: Optional[int] = None,
        download_retries: int = 5,
        download_timeout: float = 30.0,
        chunk_size: int = 2**20,
        compute_sha256: bool = True,
        retry_policy: Optional[RetryPolicy] = None,
        split_below: Optional[int] = SPLIT_BELOW,
        split_after: float = SPLIT_AFTER,
        adaptive_min_size: int = ADAPTIVE_MIN_SIZE,
        parallel_parts: int = PARALLEL_PARTS,
        direct_io: bool = True,
    ) -> None:
        if max_parallel_dl < 1:
            raise ValueError("max_parallel_dl must be >= 1")
        self.max_parallel_dl = max_parallel_dl
        self.connections_per_file = max(1, connections_per_file)
        self.min_segment_size = max(1, min_segment_size)
        self.chunk_size = chunk_size
        self.download_timeout = download_timeout
        self.compute_sha256 = compute_sha256
        # adaptive segmentation (see segments.FileDownload): None for split_below always splits up front
        self.split_below = split_below
        self.split_after = split_after
        self.adaptive_min_size = adaptive_min_size
        self.parallel_parts = max(1, parallel_parts)
        self.direct_io = direct_io  # O_DIRECT writes where the filesystem has them (download/writer.py)
        self.quiet = quiet
        self._session = requests_session or make_session(max_parallel_dl * self.connections_per_file + 4)
        self._handlers: list[DownloadEventHandler] = list(event_handlers or [])
        self._bucket = TokenBucket(limit_rate)
        self._retry = retry_policy or RetryPolicy(attempts=download_retries)
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._jobs: dict[int, DownloadJobBase] = {}
        self._ids = itertools.count()
        self._seq = itertools.count()
        self._dequeued = itertools.count()
        self._pq: _queue.PriorityQueue[tuple[int, int, int, Any]] = _queue.PriorityQueue()
        self._workers: list[threading.Thread] = []
        self._running = False
        self._active_downloads: dict[int, FileDownload | _Downloads] = {}
        self.start()

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads (idempotent; the constructor calls it)."""
        with self._lock:
            if self._running:
                return
            self._running = True
            self._workers = [
                threading.Thread(target=self._worker, name=f"download-worker-{i}", daemon=True)
                for i in range(self.max_parallel_dl)
            ]
            for t in self._workers:
                t.start()

    def stop(self) -> None:
        """Pause every unfinished job (keeping partial files to resume) and end the workers."""
        with self._lock:
            if not self._running:
                return
            self._running = False
        self.pause_all_jobs()  # not under the queue's lock: a job's events lock comes first
        for _ in self._workers:
            self._pq.put((-(2**31), next(self._seq), 0, None))
        for t in self._workers:
            t.join(timeout=self.download_timeout + 5)
        self._workers = []

    # --- creating and submitting ------------------------------------------------------------
    def create_download_job(
        self,
        source: Union[str, Path, AnyUrl],
        destdir: Union[str, Path],
        filename: Optional[Union[str, Path]] = None,
        start: bool = True,
        priority: int = 10,
        access_token: Optional[str] = None,
        event_handlers: Optional[list[DownloadEventHandler]] = None,
        *,
        expected_size: Optional[int] = None,
        sha256: Optional[str] = None,
        preserve_partial_downloads: bool = False,
    ) -> DownloadJobBase:
        """Make the right job for ``source`` (http(s) URL, as text or ``AnyHttpUrl``, or a
        local path) and submit it.

        With ``filename`` the file lands at ``destdir/filename``; without, the name comes
        from the server (Content-Disposition, else the URL), sanitised.
        """
        destdir = Path(destdir)
        destination = destdir / filename if filename else destdir
        handlers = list(event_handlers or [])
        text = str(source)
        job: DownloadJobBase
        if isinstance(source, AnyUrl) or (isinstance(source, str)
                                          and text.split(":", 1)[0].lower() in ("http", "https")):
            job = DownloadJobURL(source=text, destination=destination, priority=priority,
                                 access_token=access_token, event_handlers=handlers,
                                 expected_size=expected_size, sha256=sha256,
                                 preserve_partial_downloads=preserve_partial_downloads)
        else:
            job = DownloadJobPath(source=Path(source), destination=destination, priority=priority,
                                  event_handlers=handlers,
                                  preserve_partial_downloads=preserve_partial_downloads)
        job._dest_is_dir = filename is None
        self.submit_download_job(job, start=start)
        return job

    def submit_download_job(self, job: DownloadJobBase, start: bool = True) -> None:
        """Register ``job`` with this queue (assigning its id) and enqueue it if ``start``."""
        with self._lock:
            if job._owner is not None and job._owner is not self:
                raise ValueError("job belongs to another queue")
            if job._owner is None:
                job.id = next(self._ids)
                job._owner = self
                self._jobs[job.id] = job
                if job._dest_is_dir is None:
                    dest = Path(job.destination)
                    job._dest_is_dir = (isinstance(job, MultiFileDownloadJob) or dest.is_dir()
                                        or str(job.destination).endswith(("/", "\\")))
        if start:
            self.start_job(job)

    # --- control ----------------------------------------------------------------------------
    def _own(self, job: DownloadJobBase) -> DownloadJobBase:
        if self._jobs.get(job.id) is not job:
            raise UnknownJobIDException(f"job {job.id} was not submitted to this queue")
        return job

    def start_job(self, job: DownloadJobBase) -> None:
        """Enqueue an idle or paused job; a paused one resumes where it stopped."""
        with job._events:
            with self._lock:
                self._own(job)
                if job.status == DownloadJobStatus.RUNNING and job._stop_reason == "pause":
                    job._resume_requested = True
                    return
                if job.status not in (DownloadJobStatus.IDLE, DownloadJobStatus.PAUSED):
                    return
                first = not job._enqueued_once
                entry = self._enqueue(job, put=False)
            if first:  # delivered before a worker can see the job, so 'enqueued' precedes 'running'
                self._emit(job)
            self._pq.put(entry)

    def _enqueue(self, job: DownloadJobBase, put: bool = True) -> tuple[int, int, int, Any]:
        job.status = DownloadJobStatus.ENQUEUED
        job._enqueued_once = True
        job._stop = threading.Event()
        job._stop_reason = None
        job._resume_requested = False
        job._queue_token += 1
        entry = (job.priority, next(self._seq), job._queue_token, job)
        if put:
            self._pq.put(entry)
        self._changed.notify_all()
        return entry

    def pause_job(self, job: DownloadJobBase) -> None:
        """Pause an enqueued or running job; partial files stay for :meth:`start_job`."""
        with job._events:
            emit = False
            with self._lock:
                self._own(job)
                if job.status == DownloadJobStatus.ENQUEUED:
                    job.status = DownloadJobStatus.PAUSED
                    job._queue_token += 1
                    emit = True
                    self._changed.notify_all()
                elif job.status == DownloadJobStatus.RUNNING:
                    job._stop_reason = "pause"
                    job._resume_requested = False
                    job._stop.set()
            if emit:
                self._emit(job)

    def cancel_job(self, job: DownloadJobBase) -> None:
        """Cancel a job that has not finished; its partial files are removed (unless preserved)."""
        with self._lock:
            self._own(job)
            if job.status == DownloadJobStatus.RUNNING:  # its thread ends it (and sends the event)
                self._stop_running(job)
                return
        with job._events:
            with self._lock:
                if job.terminal:
                    return
                if job.status == DownloadJobStatus.RUNNING:  # a worker took it meanwhile
                    self._stop_running(job)
                    return
                job.status = DownloadJobStatus.CANCELLED
                job.job_ended = time.time()
                job._queue_token += 1
                self._changed.notify_all()
            self._cleanup(job)
            self._emit(job)
            self._settle(job)

    def _stop_running(self, job: DownloadJobBase) -> None:
        """Tell a running job to cancel and drop its connections (under the queue's lock)."""
        job._stop_reason = "cancel"
        job._resume_requested = False
        job._stop.set()
        dl = self._active_downloads.get(job.id)
        if dl is not None:
            dl.abort_connections()

    def start_all_jobs(self) -> None:
        """Start every idle or paused job."""
        for job in self.list_jobs():
            if job.status in (DownloadJobStatus.IDLE, DownloadJobStatus.PAUSED):
                self.start_job(job)

    def pause_all_jobs(self) -> None:
        """Pause every enqueued or running job."""
        for job in self.list_jobs():
            if job.status in _ACTIVE:
                self.pause_job(job)

    def cancel_all_jobs(self) -> None:
        """Cancel every job that has not finished."""
        for job in self.list_jobs():
            if not job.terminal:
                self.cancel_job(job)

    # --- inspection ---------------------------------------------------------------------------
    def list_jobs(self) -> list[DownloadJobBase]:
        """Every job this queue knows, in submission order."""
        with self._lock:
            return list(self._jobs.values())

    def id_to_job(self, id: int) -> DownloadJobBase:
        """The job with this id, or :class:`UnknownJobIDException`."""
        with self._lock:
            try:
                return self._jobs[id]
            except KeyError:
                raise UnknownJobIDException(f"no download job with id {id}") from None

    def prune_jobs(self) -> None:
        """Forget completed, errored and cancelled jobs."""
        with self._lock:
            for jid in [j.id for j in self._jobs.values() if j.terminal]:
                del self._jobs[jid]

    def join(self, timeout: Optional[float] = None) -> None:
        """Block until no job is enqueued or running (paused and idle jobs do not count)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while any(j.status in _ACTIVE or (j.terminal and not j._settled) for j in self._jobs.values()):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError("download queue still busy")
                self._changed.wait(left if left is not None else 1.0)

    def wait_for_job(self, job: DownloadJobBase, timeout: Optional[float] = None) -> DownloadJobBase:
        """Block until ``job`` is completed, errored or cancelled; TimeoutError after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            self._own(job)
            while not (job.terminal and job._settled):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise TimeoutError(f"download job {job.id} did not finish in {timeout} s")
                self._changed.wait(left if left is not None else 1.0)
        return job

    # --- events -------------------------------------------------------------------------------
    def _emit(self, job: DownloadJobBase) -> None:
        """Call the job's handlers, then the queue's, with the job; log what one raises."""
        handlers = list(job.event_handlers) + (self._handlers if job._queue_handlers else [])
        for handler in handlers:
            try:
                handler(job)
            except Exception:  # noqa: BLE001 - a handler must not break the download
                log.exception("download event handler %r failed on job %d (%s)", handler, job.id,
                              job.status.value)

    # --- workers -----------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            _prio, _seq, token, job = self._pq.get()
            if job is None:
                return
            with job._events:
                with self._lock:
                    if job.status != DownloadJobStatus.ENQUEUED or job._queue_token != token:
                        continue
                    job.status = DownloadJobStatus.RUNNING
                    job.job_started = time.time()
                    job.job_sequence = next(self._dequeued)
                    job.error = None
                if not self.quiet:
                    log.info("download %d started: %s", job.id, job.shown_source())
                self._emit(job)
            self._run(job)

    def _run(self, job: DownloadJobBase) -> None:
        outcome: DownloadJobStatus
        try:
            if isinstance(job, MultiFileDownloadJob):
                self._run_multi(job)
            elif isinstance(job, DownloadJobRemoteSource):
                self._run_remote(job)
            elif isinstance(job, DownloadJobPath):
                self._run_path(job)
            else:
                raise TypeError(f"unsupported job type {type(job).__name__}")
            outcome = DownloadJobStatus.COMPLETED
        except Interrupted:
            outcome = (DownloadJobStatus.CANCELLED if job._stop_reason == "cancel"
                       else DownloadJobStatus.PAUSED)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the job's error
            if job._stop.is_set() and job._stop_reason == "cancel":
                outcome = DownloadJobStatus.CANCELLED
            else:
                outcome = DownloadJobStatus.ERROR
                token = getattr(job, "access_token", None)
                if token and token in str(exc):  # belt and braces: never a token in job.error
                    exc = DownloadError(scrub(str(exc), [token]))
                job.error = exc
        finally:
            with self._lock:
                self._active_downloads.pop(job.id, None)
        if outcome in (DownloadJobStatus.ERROR, DownloadJobStatus.CANCELLED):
            self._cleanup(job)
        with job._events:
            requeue = False
            with self._lock:
                if outcome == DownloadJobStatus.PAUSED and job._resume_requested:
                    requeue = True
                    self._enqueue(job)
                else:
                    job.status = outcome
                    if outcome.terminal:
                        job.job_ended = time.time()
                self._changed.notify_all()
            if not self.quiet:
                if outcome == DownloadJobStatus.ERROR:
                    log.error("download %d failed: %s", job.id, job.error)
                else:
                    log.info("download %d %s: %s", job.id, outcome.value, job.shown_source())
            if not requeue:
                self._emit(job)
                if outcome.terminal:
                    self._settle(job)

    def _settle(self, job: DownloadJobBase) -> None:
        """Wake waiters only after the terminal event's handlers ran (they may move the file)."""
        with self._lock:
            job._settled = True
            self._changed.notify_all()

    def _cleanup(self, job: DownloadJobBase) -> None:
        """Remove ``.part`` files and sidecars this job made (cancel, or error without preserve)."""
        if job.preserve_partial_downloads:
            return
        for dest in list(job._partials):
            remove_partials(dest)
        job._partials.clear()

    def _make_download(self, job: DownloadJobRemoteSource, url: str, dest: Optional[Path], destdir: Path,
                       progress: Callable[[int, Optional[int]], None], expected_size: Optional[int],
                       expected_sha256: Optional[str], *, connections: Optional[int] = None,
                       stop: Optional[threading.Event] = None) -> FileDownload:
        def on_dest(path: Path) -> None:
            job._partials.add(path)

        if dest is not None:
            job._partials.add(dest)
        return FileDownload(
            session=self._session, url=url, dest=dest, destdir=destdir, token=job.access_token,
            connections=connections or self.connections_per_file, min_segment_size=self.min_segment_size,
            chunk_size=self.chunk_size, bucket=self._bucket, retry=self._retry,
            timeout=self.download_timeout, stop=stop or job._stop, expected_size=expected_size,
            expected_sha256=expected_sha256, compute_sha256=self.compute_sha256,
            on_progress=progress, on_dest=on_dest, split_below=self.split_below,
            split_after=self.split_after, adaptive_min_size=self.adaptive_min_size,
            direct_io=self.direct_io, quiet=self.quiet,
        )

    def _run_remote(self, job: DownloadJobRemoteSource) -> None:
        dest_is_dir = bool(job._dest_is_dir)
        destdir = Path(job.destination) if dest_is_dir else Path(job.destination).parent
        dest = None if dest_is_dir else Path(job.destination)
        if job.download_path is not None and job.download_path.parent == destdir:
            dest = job.download_path  # a resumed job keeps the name it got
        job.bytes = 0
        progress = _Progress(job, lambda: self._emit(job))
        dl = self._make_download(job, job.source, dest, destdir, progress, job.expected_size, job.sha256)

        def on_dest(path: Path) -> None:
            job._partials.add(path)
            job.download_path = path

        dl.on_dest = on_dest
        if dest is not None:
            job.download_path = dest
        with self._lock:
            self._active_downloads[job.id] = dl
        result = dl.run()
        job.download_path = result.path
        job.actual_sha256 = result.sha256
        job.total_bytes = result.size
        job.bytes = result.size
        job._partials.discard(result.path)

    def _run_multi(self, job: MultiFileDownloadJob) -> None:
        """Download the parts not yet done, up to :attr:`parallel_parts` at a time, in order.

        Pause and cancel stop every running part at once.  A failed part starts no new
        ones, but lets those already running finish (their files stay for the next try),
        then the job fails with that part's error.
        """
        root = Path(job.destination)
        job.download_path = root
        job.bytes = sum(p.bytes for p in job.parts if p.status == DownloadJobStatus.COMPLETED)
        pending = [p for p in job.parts if not (p.status == DownloadJobStatus.COMPLETED and p.download_path
                                                and p.download_path.exists())]
        width = max(1, min(self.parallel_parts, self.connections_per_file, len(pending)))
        connections = max(1, self.connections_per_file // width)
        progress = _Progress(job, lambda: self._emit(job))
        running = _Downloads()
        with self._lock:
            self._active_downloads[job.id] = running
        # one part at a time runs on this thread and stops on job._stop directly; side by side,
        # the parts stop on `halt`, which this thread sets when job._stop is set
        halt = job._stop if width == 1 else threading.Event()
        take_lock = threading.Lock()
        failures: list[BaseException] = []

        def take() -> Optional[DownloadPart]:
            with take_lock:
                if failures or halt.is_set() or not pending:
                    return None
                return pending.pop(0)

        def work() -> None:
            while (part := take()) is not None:
                try:
                    self._run_part(job, part, root, progress, running, connections, halt)
                except BaseException as exc:  # noqa: BLE001 - handed to the job's thread
                    with take_lock:
                        failures.append(exc)
                    return

        if width == 1:
            work()
        else:
            threads = [threading.Thread(target=work, daemon=True, name=f"dl-part-{job.id}-{i}") for i in range(width)]
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.05)
                    if job._stop.is_set():
                        halt.set()
        if job._stop.is_set() and (not failures or all(isinstance(e, Interrupted) for e in failures)):
            raise Interrupted()
        real = [e for e in failures if not isinstance(e, Interrupted)]
        if real:
            raise real[0]
        if failures:
            raise failures[0]
        job.bytes = sum(p.total_bytes for p in job.parts)
        job.total_bytes = job.bytes

    def _run_part(self, job: MultiFileDownloadJob, part: DownloadPart, root: Path, progress: _Progress,
                  running: _Downloads, connections: int, stop: threading.Event) -> None:
        """One part of a multi-file job: download, verify, record the result on ``part``."""
        with progress.lock:
            if part.status == DownloadJobStatus.COMPLETED:  # its file vanished: counted in job.bytes
                job.bytes -= part.bytes
            part.status = DownloadJobStatus.RUNNING
            part.bytes = 0
        dest = root / str(part.dest_relpath)
        dl = self._make_download(job, part.url, dest, dest.parent, progress.for_part(part), part.expected_size,
                                 part.expected_sha256, connections=connections, stop=stop)
        running.add(dl)
        try:
            result = dl.run()
        except Interrupted:
            part.status = DownloadJobStatus.PAUSED
            raise
        except Exception as exc:
            part.status = DownloadJobStatus.ERROR
            if hasattr(exc, "add_note"):
                exc.add_note(f"while downloading {part.dest_relpath}")
            raise
        finally:
            running.discard(dl)
        with progress.lock:
            part.status = DownloadJobStatus.COMPLETED
            part.download_path = result.path
            part.actual_sha256 = result.sha256
            part.total_bytes = result.size
            if part.expected_size is None:  # total learnt as we go
                job.total_bytes = max(job.total_bytes, job.bytes)
            job._partials.discard(result.path)

    def _run_path(self, job: DownloadJobPath) -> None:
        src = Path(job.source)
        if not src.exists():
            raise FileNotFoundError(f"{src}: no such file or folder")
        dest = Path(job.destination)
        if job._dest_is_dir or dest.is_dir():
            dest = dest / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        job.download_path = Path(shutil.move(str(src), str(dest)))


def make_parts(items: Sequence[tuple[str, str]]) -> list[DownloadPart]:
    """``[(url, relpath), ...]`` as :class:`DownloadPart` objects (each path checked)."""
    return [DownloadPart(url, rel) for url, rel in items]


__all__ = ["DownloadQueueService", "EVENT_PREFIX", "PARALLEL_PARTS", "make_parts", "part_path", "redact_url"]
