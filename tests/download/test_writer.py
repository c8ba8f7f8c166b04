"""Writing downloads around the page cache (O_DIRECT), and falling back where it is refused."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from pathlib import Path

import pytest

from reconciler.download import DownloadJobStatus, segments, writer
from reconciler.download.writer import ALIGN, PartWriter, aligned_buffer

from .conftest import blob, listing, sha

DATA = blob(3 * 2**20 + 12_345)  # several whole 1 MiB buffers, then a partial block


def _direct_works(folder: Path) -> bool:
    if not hasattr(os, "O_DIRECT"):
        return False
    try:
        fd = os.open(folder / ".direct-probe", os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    except OSError:
        return False
    os.close(fd)
    (folder / ".direct-probe").unlink()
    return True


class WriteLog:
    """Records every pwrite/pwritev as (through O_DIRECT?, offset, bytes written)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.writes: list[tuple[bool, int, int]] = []
        real_pwrite, real_pwritev = os.pwrite, os.pwritev

        def direct(fd: int) -> bool:
            return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT)

        def pwrite(fd, data, offset):
            n = real_pwrite(fd, data, offset)
            self.writes.append((direct(fd), offset, n))
            return n

        def pwritev(fd, buffers, offset):
            n = real_pwritev(fd, buffers, offset)
            self.writes.append((direct(fd), offset, n))
            return n

        monkeypatch.setattr(writer.os, "pwrite", pwrite)
        monkeypatch.setattr(writer.os, "pwritev", pwritev)

    def bytes(self, direct: bool) -> int:
        return sum(n for d, _, n in self.writes if d == direct)


@pytest.mark.parametrize("connections", [1, 3])
def test_download_writes_whole_blocks_around_the_page_cache(server, make_queue, tmp_path, monkeypatch,
                                                            connections):
    if not _direct_works(tmp_path):
        pytest.skip("the temp filesystem refuses O_DIRECT; test_falls_back_* cover this machine")
    log = WriteLog(monkeypatch)
    server.add_file("/w.bin", data=DATA)
    q = make_queue(connections_per_file=connections, min_segment_size=2**20 + 1000)  # unaligned request
    job = q.create_download_job(server.url("/w.bin"), tmp_path, sha256=sha(DATA))
    q.wait_for_job(job, 20)
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert (tmp_path / "w.bin").read_bytes() == DATA
    assert all(off % ALIGN == 0 and n % ALIGN == 0 for d, off, n in log.writes if d)
    # only partial blocks (at the file's end, at a segment's unaligned edge) took the page cache
    assert log.bytes(False) < ALIGN * 2 * connections
    assert log.bytes(True) + log.bytes(False) == len(DATA)


def test_falls_back_when_the_filesystem_refuses_o_direct_at_open(tmp_path, monkeypatch):
    real_open = os.open

    def no_direct(path, flags, *args):  # what tmpfs before Linux 6.6 and many FUSE mounts answer
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(writer.os, "open", no_direct)
    w = PartWriter(tmp_path / "a.part", truncate=True, direct=True)
    assert not w.direct
    buf = aligned_buffer(2 * ALIGN)
    buf[:] = DATA[:2 * ALIGN]
    w.write(buf, 0)
    w.datasync()
    w.close()
    assert (tmp_path / "a.part").read_bytes() == DATA[:2 * ALIGN]


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="needs O_DIRECT to refuse a write")
def test_falls_back_when_a_direct_write_is_refused(server, make_queue, tmp_path, monkeypatch):
    if not _direct_works(tmp_path):
        pytest.skip("the temp filesystem refuses O_DIRECT at open (the test above)")
    real_pwrite, real_open = os.pwrite, os.open
    refused: list[int] = []
    direct_fds: set[int] = set()

    def pwrite(fd, data, offset):
        if fd in direct_fds:  # refused at the first write, as some filesystems do
            refused.append(offset)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    def spy_open(path, flags, *args):
        fd = real_open(path, flags, *args)
        if flags & os.O_DIRECT:
            direct_fds.add(fd)
        return fd

    monkeypatch.setattr(writer.os, "open", spy_open)
    monkeypatch.setattr(writer.os, "pwrite", pwrite)
    server.add_file("/r.bin", data=DATA)
    q = make_queue(connections_per_file=1)
    job = q.create_download_job(server.url("/r.bin"), tmp_path, sha256=sha(DATA))
    q.wait_for_job(job, 20)
    assert job.status == DownloadJobStatus.COMPLETED, job.error
    assert refused, "the direct descriptor was never used"
    assert (tmp_path / "r.bin").read_bytes() == DATA


def test_disk_full_is_a_clear_error_and_leaves_no_partial(server, make_queue, tmp_path, monkeypatch):
    real = writer._pwrite_all
    written = [0]

    def fill_disk(fd: int, data: memoryview, offset: int, stop_unaligned: bool = False) -> int:
        if written[0] >= 2**20:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, data, offset, stop_unaligned)
        written[0] += n
        return n

    monkeypatch.setattr(writer, "_pwrite_all", fill_disk)
    server.add_file("/f.bin", data=DATA)
    q = make_queue(connections_per_file=2)
    job = q.create_download_job(server.url("/f.bin"), tmp_path, sha256=sha(DATA))
    q.wait_for_job(job, 20)
    assert job.status == DownloadJobStatus.ERROR
    assert "No space left on device" in str(job.error)
    assert listing(tmp_path) == []


def test_contiguous_buffers_go_out_as_one_vectored_write(tmp_path, monkeypatch):
    if not _direct_works(tmp_path):
        pytest.skip("the temp filesystem refuses O_DIRECT")
    log = WriteLog(monkeypatch)
    w = PartWriter(tmp_path / "v.part", truncate=True, direct=True)
    os.ftruncate(w.fd, 2 * 2**20 + 100)
    views = [aligned_buffer(2**20), aligned_buffer(2**20), aligned_buffer(ALIGN)]
    for i, v in enumerate(views):
        v[:] = DATA[i * 2**20:i * 2**20 + len(v)]
    w.write_many([views[0], views[1], views[2][:100]], 0)  # a partial block ends it
    w.datasync()
    w.close()
    assert (tmp_path / "v.part").read_bytes() == DATA[:2 * 2**20 + 100]
    assert log.writes[0] == (True, 0, 2 * 2**20), "the two whole buffers in one direct call"
    assert log.writes[1:] == [(False, 2 * 2**20, 100)], "the partial block through the page cache"


def test_a_short_vectored_write_is_finished_piecewise(tmp_path, monkeypatch):
    if not _direct_works(tmp_path):
        pytest.skip("the temp filesystem refuses O_DIRECT")
    real_pwrite = os.pwrite

    def short_pwritev(fd, buffers, offset):  # the kernel may stop early (a signal, a full quota)
        return real_pwrite(fd, buffers[0][:ALIGN * 3], offset)

    monkeypatch.setattr(writer.os, "pwritev", short_pwritev)
    w = PartWriter(tmp_path / "s.part", truncate=True, direct=True)
    views = [aligned_buffer(4 * ALIGN), aligned_buffer(4 * ALIGN)]
    views[0][:], views[1][:] = DATA[:4 * ALIGN], DATA[4 * ALIGN:8 * ALIGN]
    w.write_many(views, 0)
    w.close()
    assert (tmp_path / "s.part").read_bytes() == DATA[:8 * ALIGN]


@pytest.mark.parametrize("first_fails", [False, True])
def test_written_bytes_count_in_file_order_across_writer_threads(tmp_path, monkeypatch, first_fails):
    """Two writer threads: the batch at offset 0 lands last (and may fail); the resume state
    (seg.pos) and the progress never claim bytes after a gap."""
    if not _direct_works(tmp_path):
        pytest.skip("writer threads run only with O_DIRECT")
    monkeypatch.setattr(segments, "WRITE_BATCH", 1)  # one buffer per batch: two batches in flight
    w = PartWriter(tmp_path / "o.part", truncate=True, direct=True)
    os.ftruncate(w.fd, 4 * 2**20)
    real = w.write_many
    second_done = threading.Event()

    def slow_first(views, offset):
        if offset == 0:
            assert second_done.wait(5), "the other writer never wrote"
            if first_fails:
                raise OSError(errno.EIO, "Input/output error")
        real(views, offset)
        if offset == 2**20:
            second_done.set()

    monkeypatch.setattr(w, "write_many", slow_first)
    seg = segments.Segment(0, 4 * 2**20, 0)
    data = blob(4 * 2**20, seed=7)
    pool = segments._BufferPool(2**20, 8)
    counted: list[tuple[int, int]] = []
    wb = segments._WriteBehind(w, seg, pool, None, lambda n: counted.append((seg.pos, n)))
    for i in range(4):
        buf = pool.take()
        buf[:] = data[i * 2**20:(i + 1) * 2**20]
        wb.submit(buf, i * 2**20, 2**20)
    if first_fails:
        with pytest.raises(OSError, match="Input/output"):
            wb.finish()
        assert seg.pos == 0 and counted == [], "bytes after the failed block are never claimed"
    else:
        wb.finish()
        assert [end for end, _ in counted] == [2**20, 2 * 2**20, 3 * 2**20, 4 * 2**20]
        assert (tmp_path / "o.part").read_bytes() == data
    assert len([pool.take() for _ in range(8)]) == 8, "every buffer went back to the pool"
    w.close()
