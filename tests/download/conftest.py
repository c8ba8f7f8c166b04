"""Fixtures: a FaultServer (two, for cross-host redirects), a queue, an event recorder."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.download import EVENT_PREFIX, DownloadJobBase, DownloadQueueService, RetryPolicy
from reconciler.events import Event

from .server import FaultServer


class Recorder:
    """A download event handler that keeps a snapshot of the job at each event; thread-safe.

    Handlers are called with the job itself; each call is kept as an :class:`Event` named
    ``download_<status>`` whose payload is ``job.event_payload()`` at that moment.
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, job: DownloadJobBase) -> None:
        event = Event(EVENT_PREFIX + job.status.value, job.event_payload())
        with self.lock:
            self.events.append(event)

    def names(self, job_id: int | None = None) -> list[str]:
        with self.lock:
            return [e.name.removeprefix("download_") for e in self.events
                    if job_id is None or e.payload["job_id"] == job_id]

    def for_job(self, job_id: int) -> list[Event]:
        with self.lock:
            return [e for e in self.events if e.payload["job_id"] == job_id]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def other_server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_queue(recorder: Recorder) -> Iterator:
    """Queues with fast retries and small segments; all stopped at teardown."""
    made: list[DownloadQueueService] = []

    def factory(**kw: object) -> DownloadQueueService:
        kw.setdefault("quiet", True)
        kw.setdefault("min_segment_size", 64 * 1024)
        kw.setdefault("download_timeout", 5.0)
        kw.setdefault("retry_policy", RetryPolicy(attempts=4, backoff_base=0.01, backoff_max=0.05))
        kw.setdefault("event_handlers", [recorder])
        q = DownloadQueueService(**kw)  # type: ignore[arg-type]
        made.append(q)
        return q

    yield factory
    for q in made:
        q.cancel_all_jobs()
        q.stop()


@pytest.fixture
def queue(make_queue) -> DownloadQueueService:
    return make_queue()


def blob(n: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random bytes (not compressible, not all zeros)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:n])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def listing(path: Path) -> list[str]:
    return sorted(os.listdir(path)) if path.exists() else []
