"""Byte-moving behaviour against the real FaultServer: names, Range, resume, retries, integrity."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import requests

from reconciler.download import DownloadJobStatus, FileDownload, PartState, RetryPolicy, segments
from reconciler.download.retry import Interrupted
from reconciler.errors import (
    AuthenticationRequiredError,
    DownloadError,
    IntegrityError,
    RemoteFileNotFoundError,
    TransientDownloadError,
)

from .conftest import blob, listing, sha

DATA = blob(600_000)  # not a whole number of 4 KiB blocks: the last partial block takes the page cache


@pytest.fixture(autouse=True, params=["direct", "page-cache"])
def io_path(request, monkeypatch):
    """Every byte-moving test runs twice: writing with O_DIRECT, and on a platform or
    filesystem without it (as macOS), where every write goes through the page cache."""
    if request.param == "page-cache":
        monkeypatch.delattr(os, "O_DIRECT", raising=False)
    elif not hasattr(os, "O_DIRECT"):
        pytest.skip("this platform has no O_DIRECT; the page-cache run covers it")
    return request.param


def done(queue, job, timeout: float = 20.0):
    queue.wait_for_job(job, timeout)
    return job


@pytest.mark.parametrize("connections", [1, 4])
def test_plain_download_verifies_sha_and_leaves_no_partials(server, make_queue, tmp_path, connections):
    server.add_file("/files/model.safetensors", data=DATA)
    q = make_queue(connections_per_file=connections)
    job = done(q, q.create_download_job(server.url("/files/model.safetensors"), tmp_path, sha256=sha(DATA),
                                        expected_size=len(DATA)))
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert (tmp_path / "model.safetensors").read_bytes() == DATA
    assert job.actual_sha256 == sha(DATA) and job.bytes == job.total_bytes == len(DATA)
    assert listing(tmp_path) == ["model.safetensors"]
    ranges = [r.range for r in server.requests]
    if connections > 1:
        assert len(ranges) >= 4 and all(r and r.startswith("bytes=") for r in ranges)


def test_probe_response_only_fills_its_own_segment(server, tmp_path, monkeypatch):
    """Regression: the probe's open response (bytes from 0) went to the first worker started,
    which then took "the next free piece"; when another worker took piece 0 first (here forced:
    the first worker is held in its buffer allocation until another request is on the wire),
    the probe's bytes were written at the start of a later piece."""
    data = blob(2_000_000, seed=5)
    server.add_file("/p.bin", data=data)
    real_pool = segments._BufferPool

    class SlowFirstPool(real_pool):  # type: ignore[misc, valid-type]
        def __init__(self, size: int, count: int = 4) -> None:
            if threading.current_thread().name == "dl-conn-0":
                deadline = time.monotonic() + 5
                while server.count("/p.bin") < 2 and time.monotonic() < deadline:
                    time.sleep(0.002)
            super().__init__(size, count)

    monkeypatch.setattr(segments, "_BufferPool", SlowFirstPool)
    dl = FileDownload(session=requests.Session(), url=server.url("/p.bin"), dest=None, destdir=tmp_path,
                      connections=4, min_segment_size=64 * 1024, split_below=None)
    res = dl.run()
    assert res.path.read_bytes() == data and res.sha256 == sha(data)
    assert server.count("/p.bin") >= 2  # the hold above really overlapped another worker


def test_content_disposition_names_file_and_is_sanitised(server, queue, tmp_path):
    server.add_file("/dl/123", data=DATA, content_disposition='attachment; filename="../../evil\x07.bin"')
    server.add_file("/dl/456", data=DATA,
                    content_disposition="attachment; filename*=UTF-8''caf%C3%A9%20v2.safetensors")
    j1 = done(queue, queue.create_download_job(server.url("/dl/123"), tmp_path))
    j2 = done(queue, queue.create_download_job(server.url("/dl/456"), tmp_path))
    assert j1.download_path == tmp_path / "evil.bin"
    assert j2.download_path == tmp_path / "café v2.safetensors"
    assert listing(tmp_path) == sorted(["evil.bin", "café v2.safetensors"])


def test_filename_argument_wins(server, queue, tmp_path):
    server.add_file("/a/b.bin", data=DATA, content_disposition='attachment; filename="other.bin"')
    job = done(queue, queue.create_download_job(server.url("/a/b.bin"), tmp_path, filename="mine.bin"))
    assert job.download_path == tmp_path / "mine.bin" and (tmp_path / "mine.bin").read_bytes() == DATA


def test_no_range_support_single_stream(server, make_queue, tmp_path):
    server.add_file("/f.bin", data=DATA, ranges=False)
    q = make_queue(connections_per_file=8)
    job = done(q, q.create_download_job(server.url("/f.bin"), tmp_path))
    assert job.status == DownloadJobStatus.COMPLETED and (tmp_path / "f.bin").read_bytes() == DATA
    assert server.count("/f.bin") == 1


def test_reset_mid_body_resumes_with_range(server, make_queue, tmp_path):
    route = server.add_file("/r.bin", data=DATA, reset_after=200_000, reset_times=2)
    q = make_queue(connections_per_file=1)
    job = done(q, q.create_download_job(server.url("/r.bin"), tmp_path, sha256=sha(DATA)))
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert route.reset_times == 0
    later = [r.range for r in server.requests[1:]]
    assert len(later) == 2 and all(r.startswith("bytes=") and r.endswith("-599999") for r in later)
    starts = [int(r[6:].split("-")[0]) for r in later]
    # resumed where the client was, never from zero (a reset may discard a few unread
    # kilobytes from the socket buffer, so the exact byte depends on timing)
    assert 0 < starts[0] <= 200_000 and starts[0] < starts[1] <= 400_000


def test_reset_without_range_restarts_cleanly(server, make_queue, tmp_path):
    server.add_file("/r.bin", data=DATA, ranges=False, reset_after=100_000)
    q = make_queue()
    events = []
    job = q.create_download_job(server.url("/r.bin"), tmp_path, event_handlers=[events.append])
    done(q, job)
    assert job.status == DownloadJobStatus.COMPLETED and (tmp_path / "r.bin").read_bytes() == DATA
    assert job.actual_sha256 == sha(DATA) and job.bytes == len(DATA)


def test_truncated_body_is_never_success(server, make_queue, tmp_path):
    server.add_file("/t.bin", data=DATA, truncate_at=300_000, truncate_times=1)
    q = make_queue(connections_per_file=1)
    job = done(q, q.create_download_job(server.url("/t.bin"), tmp_path))
    assert job.status == DownloadJobStatus.COMPLETED and (tmp_path / "t.bin").read_bytes() == DATA
    assert server.requests[1].range == "bytes=300000-599999"

    server.add_file("/t2.bin", data=DATA, ranges=False, truncate_at=300_000, truncate_times=100)
    job2 = done(q, q.create_download_job(server.url("/t2.bin"), tmp_path))
    assert job2.status == DownloadJobStatus.ERROR
    assert isinstance(job2.error, TransientDownloadError)
    assert not (tmp_path / "t2.bin").exists() and listing(tmp_path) == ["t.bin"]


def test_5xx_and_429_retried_with_retry_after(server, make_queue, tmp_path):
    route = server.add_file("/busy.bin", data=DATA, fail_statuses=[503, 500, 429], retry_after="1")
    q = make_queue(retry_policy=RetryPolicy(attempts=5, backoff_base=0.01, backoff_max=0.02))
    import time
    t0 = time.monotonic()
    job = done(q, q.create_download_job(server.url("/busy.bin"), tmp_path))
    assert job.status == DownloadJobStatus.COMPLETED and route.fail_statuses == []
    assert time.monotonic() - t0 >= 2.9  # three Retry-After: 1 honoured, not the 10 ms backoff


def test_retries_exhausted_gives_transient_error(server, make_queue, tmp_path):
    server.add_file("/down.bin", data=DATA, fail_statuses=[503] * 10)
    q = make_queue(retry_policy=RetryPolicy(attempts=2, backoff_base=0.01))
    job = done(q, q.create_download_job(server.url("/down.bin"), tmp_path))
    assert job.status == DownloadJobStatus.ERROR and "503" in str(job.error)
    assert server.count("/down.bin") == 3


@pytest.mark.parametrize(("status", "exc"), [(401, AuthenticationRequiredError), (403, AuthenticationRequiredError),
                                             (404, RemoteFileNotFoundError)])
def test_client_errors_are_clear_and_not_retried(server, queue, tmp_path, recorder, status, exc):
    server.add_file("/x.bin", data=DATA, fail_statuses=[status])
    url = server.url("/x.bin") + "?token=supersecretvalue"
    job = done(queue, queue.create_download_job(url, tmp_path, access_token="tok-SECRET-123"))
    assert job.status == DownloadJobStatus.ERROR and isinstance(job.error, exc)
    msg = str(job.error)
    assert server.url("/x.bin") in msg and str(status) in msg
    assert "tok-SECRET-123" not in msg and "supersecretvalue" not in msg
    assert server.count("/x.bin") == 1
    last = recorder.for_job(job.id)[-1]
    assert last.name == "download_error" and last.payload["error_type"] == exc.__name__
    assert "supersecretvalue" not in json.dumps(last.payload) and "tok-SECRET" not in json.dumps(last.payload)


def test_html_instead_of_model_needs_token(server, queue, tmp_path):
    server.add_file("/models/9", data=b"<!DOCTYPE html><html><body>Log in</body></html>", content_type="text/html")
    server.add_file("/models/10", data=b"  <html><body>login</body></html>" + b" " * 100)
    for path in ("/models/9", "/models/10"):
        job = done(queue, queue.create_download_job(server.url(path), tmp_path, filename="m.safetensors"))
        assert job.status == DownloadJobStatus.ERROR
        assert isinstance(job.error, AuthenticationRequiredError) and "token" in str(job.error)
        assert "HTML" in str(job.error)
    assert listing(tmp_path) == []


def test_token_sent_to_origin_only_and_dropped_across_hosts(server, other_server, queue, tmp_path):
    other_server.add_file("/cdn/blob", data=DATA, content_disposition='attachment; filename="w.bin"')
    server.add_file("/private.bin", data=DATA, require_token="hf_abc")
    server.add_redirect("/resolve/main/w.bin", other_server.url("/cdn/blob"))
    server.add_redirect("/same", "/private.bin")
    j1 = done(queue, queue.create_download_job(server.url("/resolve/main/w.bin"), tmp_path, access_token="hf_abc"))
    j2 = done(queue, queue.create_download_job(server.url("/same"), tmp_path, filename="p.bin",
                                               access_token="hf_abc"))
    assert j1.status == j2.status == DownloadJobStatus.COMPLETED, (j1.error, j2.error)
    assert all(r.headers.get("Authorization") == "Bearer hf_abc" for r in server.requests)
    assert other_server.requests and all("Authorization" not in r.headers for r in other_server.requests)
    assert (tmp_path / "w.bin").read_bytes() == DATA
    assert "hf_abc" not in repr(j1) and "hf_abc" not in j1.model_dump_json()


def test_sha256_and_size_mismatch(server, queue, tmp_path):
    server.add_file("/m.bin", data=DATA)
    j1 = done(queue, queue.create_download_job(server.url("/m.bin"), tmp_path, sha256="0" * 64))
    assert j1.status == DownloadJobStatus.ERROR and isinstance(j1.error, IntegrityError)
    assert "sha256" in str(j1.error)
    j2 = done(queue, queue.create_download_job(server.url("/m.bin"), tmp_path, expected_size=5))
    assert isinstance(j2.error, IntegrityError) and server.bytes_sent_for("/m.bin") < 2 * len(DATA)
    assert listing(tmp_path) == []


def test_preserve_partial_downloads_keeps_part(server, make_queue, tmp_path):
    server.add_file("/p.bin", data=DATA, truncate_at=250_000, truncate_times=100)
    q = make_queue(connections_per_file=1, retry_policy=RetryPolicy(attempts=0))
    job = q.create_download_job(server.url("/p.bin"), tmp_path, preserve_partial_downloads=True)
    done(q, job)
    assert job.status == DownloadJobStatus.ERROR
    assert listing(tmp_path) == ["p.bin.part", "p.bin.part.json"]
    state = PartState.load(tmp_path / "p.bin.part.json")
    assert state is not None and state.done_bytes == 250_000 and state.total_size == len(DATA)


def test_resume_from_sidecar_in_new_downloader(server, tmp_path):
    """A 'new process': a fresh FileDownload picks up the .part and sidecar another left."""
    import threading

    import requests
    server.add_file("/big.bin", data=DATA, rate=400_000)
    stop = threading.Event()
    seen = []

    def progress(delta, total):
        seen.append(delta)
        if sum(seen) >= 300_000:
            stop.set()

    first = FileDownload(session=requests.Session(), url=server.url("/big.bin"), dest=None, destdir=tmp_path,
                         connections=3, min_segment_size=50_000, stop=stop, on_progress=progress)
    with pytest.raises(Interrupted):
        first.run()
    state = PartState.load(tmp_path / "big.bin.part.json")
    assert state is not None and 250_000 <= state.done_bytes < len(DATA)
    server.reset_counters()
    second = FileDownload(session=requests.Session(), url=server.url("/big.bin"), dest=None, destdir=tmp_path,
                          connections=3, min_segment_size=50_000, expected_sha256=sha(DATA))
    result = second.run()
    assert result.path.read_bytes() == DATA and result.sha256 == sha(DATA)
    assert server.bytes_sent_for("/big.bin") <= len(DATA) - state.done_bytes + 3 * 16_384
    assert all(r.headers.get("If-Range") for r in server.requests)
    assert listing(tmp_path) == ["big.bin"]


def test_changed_file_on_resume_restarts(server, tmp_path):
    import requests
    dest = tmp_path / "c.bin"
    state = PartState(url=server.url("/c.bin"), total_size=len(DATA), etag='"old"',
                      last_modified="Mon, 01 Jan 2001 00:00:00 GMT",
                      segments=[__import__("reconciler.download.segments", fromlist=["Segment"]).Segment(
                          0, len(DATA), 100_000)])
    (tmp_path / "c.bin.part").write_bytes(b"x" * len(DATA))
    state.save(tmp_path / "c.bin.part.json")
    server.add_file("/c.bin", data=DATA)
    res = FileDownload(session=requests.Session(), url=server.url("/c.bin"), dest=dest, destdir=tmp_path,
                       expected_sha256=sha(DATA)).run()
    assert res.path.read_bytes() == DATA


def test_server_ignoring_range_on_resume_restarts(server, tmp_path):
    import requests

    from reconciler.download.segments import Segment
    dest = tmp_path / "n.bin"
    PartState(url=server.url("/n.bin"), total_size=len(DATA), etag=None, last_modified=None,
              segments=[Segment(0, len(DATA), 123_456)]).save(tmp_path / "n.bin.part.json")
    (tmp_path / "n.bin.part").write_bytes(b"\0" * len(DATA))
    server.add_file("/n.bin", data=DATA, ranges=False)
    res = FileDownload(session=requests.Session(), url=server.url("/n.bin"), dest=dest, destdir=tmp_path).run()
    assert dest.read_bytes() == DATA and res.sha256 == sha(DATA)
    assert listing(tmp_path) == ["n.bin"]


def test_empty_file(server, queue, tmp_path):
    server.add_file("/empty.txt", data=b"")
    job = done(queue, queue.create_download_job(server.url("/empty.txt"), tmp_path))
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert (tmp_path / "empty.txt").read_bytes() == b""


def test_rate_limit_caps_whole_queue(server, make_queue, tmp_path):
    import time
    for i in range(2):
        server.add_file(f"/r{i}.bin", data=DATA[:200_000])
    q = make_queue(limit_rate=400_000, connections_per_file=2, min_segment_size=50_000)
    t0 = time.monotonic()
    jobs = [q.create_download_job(server.url(f"/r{i}.bin"), tmp_path) for i in range(2)]
    q.join(20)
    dt = time.monotonic() - t0
    assert all(j.status == DownloadJobStatus.COMPLETED for j in jobs)
    assert 0.7 <= dt <= 3.0  # 400 kB at 400 kB/s with a 100 kB burst: ~0.75 s


def test_errors_module_classes():
    assert issubclass(RemoteFileNotFoundError, FileNotFoundError) and issubclass(RemoteFileNotFoundError, DownloadError)
