"""Put recordings straight onto RECORDINGS_DIR, laid out as worker/storage.py does.

nginx serves any ``RE<32 hex>.mp3`` in its SID's folder (worker.layout), and the API reads the
sidecar and follows call links, so a bench volume needs no downloads: it is
written here directly. The bytes are valid MP3 frames from
``simulator.audio`` (the same stream the simulator serves).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from simulator.audio import mp3_chunks
from worker import layout, signing

# Row 1's static anchor serves ``/recordings/RE….mp3`` from one plain folder (no regex to find the
# SID's folder): write_large hard-links each file there too, the same inode and page cache.
STATIC_DIR = ".bench-static"
SMALL_MP3_BYTES = 4170  # row 8 has always used this size: seven whole frames and part of an eighth
LONG_TTL = 7 * 24 * 3600  # signed URLs for load runs must not expire mid-run


def new_sid(prefix: str) -> str:
    """A random, well-formed Twilio SID."""
    return prefix + secrets.token_hex(16)


def mp3_bytes(size: int, seed: str) -> bytes:
    """``size`` bytes of the simulator's MP3 stream for ``seed``."""
    return b"".join(mp3_chunks(size, seed))


def write_file(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` in three syscalls (no buffering layer): bench volumes hold millions."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def prepare(root: Path) -> None:
    """Create the volume's 256 folders and its layout marker (a volume fanned out from birth)."""
    for number in range(16**layout.FAN_DIGITS):
        (root / f"{number:0{layout.FAN_DIGITS}x}").mkdir(parents=True, exist_ok=True)
    layout.migrate(root)


def at(root: Path, sid: str, name: str) -> Path:
    """Where ``name``, a file of ``sid``, goes (its folder, made by ``prepare``)."""
    return layout.path(root, sid, name)


def link(root: Path, call_sid: str, recording_sid: str) -> None:
    """The call's ``CA….mp3`` link to its recording, relative as storage.link_call writes it."""
    target = f"../{layout.folder_of(recording_sid)}/{recording_sid}.mp3"
    os.symlink(target, at(root, call_sid, f"{call_sid}.mp3"))


def sidecar(recording_sid: str, call_sid: str, account_sid: str, data: bytes, digest: str, when: str) -> bytes:
    """The sidecar JSON worker/fetch.py writes next to a verified recording."""
    return json.dumps(
        {
            "recording_sid": recording_sid,
            "call_sid": call_sid,
            "account_sid": account_sid,
            "format": "mp3",
            "bytes": len(data),
            "sha256": digest,
            "duration": str(max(1, len(data) // 16000)),
            "recorded_at": when,
            "downloaded_at": when,
        },
        sort_keys=True,
    ).encode()


def write_large(root: Path, count: int, size: int) -> list[str]:
    """``count`` recordings of ``size`` bytes, each with its own content (no sidecars), also in STATIC_DIR."""
    sids = []
    prepare(root)
    (root / STATIC_DIR).mkdir(exist_ok=True)
    for _ in range(count):
        sid = new_sid("RE")
        write_file(at(root, sid, f"{sid}.mp3"), mp3_bytes(size, sid))
        os.link(at(root, sid, f"{sid}.mp3"), root / STATIC_DIR / f"{sid}.mp3")
        sids.append(sid)
    return sids


def write_small(root: Path, count: int, account_sid: str, threads: int = 4) -> list[str]:
    """``count`` small recordings with sidecars and call links, written fast.

    Every recording shares one 4170-byte MP3 body (content does not matter
    for serving or for the API); per recording this is three syscall-cheap
    entries: the media, its sidecar, and the ``CA….mp3 -> RE….mp3`` link.
    File creation is latency-bound on a VM disk, so a few threads overlap it.
    """
    data = mp3_bytes(SMALL_MP3_BYTES, "bench-small")
    digest = hashlib.sha256(data).hexdigest()
    when = datetime.now(UTC).isoformat(timespec="seconds")
    pairs = [(new_sid("RE"), new_sid("CA")) for _ in range(count)]
    prepare(root)

    def write(part: list[tuple[str, str]]) -> None:
        for sid, call in part:
            write_file(at(root, sid, f"{sid}.mp3"), data)
            write_file(at(root, sid, f"{sid}.mp3.json"), sidecar(sid, call, account_sid, data, digest, when))
            link(root, call, sid)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, [pairs[i::threads] for i in range(threads)]))
    return [sid for sid, _ in pairs]


def signed_paths(sids: list[str], key: str) -> list[str]:
    """Signed playback paths (relative URLs) valid for LONG_TTL."""
    return [signing.signed_url(sid, "mp3", key, LONG_TTL) for sid in sids]
