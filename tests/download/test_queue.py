"""Queue behaviour: events, priorities, pause/resume, cancel, concurrency, jobs, multi-file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from reconciler.download import (
    DownloadJobPath,
    DownloadJobStatus,
    DownloadJobURL,
    DownloadPart,
    MultiFileDownloadJob,
)
from reconciler.download.http import redact_url, sanitize_filename
from reconciler.errors import UnknownJobIDException, UnsafePathError

from .conftest import blob, listing, sha

DATA = blob(400_000, seed=1)


def test_event_sequence_and_payload(server, queue, tmp_path, recorder):
    server.add_file("/e.bin", data=blob(2_000_000))
    job = queue.create_download_job(server.url("/e.bin") + "?sig=abcdef&x=1", tmp_path)
    queue.wait_for_job(job, 20)
    names = recorder.names(job.id)
    assert names[0] == "enqueued" and names[-1] == "completed"
    assert set(names[1:-1]) == {"running"} and 2 <= names.count("running") <= 110
    last = recorder.for_job(job.id)[-1].payload
    assert last["bytes"] == last["total_bytes"] == 2_000_000 and last["status"] == "completed"
    assert last["job_id"] == job.id and "abcdef" not in last["source"] and "x=1" in last["source"]
    assert last["sha256"] == sha(blob(2_000_000))
    running = [e.payload["bytes"] for e in recorder.for_job(job.id) if e.name == "download_running"]
    assert running == sorted(running)


def test_job_handlers_run_before_queue_handlers_and_raising_is_harmless(server, make_queue, tmp_path):
    order: list[str] = []

    def bad(job):
        order.append(f"job:download_{job.status.value}")
        raise RuntimeError("broken progress bar")

    q = make_queue(event_handlers=[lambda j: order.append(f"queue:download_{j.status.value}")])
    server.add_file("/h.bin", data=DATA)
    job = q.create_download_job(server.url("/h.bin"), tmp_path, event_handlers=[bad])
    q.wait_for_job(job, 20)
    assert job.status == DownloadJobStatus.COMPLETED
    assert order[0] == "job:download_enqueued" and order[1] == "queue:download_enqueued"
    assert order[-2:] == ["job:download_completed", "queue:download_completed"]


def test_priority_then_submission_order(server, make_queue, tmp_path):
    q = make_queue(max_parallel_dl=1)
    for i in range(5):
        server.add_file(f"/{i}.bin", data=DATA[:1000])
    jobs = [q.create_download_job(server.url(f"/{i}.bin"), tmp_path, start=False, priority=p)
            for i, p in enumerate([20, 5, 10, 5, 1])]
    q.start_all_jobs()
    q.join(20)
    order = [j.id for j in sorted(jobs, key=lambda j: j.job_sequence)]
    assert order == [jobs[4].id, jobs[1].id, jobs[3].id, jobs[2].id, jobs[0].id]


def test_concurrency_beyond_max_parallel(server, make_queue, tmp_path):
    q = make_queue(max_parallel_dl=2, connections_per_file=1)
    active, peak, lock = [0], [0], threading.Lock()

    def track(job):
        with lock:
            if job.status == DownloadJobStatus.RUNNING and job.bytes == 0:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
            elif job.status == DownloadJobStatus.COMPLETED:
                active[0] -= 1

    for i in range(6):
        server.add_file(f"/c{i}.bin", data=DATA[:100_000], drip=(20_000, 0.02))
    jobs = [q.create_download_job(server.url(f"/c{i}.bin"), tmp_path, event_handlers=[track]) for i in range(6)]
    q.join(30)
    assert all(j.status == DownloadJobStatus.COMPLETED for j in jobs)
    assert peak[0] == 2
    assert sorted(listing(tmp_path)) == sorted(f"c{i}.bin" for i in range(6))


def test_pause_resume_byte_exact(server, make_queue, tmp_path, recorder):
    data = blob(1_500_000, seed=7)
    server.add_file("/pr.bin", data=data, rate=1_000_000)
    q = make_queue(connections_per_file=3, min_segment_size=100_000)
    job = q.create_download_job(server.url("/pr.bin"), tmp_path)
    deadline = time.monotonic() + 10
    while job.bytes < 400_000 and time.monotonic() < deadline:
        time.sleep(0.01)
    q.pause_job(job)
    while job.status != DownloadJobStatus.PAUSED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.status == DownloadJobStatus.PAUSED
    assert (tmp_path / "pr.bin.part").exists() and (tmp_path / "pr.bin.part.json").exists()
    sent_before = server.bytes_sent_for("/pr.bin")
    q.start_job(job)
    q.wait_for_job(job, 20)
    assert job.status == DownloadJobStatus.COMPLETED
    assert sha((tmp_path / "pr.bin").read_bytes()) == sha(data) == job.actual_sha256
    assert server.bytes_sent_for("/pr.bin") - sent_before < len(data) - 300_000  # resumed, not restarted
    resumed = [r for r in server.requests if r.range and not r.range.startswith("bytes=0-")]
    assert resumed
    names = recorder.names(job.id)
    assert names[0] == "enqueued" and names.count("enqueued") == 1 and "paused" in names
    assert names[-1] == "completed" and names[names.index("paused") + 1] == "running"


def test_cancel_running_removes_partials(server, queue, tmp_path, recorder):
    server.add_file("/slow.bin", data=DATA, drip=(4096, 0.02))
    job = queue.create_download_job(server.url("/slow.bin"), tmp_path)
    deadline = time.monotonic() + 10
    while job.bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.cancel_job(job)
    queue.wait_for_job(job, 10)
    assert job.status == DownloadJobStatus.CANCELLED
    assert listing(tmp_path) == []
    assert recorder.names(job.id)[-1] == "cancelled"


def test_cancel_stalled_server_is_prompt(server, make_queue, tmp_path):
    server.add_file("/stall.bin", data=DATA, drip=(1000, 5.0))
    q = make_queue(download_timeout=30)
    job = q.create_download_job(server.url("/stall.bin"), tmp_path)
    time.sleep(0.3)
    t0 = time.monotonic()
    q.cancel_job(job)
    q.wait_for_job(job, 10)
    assert time.monotonic() - t0 < 2 and job.status == DownloadJobStatus.CANCELLED


def test_cancel_enqueued_and_paused(server, make_queue, tmp_path, recorder):
    q = make_queue(max_parallel_dl=1)
    server.add_file("/x.bin", data=DATA)
    j1 = q.create_download_job(server.url("/x.bin"), tmp_path, start=False)
    q.cancel_job(j1)
    assert j1.status == DownloadJobStatus.CANCELLED and recorder.names(j1.id) == ["cancelled"]
    q.cancel_job(j1)  # idempotent


def test_wait_timeout_join_list_prune_and_ids(server, make_queue, tmp_path):
    q = make_queue()
    server.add_file("/w.bin", data=DATA, drip=(10_000, 0.05))
    job = q.create_download_job(server.url("/w.bin"), tmp_path)
    with pytest.raises(TimeoutError):
        q.wait_for_job(job, timeout=0.05)
    assert q.id_to_job(job.id) is job and job in q.list_jobs()
    with pytest.raises(UnknownJobIDException):
        q.id_to_job(999)
    stranger = DownloadJobURL(source=server.url("/w.bin"), destination=tmp_path)
    with pytest.raises(UnknownJobIDException):
        q.pause_job(stranger)
    q.cancel_all_jobs()
    q.join(10)
    q.prune_jobs()
    assert q.list_jobs() == []


def test_pause_all_start_all(server, make_queue, tmp_path):
    q = make_queue(max_parallel_dl=1)
    for i in range(3):
        server.add_file(f"/a{i}.bin", data=DATA, drip=(50_000, 0.01))
    jobs = [q.create_download_job(server.url(f"/a{i}.bin"), tmp_path) for i in range(3)]
    q.pause_all_jobs()
    deadline = time.monotonic() + 10
    while any(j.status != DownloadJobStatus.PAUSED for j in jobs) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert all(j.status == DownloadJobStatus.PAUSED for j in jobs)
    q.join(1)  # paused jobs do not block join
    q.start_all_jobs()
    q.join(20)
    assert all(j.status == DownloadJobStatus.COMPLETED for j in jobs)
    assert all((tmp_path / f"a{i}.bin").read_bytes() == DATA for i in range(3))


def test_path_job_moves_locally(queue, tmp_path, recorder):
    src = tmp_path / "src" / "model.ckpt"
    src.parent.mkdir()
    src.write_bytes(b"abc")
    job = queue.create_download_job(src, tmp_path / "dest")
    queue.wait_for_job(job, 10)
    assert isinstance(job, DownloadJobPath) and job.status == DownloadJobStatus.COMPLETED
    assert (tmp_path / "dest" / "model.ckpt").read_bytes() == b"abc" and not src.exists()
    assert recorder.names(job.id) == ["enqueued", "running", "completed"]


def test_url_job_validation():
    with pytest.raises(ValidationError, match="not an http"):
        DownloadJobURL(source="ftp://x/y", destination=Path("."))
    with pytest.raises(ValidationError, match="sha256 must be 64 hex digits"):
        DownloadJobURL(source="http://h/x", destination=Path("."), sha256="zz")


def test_multifile_job(server, queue, tmp_path, recorder):
    files = {"model_index.json": b"{}", "unet/diffusion_pytorch_model.safetensors": blob(300_000, 2),
             "vae/config.json": b'{"a": 1}'}
    parts = []
    for rel, data in files.items():
        server.add_file("/repo/resolve/main/" + rel, data=data)
        parts.append(DownloadPart(server.url("/repo/resolve/main/" + rel), rel,
                                  expected_size=len(data), expected_sha256=sha(data)))
    snapshots = []  # what a handler sees: the job's sum and its parts agree at every event

    def consistent(j):
        snapshots.append((j.status, j.bytes, sum(p.bytes for p in j.parts), [p.status for p in j.parts]))

    job = MultiFileDownloadJob(source="hf://org/repo@main", destination=tmp_path / "snap", parts=parts,
                               access_token="hf_tok", event_handlers=[consistent])
    assert job.total_bytes == sum(len(d) for d in files.values())
    queue.submit_download_job(job)
    queue.wait_for_job(job, 20)
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert all(total == of_parts for _s, total, of_parts, _p in snapshots) and len(snapshots) >= 3
    assert snapshots[-1][0] == DownloadJobStatus.COMPLETED and set(snapshots[-1][3]) == {DownloadJobStatus.COMPLETED}
    for rel, data in files.items():
        assert (tmp_path / "snap" / rel).read_bytes() == data
    assert all(p.status == DownloadJobStatus.COMPLETED and p.bytes == p.total_bytes for p in job.parts)
    last = recorder.for_job(job.id)[-1].payload
    assert last["bytes"] == last["total_bytes"] == job.total_bytes and last["parts_completed"] == 3
    assert all(r.headers.get("Authorization") == "Bearer hf_tok" for r in server.requests)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "C:\\x", "a\\..\\b", "", "."])
def test_multifile_rejects_unsafe_paths(bad):
    with pytest.raises(UnsafePathError) as info:
        MultiFileDownloadJob(source="hf://o/r", destination=Path("/tmp/x"),
                             parts=[DownloadPart("http://h/ok", "ok.json"), DownloadPart("http://h/b", bad)])
    assert repr(bad) in str(info.value)  # the listing's path, quoted as given


def test_multifile_part_failure_names_part(server, queue, tmp_path):
    server.add_file("/ok", data=b"1")
    parts = [DownloadPart(server.url("/ok"), "ok.txt"), DownloadPart(server.url("/missing"), "sub/missing.bin")]
    job = MultiFileDownloadJob(source="hf://o/r", destination=tmp_path, parts=parts)
    queue.submit_download_job(job)
    queue.wait_for_job(job, 10)
    assert job.status == DownloadJobStatus.ERROR and "/missing" in str(job.error)
    assert job.parts[0].status == DownloadJobStatus.COMPLETED and job.parts[1].status == DownloadJobStatus.ERROR


def test_helpers():
    assert redact_url("https://u:p@h.example:8443/a?token=abc&x=1&k=" + "z" * 40) == \
        "https://h.example:8443/a?token=***&x=1&k=***"
    assert sanitize_filename("../..") is None and sanitize_filename("a/b\\c.bin") == "c.bin"
    assert sanitize_filename("x\x00y:z.bin") == "xy_z.bin"
