"""Keep a download's hashing and disk flushing off its critical path.

A download receives a chunk, writes it, hashes it, and at the end fsyncs the
file. Done one after the other, a 200 MiB recording spends as long hashing and
waiting for the disk as receiving. Here the digests (the sha256, and in bucket
mode each upload part's MD5, so the upload need not read the file twice) run in
helper threads one chunk behind (hashlib releases the GIL), and the kernel is asked to start
writing each few MiB back as soon as they are written, so the final fsync only
waits for the tail. Both are bounded: one chunk in each hasher, no extra memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor

log = logging.getLogger(__name__)

WRITEBACK_BYTES = 8 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start writeback of dirty pages, do not wait


def _load_sync_file_range():
    """libc's sync_file_range (Linux), or None where there is none."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        func = libc.sync_file_range
    except (OSError, AttributeError, TypeError):  # TypeError: CDLL(None) on Windows
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    func.restype = ctypes.c_int
    return func


_sync_file_range = _load_sync_file_range()


class Writeback:
    """Starts writeback of every WRITEBACK_BYTES written to ``fd``.

    Only a hint to the kernel: durability still comes from the caller's fsync,
    and a failure here (unsupported filesystem) just turns the hint off.
    """

    def __init__(self, fd: int, every: int = WRITEBACK_BYTES):
        self.fd, self.every, self.started = fd, every, 0
        self.enabled = _sync_file_range is not None

    def written(self, total: int) -> None:
        """Tell how many bytes are written so far; flush behind them."""
        if not self.enabled or total - self.started < self.every:
            return
        if _sync_file_range(self.fd, self.started, total - self.started, _SYNC_FILE_RANGE_WRITE) != 0:
            self.enabled = False
            log.debug("writeback.off", extra={"errno": ctypes.get_errno()})
            return
        self.started = total


class PartMd5s:
    """MD5 of each ``part_bytes`` window of a stream: the Content-MD5 of each part of a multipart upload."""

    def __init__(self, part_bytes: int):
        self.part_bytes, self.digests = part_bytes, []
        self._current, self._filled = hashlib.md5(usedforsecurity=False), 0

    def update(self, chunk: bytes | memoryview) -> None:
        view = memoryview(chunk)
        while view:
            take = min(len(view), self.part_bytes - self._filled)
            self._current.update(view[:take])
            self._filled, view = self._filled + take, view[take:]
            if self._filled == self.part_bytes:
                self._close_part()

    def finish(self) -> list[bytes]:
        """Every part's digest (the last part may be short)."""
        if self._filled:
            self._close_part()
        return self.digests

    def _close_part(self) -> None:
        self.digests.append(self._current.digest())
        self._current, self._filled = hashlib.md5(usedforsecurity=False), 0


class BackgroundHash:
    """Feeds a stream to a hash in a helper thread one chunk behind (hashlib releases the GIL)."""

    def __init__(self, target) -> None:
        self.target = target
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hash")
        self._pending: Future | None = None

    def update(self, chunk: bytes) -> None:
        """Queue ``chunk`` once the previous one is hashed (bounded memory, order kept)."""
        self._wait()
        self._pending = self._pool.submit(self.target.update, chunk)

    def result(self):
        """The hash, fed every chunk given so far."""
        self._wait()
        return self.target

    def close(self) -> None:
        """Stop the helper thread (waits for the chunk in flight)."""
        self._pool.shutdown(wait=True)

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def __enter__(self) -> BackgroundHash:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
