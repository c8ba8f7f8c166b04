"""Putting downloaded bytes into ``<dest>.part``: O_DIRECT where the filesystem takes it.

Every download is fdatasync'ed before its rename (a crash must never leave a renamed but
unwritten model).  Through the page cache that costs twice: each byte is copied into a
dirty page, and then the kernel's writeback threads push the pages out, competing on a
small machine with the socket and the sha256 for CPU (and a 1 GiB fdatasync stalls for
the whole file unless writeback was started early, which costs CPU again).  With
``O_DIRECT`` the device reads our buffer itself: one copy fewer, no dirty pages, an
fdatasync that finds almost nothing left, and a 20 GB model does not evict the user's
page cache.  ``bench/download.py`` prints the difference (``--only curl``).

A direct write needs its file offset, its length and its buffer's address aligned to the
device's logical block; :data:`ALIGN` (4 KiB) covers 512-byte and 4 KiB devices.  The
caller (:mod:`.segments`) reads into page-aligned buffers (``mmap``) so that all of a
stream's bytes qualify but the partial blocks at a segment's two ends; those, and every
write on a filesystem that refuses ``O_DIRECT`` (tmpfs, many FUSE mounts; refused at open
or at the first write with ``EINVAL``), go through the ordinary descriptor, where the
kernel is asked to start writeback as the file grows.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import mmap
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ALIGN = 4096
#: buffered bytes after which writeback of them is started (the page-cache path only)
WRITEBACK_EVERY = 16 * 2**20

_libc: Any = None


def aligned_buffer(size: int) -> memoryview:
    """A writable, page-aligned buffer of ``size`` bytes (anonymous ``mmap``)."""
    return memoryview(mmap.mmap(-1, size))


def _start_writeback(fd: int, offset: int, n: int) -> None:
    """Ask the kernel to start writing ``[offset, offset+n)`` to disk now (Linux
    ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; a no-op elsewhere), so the fdatasync
    before the rename finds little left to do instead of stalling on the whole file."""
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            fn = lib.sync_file_range
            fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
            _libc = fn
        except (OSError, AttributeError):
            _libc = False
    if _libc:
        _libc(fd, offset, n, 2)  # SYNC_FILE_RANGE_WRITE; errors only cost the optimisation


class PartWriter:
    """The descriptors of one ``.part`` file: ``fd`` (read/write, page cache) always, and a
    second ``O_DIRECT`` descriptor when ``direct`` was asked for and the filesystem has it.

    :meth:`write` is safe from several threads at once (positional writes, no shared
    offset); each call writes all of its bytes or raises.
    """

    def __init__(self, path: Path, *, truncate: bool, direct: bool) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | (os.O_TRUNC if truncate else 0), 0o644)
        self._dfd: int | None = None
        if direct and hasattr(os, "O_DIRECT"):
            try:
                self._dfd = os.open(path, os.O_WRONLY | os.O_DIRECT)
            except OSError as exc:  # EINVAL: the filesystem has no O_DIRECT
                log.debug("%s: no O_DIRECT here (%s); writing through the page cache", path, exc)
        # Cleared when a direct write is refused.  The descriptor itself stays open until
        # close(): another thread may be writing through it, and a closed number can be
        # reused at once by the next open (the sidecar's), which it would then write into.
        self._use_direct = self._dfd is not None
        self._dirty_from: dict[int, int] = {}  # page-cache path: per stream start, first unflushed offset

    @property
    def direct(self) -> bool:
        """Whether aligned writes currently go around the page cache."""
        return self._use_direct

    def write(self, data: memoryview, offset: int) -> None:
        """Write all of ``data`` at ``offset``: its whole blocks around the page cache when
        ``offset`` (and, by the caller's construction, the buffer) is aligned, the rest
        through it."""
        whole = len(data) - len(data) % ALIGN
        if self._use_direct and self._dfd is not None and not offset % ALIGN and whole:
            try:
                done = _pwrite_all(self._dfd, data[:whole], offset, stop_unaligned=True)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                log.debug("%s: O_DIRECT write refused (%s); writing through the page cache", self.path, exc)
                self._use_direct = False
                done = 0
            if done == len(data):
                return
            data, offset = data[done:], offset + done
        _pwrite_all(self.fd, data, offset)
        self._note_buffered(offset, len(data))

    def write_many(self, views: list[memoryview], offset: int) -> None:
        """Write contiguous ``views`` starting at ``offset``: the leading whole-block ones in
        one vectored direct write (one big request keeps the device busier than several
        small ones), the rest with :meth:`write`."""
        lead = 0
        while lead < len(views) and not len(views[lead]) % ALIGN:
            lead += 1
        done = 0
        if lead > 1 and self._use_direct and self._dfd is not None and hasattr(os, "pwritev") and not offset % ALIGN:
            try:
                done = os.pwritev(self._dfd, views[:lead], offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                log.debug("%s: O_DIRECT write refused (%s); writing through the page cache", self.path, exc)
                self._use_direct = False
        pos = offset
        for view in views:  # whatever the vectored write did not cover
            skip = min(len(view), max(0, offset + done - pos))
            if skip < len(view):
                self.write(view[skip:], pos + skip)
            pos += len(view)

    def datasync(self) -> None:
        """fdatasync (fsync where there is none): the bytes and the size are on disk."""
        getattr(os, "fdatasync", os.fsync)(self.fd)

    def close(self) -> None:
        """Close both descriptors (after every writer is done)."""
        self._use_direct = False
        if self._dfd is not None:
            dfd, self._dfd = self._dfd, None
            os.close(dfd)
        os.close(self.fd)

    def _note_buffered(self, offset: int, n: int) -> None:
        """Start writeback of buffered bytes every :data:`WRITEBACK_EVERY` of a run of them."""
        end = offset + n
        start = self._dirty_from.pop(offset, offset)
        if end - start >= WRITEBACK_EVERY:
            _start_writeback(self.fd, start, end - start)
        else:
            self._dirty_from[end] = start


def _pwrite_all(fd: int, data: memoryview, offset: int, stop_unaligned: bool = False) -> int:
    """pwrite until all of ``data`` is written; returns the count.  With ``stop_unaligned``
    (a direct descriptor) a short write that leaves an unaligned rest returns early."""
    done = 0
    while done < len(data):
        if stop_unaligned and done % ALIGN:
            return done
        done += os.pwrite(fd, data[done:], offset + done)
    return done
