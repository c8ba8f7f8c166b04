"""The seed's "Get on line: The Download Queue" (through "Job control"), run as written:
one test per example or promise of ../shared/seeds/model-manager-v2.txt, its URLs pointed
at a FaultServer on 127.0.0.1 and ``/tmp/models/`` at a temporary folder."""

from __future__ import annotations

import logging
import threading
import time

import pytest
import requests
from pydantic import ValidationError
from pydantic.networks import AnyHttpUrl

from reconciler.download import (
    DownloadJobBase,
    DownloadJobPath,
    DownloadJobRemoteSource,
    DownloadJobStatus,
    DownloadJobURL,
    DownloadQueueService,
)
from reconciler.errors import UnknownJobIDException
from reconciler.sources.base import URLModelSource
from tests.download.conftest import blob
from tests.download.server import FaultServer

DATA = blob(300_000, seed=11)
SLOW = blob(1_200_000, seed=12)
CD = 'attachment; filename="civitai_13456.safetensors"'
logger = logging.getLogger("seed.download")


@pytest.fixture
def server():
    with FaultServer() as srv:
        yield srv


@pytest.fixture
def queues():
    """``queues(...)`` builds a DownloadQueueService; all are stopped at teardown."""
    made: list[DownloadQueueService] = []

    def new_queue(*args, **kwargs) -> DownloadQueueService:
        made.append(DownloadQueueService(*args, **kwargs))
        return made[-1]

    yield new_queue
    for q in made:
        q.cancel_all_jobs()
        q.stop()


class Seen:
    """A handler keeping the job it got and (status, bytes, total_bytes, thread) at each call."""

    def __init__(self, name: str = "h", order: list[str] | None = None) -> None:
        self.name, self.order, self.calls, self.jobs = name, order, [], []

    def __call__(self, job: DownloadJobBase) -> None:
        self.jobs.append(job)
        self.calls.append((job.status, getattr(job, "bytes", 0), getattr(job, "total_bytes", 0),
                           threading.current_thread().name))
        if self.order is not None:
            self.order.append(f"{self.name}:{job.status.value}")

    def statuses(self) -> list[str]:
        return [c[0].value for c in self.calls]


def wait_until(pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def squeeze(statuses: list[str]) -> list[str]:
    """Runs of one status as one: the seed's lists show one line per run."""
    return [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s]


# --- Creating a download queue object ----------------------------------------------------------

def test_creating_a_download_queue_object_log_download_event(server, queues, tmp_path, caplog):
    def log_download_event(job: DownloadJobBase):
        logger.info(f'job={job.id}: status={job.status}')

    queue = queues(
        event_handlers=[log_download_event]
    )
    server.add_file("/m.bin", data=DATA)
    with caplog.at_level(logging.INFO):
        job = queue.create_download_job(source=server.url("/m.bin"), destdir=tmp_path)
        queue.wait_for_job(job, 10)
    mine = [r.getMessage() for r in caplog.records if r.name == "seed.download"]
    assert mine[0] == f"job={job.id}: status=enqueued" and mine[1] == f"job={job.id}: status=running"
    assert mine[-1] == f"job={job.id}: status=completed"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    # the queue itself logs start and end, not progress
    own = [r.getMessage() for r in caplog.records if r.name.startswith("reconciler.download")]
    assert len(own) == 2 and "started" in own[0] and "completed" in own[1]
    assert queue.max_parallel_dl == 5 and not queue.quiet


def test_creating_a_download_queue_object_arguments_in_order(server, queues, tmp_path, caplog):
    class CountingSession(requests.Session):
        calls = 0

        def request(self, *args, **kwargs):
            CountingSession.calls += 1
            return super().request(*args, **kwargs)

    seen = Seen()
    queue = queues([seen], 2, CountingSession(), True)  # event_handlers, max_parallel_dl, requests_session, quiet
    assert queue.max_parallel_dl == 2 and queue.quiet
    server.add_file("/q.bin", data=SLOW, rate=3_000_000)
    with caplog.at_level(logging.DEBUG):
        job = queue.create_download_job(server.url("/q.bin"), tmp_path)
        wait_until(lambda: job.bytes > 200_000)
        queue.pause_job(job)
        wait_until(lambda: job.status == DownloadJobStatus.PAUSED)
        queue.start_job(job)  # resumes, which the transfer would log at INFO
        queue.wait_for_job(job, 10)
    assert (tmp_path / "q.bin").read_bytes() == SLOW
    assert CountingSession.calls >= 2 and seen.statuses()[-1] == "completed"
    assert any("resuming" in r.getMessage() for r in caplog.records)  # logged, below INFO
    assert not [r for r in caplog.records if r.name.startswith("reconciler.download") and r.levelno >= logging.INFO]


# --- Submitting a download job -------------------------------------------------------------------

def test_submitting_a_download_job_submit_download_job(server, queues, tmp_path):
    order: list[str] = []
    my_handler1, my_handler2 = Seen("h1", order), Seen("h2", order)
    queue = queues()
    server.add_file("/models/13456", data=DATA, content_disposition=CD)
    job = DownloadJobRemoteSource(
        source=server.url('/models/13456'),
        destination=f'{tmp_path}/models/',
        event_handlers=[my_handler1, my_handler2],  # if desired
    )
    queue.submit_download_job(job, start=True)
    queue.wait_for_job(job, 10)
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert (tmp_path / "models" / "civitai_13456.safetensors").read_bytes() == DATA
    assert job.download_path == tmp_path / "models" / "civitai_13456.safetensors"
    assert my_handler1.jobs[0] is job and order[:2] == ["h1:enqueued", "h2:enqueued"]
    assert order[-2:] == ["h1:completed", "h2:completed"] and my_handler1.calls == my_handler2.calls


def test_submitting_a_download_job_create_download_job(server, queues, tmp_path):
    my_handler1, my_handler2 = Seen(), Seen()
    queue = queues()
    server.add_file("/models/13456", data=DATA, content_disposition=CD)
    job = queue.create_download_job(
        source=server.url('/models/13456'),
        destdir=f'{tmp_path}/models/',
        filename='my_model.safetensors',
        event_handlers=[my_handler1, my_handler2],  # if desired
        start=True,
    )
    queue.wait_for_job(job, 10)
    assert isinstance(job, DownloadJobURL) and job.status == DownloadJobStatus.COMPLETED
    assert job.destination == tmp_path / "models" / "my_model.safetensors"  # the equivalent job
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["my_model.safetensors"]
    assert (tmp_path / "models" / "my_model.safetensors").read_bytes() == DATA
    assert my_handler2.statuses()[-1] == "completed" and my_handler1.calls == my_handler2.calls


def test_submitting_a_download_job_start_later_and_arguments_in_order(server, queues, tmp_path):
    seen = Seen()
    queue = queues()
    server.add_file("/private.bin", data=DATA, require_token="tok-123")
    # source, destdir, filename, start, priority, access_token, event_handlers
    job = queue.create_download_job(server.url("/private.bin"), tmp_path, "p.bin", False, 3, "tok-123", [seen])
    later = DownloadJobRemoteSource(source=server.url("/private.bin"), destination=tmp_path / "l.bin",
                                    access_token="tok-123")
    queue.submit_download_job(later, start=False)
    assert (job.id, later.id, job.priority) == (0, 1, 3) and seen.calls == []
    assert job.status == later.status == DownloadJobStatus.IDLE
    queue.start_job(job)
    queue.wait_for_job(job, 10)
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert later.status == DownloadJobStatus.IDLE and server.count("/private.bin") == 1
    assert (tmp_path / "p.bin").read_bytes() == DATA and seen.statuses()[0] == "enqueued"
    assert server.requests[-1].headers.get("Authorization") == "Bearer tok-123"
    queue.start_all_jobs()
    queue.wait_for_job(later, 10)
    assert (tmp_path / "l.bin").read_bytes() == DATA


def test_url_source_is_anyhttpurl(server, queues, tmp_path):
    queue = queues()
    server.add_file("/u.bin", data=DATA)
    job = queue.create_download_job(source=AnyHttpUrl(server.url("/u.bin")), destdir=tmp_path / "a")
    queue.wait_for_job(job, 10)
    assert isinstance(job, DownloadJobURL) and (tmp_path / "a" / "u.bin").read_bytes() == DATA
    made = DownloadJobURL(source=AnyHttpUrl(server.url("/u.bin")), destination=tmp_path / "b" / "x.bin")
    queue.submit_download_job(made)
    queue.wait_for_job(made, 10)
    assert made.source == server.url("/u.bin") and (tmp_path / "b" / "x.bin").read_bytes() == DATA
    with pytest.raises(ValidationError):
        DownloadJobURL(source="ftp://127.0.0.1/u.bin", destination=tmp_path)
    assert URLModelSource(url=AnyHttpUrl(server.url("/u.bin"))).url == server.url("/u.bin")


# --- A job for every task ------------------------------------------------------------------------

def test_destination_directory_with_trailing_slash_existing_directory_or_new_file(server, queues, tmp_path):
    queue = queues()
    server.add_file("/models/13456", data=DATA, content_disposition=CD)
    server.add_file("/files/plain.ckpt", data=DATA[:1000])
    (tmp_path / "existing").mkdir()
    jobs = [DownloadJobRemoteSource(source=server.url("/models/13456"), destination=f"{tmp_path}/x/models/"),
            DownloadJobRemoteSource(source=server.url("/files/plain.ckpt"), destination=f"{tmp_path}/y/"),
            DownloadJobRemoteSource(source=server.url("/models/13456"), destination=tmp_path / "existing"),
            DownloadJobRemoteSource(source=server.url("/models/13456"), destination=tmp_path / "new" / "m.bin")]
    assert all((j.bytes, j.total_bytes) == (0, 0) for j in jobs)  # 0/0 until it runs
    for job in jobs:
        queue.submit_download_job(job)
    queue.join()
    assert (tmp_path / "x" / "models" / "civitai_13456.safetensors").read_bytes() == DATA  # Content-Disposition
    assert (tmp_path / "y" / "plain.ckpt").read_bytes() == DATA[:1000]  # else the URL's name
    assert (tmp_path / "existing" / "civitai_13456.safetensors").read_bytes() == DATA
    assert (tmp_path / "new" / "m.bin").read_bytes() == DATA
    assert jobs[3].bytes == jobs[3].total_bytes == len(DATA) and jobs[3].job_started <= jobs[3].job_ended
    assert sorted(j.job_sequence for j in jobs) == [0, 1, 2, 3]


def test_job_error_field_and_preserve_partial_downloads(server, queues, tmp_path):
    queue = queues(download_retries=1)
    server.add_file("/cut.bin", data=SLOW, ranges=False, reset_after=500_000, reset_times=99)
    lost = queue.create_download_job(server.url("/cut.bin"), tmp_path / "lost")
    kept = queue.create_download_job(server.url("/cut.bin"), tmp_path / "kept", start=False)
    kept.preserve_partial_downloads = True  # "or set to True any time before the error occurred"
    queue.start_job(kept)
    queue.join()
    for job in (lost, kept):
        assert job.status == DownloadJobStatus.ERROR and isinstance(job.error, Exception)
    assert list((tmp_path / "lost").iterdir()) == []
    assert (tmp_path / "kept" / "cut.bin.part").exists()


def test_downloadjobpath_moves_a_local_file_and_folder(queues, tmp_path):
    seen = Seen()
    queue = queues(event_handlers=[seen])
    (tmp_path / "src" / "folder").mkdir(parents=True)
    (tmp_path / "src" / "model.ckpt").write_bytes(b"ckpt")
    (tmp_path / "src" / "folder" / "config.json").write_text("{}")
    (tmp_path / "dest").mkdir()
    one = DownloadJobPath(source=tmp_path / "src" / "model.ckpt", destination=tmp_path / "dest" / "renamed.ckpt")
    two = DownloadJobPath(source=str(tmp_path / "src" / "folder"), destination=tmp_path / "dest")
    for job in (one, two):
        queue.submit_download_job(job)
        queue.wait_for_job(job, 10)
    assert (tmp_path / "dest" / "renamed.ckpt").read_bytes() == b"ckpt"
    assert (tmp_path / "dest" / "folder" / "config.json").read_text() == "{}"
    assert list((tmp_path / "src").iterdir()) == []
    assert seen.statuses() == ["enqueued", "running", "completed"] * 2


# --- Event handlers ----------------------------------------------------------------------------

def test_event_handlers_sequence_enqueued_running_completed(server, queues, tmp_path):
    handler = Seen()
    queue = queues()
    server.add_file("/big.bin", data=SLOW)
    job = queue.create_download_job(server.url("/big.bin"), tmp_path, event_handlers=[handler])
    queue.wait_for_job(job, 10)
    statuses = handler.statuses()
    assert squeeze(statuses) == ["enqueued", "running", "completed"] and statuses.count("enqueued") == 1
    assert 3 <= statuses.count("running") <= 105  # about every 1% of the file
    assert all(j is job for j in handler.jobs)
    running = [c for c in handler.calls if c[0] == DownloadJobStatus.RUNNING]
    assert [c[1] for c in running] == sorted(c[1] for c in running)  # bytes grow
    assert running[-1][1:3] == (len(SLOW), len(SLOW))  # total_bytes from the HTTP header
    assert handler.calls[-1][1:3] == (len(SLOW), len(SLOW))
    assert all(c[3] != threading.main_thread().name for c in handler.calls[1:])  # the job's thread


def test_event_handlers_pause_resume_sequence_and_job_control_pause_and_resume(server, queues, tmp_path):
    handler = Seen()
    queue = queues()
    server.add_file("/pr.bin", data=SLOW, rate=2_000_000)
    job = queue.create_download_job(server.url("/pr.bin"), tmp_path, event_handlers=[handler])
    wait_until(lambda: job.bytes > 300_000)
    queue.pause_job(job)
    wait_until(lambda: job.status == DownloadJobStatus.PAUSED)
    assert not job.terminal and (tmp_path / "pr.bin.part").exists()
    sent = server.bytes_sent_for("/pr.bin")
    queue.start_job(job)
    queue.wait_for_job(job, 10)
    assert squeeze(handler.statuses()) == ["enqueued", "running", "paused", "running", "completed"]
    assert (tmp_path / "pr.bin").read_bytes() == SLOW
    assert server.bytes_sent_for("/pr.bin") - sent < len(SLOW) - 250_000  # picked up where it left off


def test_queue_handlers_run_after_job_handlers(server, queues, tmp_path):
    order: list[str] = []
    queue = queues(event_handlers=[Seen("queue", order)])
    server.add_file("/o.bin", data=DATA)
    job = queue.create_download_job(server.url("/o.bin"), tmp_path, start=False,
                                    event_handlers=[Seen("job1", order)])
    job.add_event_handler(Seen("job2", order))
    queue.start_job(job)
    queue.wait_for_job(job, 10)
    assert len(order) % 3 == 0 and len(order) >= 9
    for i in range(0, len(order), 3):
        status = order[i].split(":")[1]
        assert order[i:i + 3] == [f"job1:{status}", f"job2:{status}", f"queue:{status}"]


def test_event_handlers_clear_event_handlers(server, queues, tmp_path):
    on_queue, before, after = Seen(), Seen(), Seen()
    queue = queues(event_handlers=[on_queue])
    server.add_file("/c.bin", data=DATA)
    job = queue.create_download_job(server.url("/c.bin"), tmp_path, start=False, event_handlers=[before])
    job.clear_event_handlers()
    job.add_event_handler(after)
    queue.start_job(job)
    queue.wait_for_job(job, 10)
    assert before.calls == [] and on_queue.calls == []  # all handlers were cleared
    assert squeeze(after.statuses()) == ["enqueued", "running", "completed"]


def test_event_handlers_a_raising_handler_is_logged_not_fatal(server, queues, tmp_path, caplog):
    def handler(job: DownloadJobBase):
        raise RuntimeError(f"broken progress bar at {job.status}")

    later = Seen()
    queue = queues(event_handlers=[later])
    server.add_file("/r.bin", data=DATA)
    with caplog.at_level(logging.ERROR):
        job = queue.create_download_job(server.url("/r.bin"), tmp_path, event_handlers=[handler])
        queue.wait_for_job(job, 10)
    assert job.status == DownloadJobStatus.COMPLETED and (tmp_path / "r.bin").read_bytes() == DATA
    failed = [r for r in caplog.records if r.exc_info and "broken progress bar" in str(r.exc_info[1])]
    assert failed and squeeze(later.statuses()) == ["enqueued", "running", "completed"]


# --- Job control -------------------------------------------------------------------------------

def test_job_control_priorities(server, queues, tmp_path):
    queue = queues(max_parallel_dl=1)
    server.add_file("/block.bin", data=SLOW, rate=500_000)
    server.add_file("/p.bin", data=DATA[:1000])
    blocker = queue.create_download_job(server.url("/block.bin"), tmp_path / "b")
    wait_until(lambda: blocker.status == DownloadJobStatus.RUNNING)
    jobs = [queue.create_download_job(server.url("/p.bin"), tmp_path / str(i), priority=p)
            for i, p in enumerate([20, 5, 10, 1])]
    queue.cancel_job(blocker)
    queue.join()
    ran = [j.priority for j in sorted(jobs, key=lambda j: j.job_sequence)]
    assert ran == [1, 5, 10, 20]


def test_job_control_cancel_from_the_queue_or_a_handler(server, queues, tmp_path):
    seen = Seen()
    queue = queues(event_handlers=[seen])

    def handler(job: DownloadJobBase):  # "This can include cancelling ... the job"
        if job.status == DownloadJobStatus.RUNNING:
            queue.cancel_job(job)

    server.add_file("/slow.bin", data=SLOW, rate=1_000_000)
    job = queue.create_download_job(server.url("/slow.bin"), tmp_path / "q")
    by_handler = queue.create_download_job(server.url("/slow.bin"), tmp_path / "h", event_handlers=[handler])
    wait_until(lambda: job.bytes > 100_000)
    queue.cancel_job(job)
    for j in (job, by_handler):
        queue.wait_for_job(j, 10)
        assert j.status == DownloadJobStatus.CANCELLED
    assert seen.statuses().count("cancelled") == 2 and "completed" not in seen.statuses()
    assert [f for f in tmp_path.rglob("*") if f.is_file()] == []  # temporary files cleaned up


def test_job_control_join_wait_for_job_list_jobs_id_to_job_prune_jobs(server, queues, tmp_path):
    queue = queues()
    server.add_file("/ok.bin", data=DATA)
    server.add_file("/crawl.bin", data=SLOW, drip=(10_000, 0.05))
    idle = queue.create_download_job(server.url("/ok.bin"), tmp_path / "i", start=False)
    crawl = queue.create_download_job(server.url("/crawl.bin"), tmp_path / "c")
    with pytest.raises(TimeoutError):
        queue.wait_for_job(crawl, 0.1)
    good = queue.create_download_job(server.url("/ok.bin"), tmp_path / "g")
    bad = queue.create_download_job(server.url("/missing.bin"), tmp_path / "m")
    queue.cancel_job(crawl)
    queue.join()
    assert good.status == DownloadJobStatus.COMPLETED and bad.status == DownloadJobStatus.ERROR
    jobs = queue.list_jobs()
    assert jobs == [idle, crawl, good, bad] and queue.id_to_job(good.id) is good
    queue.prune_jobs()
    assert queue.list_jobs() == [idle]
    with pytest.raises(UnknownJobIDException):
        queue.id_to_job(good.id)


def test_job_control_unknown_job_id_exception(server, queues, tmp_path):
    queue, other = queues(), queues()
    stranger = DownloadJobRemoteSource(source=server.url("/x.bin"), destination=tmp_path)
    theirs = other.create_download_job(server.url("/x.bin"), tmp_path, start=False)
    for job in (stranger, theirs):
        for method in (queue.start_job, queue.pause_job, queue.cancel_job, queue.wait_for_job):
            with pytest.raises(UnknownJobIDException):
                method(job)
    assert theirs.status == DownloadJobStatus.IDLE


def test_job_control_start_pause_cancel_all_jobs(server, queues, tmp_path):
    queue = queues(max_parallel_dl=3)
    for i, rate in enumerate([2_000_000, 300_000, 300_000]):
        server.add_file(f"/a{i}.bin", data=SLOW, rate=rate)
    jobs = [queue.create_download_job(server.url(f"/a{i}.bin"), tmp_path, start=False) for i in range(3)]
    queue.start_all_jobs()
    queue.pause_all_jobs()
    wait_until(lambda: all(j.status == DownloadJobStatus.PAUSED for j in jobs))
    queue.start_all_jobs()
    queue.wait_for_job(jobs[0], 10)
    queue.cancel_all_jobs()
    queue.join()
    assert jobs[0].status == DownloadJobStatus.COMPLETED  # terminal jobs are left alone
    assert [j.status for j in jobs[1:]] == [DownloadJobStatus.CANCELLED] * 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a0.bin"]
