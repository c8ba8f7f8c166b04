"""Adaptive segmentation: one stream first, split only when that stream is slow; fast I/O paths."""

from __future__ import annotations

import threading

import pytest
import requests

from reconciler.download import DownloadJobStatus, FileDownload, PartState
from reconciler.download.retry import Interrupted

from .conftest import blob, listing, sha

DATA = blob(3_000_000, seed=11)
ADAPT = {"connections": 4, "min_segment_size": 128 * 1024, "adaptive_min_size": 1_000_000, "split_after": 0.1}


def ports(server, path: str) -> set[int]:
    return {r.client_port for r in server.requests if r.path == path}


def test_throttled_route_splits_after_warmup_and_bytes_are_exact(server, tmp_path):
    server.add_file("/slow.bin", data=DATA, rate=2_000_000)  # 2 MB/s per connection
    dl = FileDownload(session=requests.Session(), url=server.url("/slow.bin"), dest=None, destdir=tmp_path,
                      split_below=10_000_000, expected_sha256=sha(DATA), **ADAPT)
    res = dl.run()
    assert dl.split_done
    assert res.sha256 == sha(DATA) and res.path.read_bytes() == DATA
    assert len(ports(server, "/slow.bin")) >= 3  # the other connections joined
    # at most what was in flight on the stream whose range got cut short
    assert len(DATA) <= server.bytes_sent_for("/slow.bin") < len(DATA) + 256 * 1024
    assert listing(tmp_path) == ["slow.bin"]


def test_fast_route_stays_on_one_stream(server, tmp_path):
    server.add_file("/fast.bin", data=DATA, rate=8_000_000)  # faster than the threshold below
    dl = FileDownload(session=requests.Session(), url=server.url("/fast.bin"), dest=None, destdir=tmp_path,
                      split_below=1_000_000, expected_sha256=sha(DATA), **ADAPT)
    res = dl.run()
    assert not dl.split_done and res.sha256 == sha(DATA)
    # the probe (piece 0) and then the rest on the same connection: one stream
    assert len(ports(server, "/fast.bin")) == 1 and server.count("/fast.bin") == 2
    assert server.bytes_sent_for("/fast.bin") == len(DATA)


def test_unthrottled_queue_download_does_not_split(server, make_queue, tmp_path):
    server.add_file("/u.bin", data=DATA)
    q = make_queue(connections_per_file=8, min_segment_size=128 * 1024, adaptive_min_size=1_000_000)
    job = q.create_download_job(server.url("/u.bin"), tmp_path, sha256=sha(DATA))
    q.wait_for_job(job, 20)
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert len(ports(server, "/u.bin")) == 1 and (tmp_path / "u.bin").read_bytes() == DATA


def test_small_files_and_split_below_none_split_up_front(server, tmp_path):
    server.add_file("/s.bin", data=DATA)
    dl = FileDownload(session=requests.Session(), url=server.url("/s.bin"), dest=None, destdir=tmp_path,
                      split_below=None, **{**ADAPT, "split_after": 10.0})
    res = dl.run()
    assert res.sha256 == sha(DATA)
    assert server.count("/s.bin") == len(DATA) // (128 * 1024)  # every piece its own request


def test_split_download_interrupted_resumes_in_new_downloader(server, tmp_path):
    server.add_file("/r.bin", data=DATA, rate=1_500_000)
    stop = threading.Event()
    got = [0]

    def progress(delta: int, total: int | None) -> None:
        got[0] += delta
        if got[0] >= 1_200_000:
            stop.set()

    first = FileDownload(session=requests.Session(), url=server.url("/r.bin"), dest=None, destdir=tmp_path,
                         split_below=10_000_000, stop=stop, on_progress=progress, **ADAPT)
    with pytest.raises(Interrupted):
        first.run()
    assert first.split_done
    state = PartState.load(tmp_path / "r.bin.part.json")
    assert state is not None and len(state.segments) > 2 and state.done_bytes >= 1_000_000
    covered = sorted((s.start, s.end) for s in state.segments)
    assert covered[0][0] == 0 and covered[-1][1] == len(DATA)
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:], strict=False))  # every byte in exactly one segment
    server.reset_counters()
    second = FileDownload(session=requests.Session(), url=server.url("/r.bin"), dest=None, destdir=tmp_path,
                          split_below=10_000_000, expected_sha256=sha(DATA), **ADAPT)
    res = second.run()
    assert res.path.read_bytes() == DATA and res.sha256 == sha(DATA)
    assert server.bytes_sent_for("/r.bin") <= len(DATA) - state.done_bytes + 4 * 65_536
    assert listing(tmp_path) == ["r.bin"]


def test_hash_pipeline_survives_restart_without_range(server, tmp_path):
    """A reset on a server without Range restarts at byte 0: the hash thread must restart too."""
    server.add_file("/n.bin", data=DATA, ranges=False, reset_after=1_000_000)
    dl = FileDownload(session=requests.Session(), url=server.url("/n.bin"), dest=None, destdir=tmp_path,
                      expected_sha256=sha(DATA), connections=4, min_segment_size=128 * 1024,
                      retry=__import__("reconciler.download", fromlist=["RetryPolicy"]).RetryPolicy(
                          attempts=3, backoff_base=0.01, backoff_max=0.02))
    res = dl.run()
    assert res.sha256 == sha(DATA) and res.path.read_bytes() == DATA
