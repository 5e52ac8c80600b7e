"""Atomic file writes: readers see the old file or the new one, never half.

A file is written under a temp name in the same folder (or a given folder on
the same filesystem), flushed and fsynced, given its mode, then renamed over
the final name, or linked to it when an existing file must win.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from .errors import StorageError


@contextmanager
def atomic_file(
    path: Path, *, mode: int = 0o644, replace: bool = True, temp_dir: Path | None = None, result: list | None = None
) -> Iterator[BinaryIO]:
    """Yield a binary handle whose bytes appear at ``path`` when the block ends without error.

    ``replace=False`` keeps a file that exists already (``os.link``, so
    concurrent writers agree on the first); ``result``, when given, receives
    whether ours was placed. Any error removes the temp file and propagates.
    """
    folder = temp_dir or path.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")  # see temp_glob
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        placed = True
        if replace:
            os.rename(tmp_name, path)
        else:
            try:
                os.link(tmp_name, path)
            except FileExistsError:
                placed = False
        if result is not None:
            result.append(placed)
    finally:
        unlink_quietly(tmp_name)  # gone after a rename; the second name after a link


@contextmanager
def volume_errors(what: str) -> Iterator[None]:
    """Whatever the volume says (full, read-only, EIO…) becomes a StorageError: the task retries later."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"volume refused {what}: {exc.strerror or exc}") from exc


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644, replace: bool = True) -> bool:
    """Write ``data`` to ``path`` atomically; False when ``replace=False`` found a file there."""
    placed: list[bool] = []
    with atomic_file(path, mode=mode, replace=replace, result=placed) as handle:
        handle.write(data)
    return placed[0]


def temp_glob(path: Path) -> str:
    """The glob matching temp files of ``path`` that a killed writer left behind."""
    return f".{path.name}.*.part"


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quietly(path: str | Path) -> None:
    """Best-effort cleanup: on a volume that just failed, unlink may fail too,
    and must not replace the error being reported (stale temp files are swept later)."""
    try:
        os.unlink(path)
    except OSError:
        pass
