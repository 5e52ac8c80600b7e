"""The volume: the durable source of truth nginx serves from.

    RECORDINGS_DIR/
      ab/                          one of 256 folders, by the SID's last two hex digits (worker.layout)
        RE<30 hex>ab.mp3           the verified media, served by nginx as is
        RE<30 hex>ab.mp3.json      sidecar (worker.sidecar): call SID, bytes, sha256, times
        RE<30 hex>ab.peaks.json    waveform peaks (worker.waveforms)
        CA<30 hex>ab.mp3 -> ../cd/RE….mp3
                                   call index: the call's (or a child leg's) latest
                                   recording, a relative symlink nginx follows
      .tmp/                        downloads in progress, same filesystem as above
      .state/legs/ab/CA…ab         child call leg -> parent CallSid
      .state/children/ab/CA…ab/CA… parent -> its child legs

A file appears under its final name only by an atomic rename of a complete,
verified, fsynced temp file, so nginx never serves a partial recording.
Reads go through ``layout.find`` (a volume being migrated has files at the top
level too); writes go to the file's folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from . import atomic, layout, sidecar
from .errors import IncompleteMedia, StorageError
from .sids import FORMAT, is_sid, pattern, require_format, require_index_sid, require_playable_sid, require_sid
from .stream_io import BackgroundHash, PartMd5s, Writeback

TMP_DIR = ".tmp"
HEAD_BYTES = 44  # a WAV header: enough to check the format and read the channels
LEGS, CHILDREN = layout.STATE_SUBDIRS
_MEDIA_NAME = re.compile(rf"({pattern('RE')})\.({FORMAT})")


@dataclass(frozen=True)
class StoredFile:
    """What a completed download left on the volume."""

    path: Path
    bytes: int
    sha256: str
    part_md5s: tuple[bytes, ...] = ()  # the MD5 of each part_bytes window, when asked for
    channels: int | None = None  # from the file's header (channels_in)


def media_path(root: Path, sid: str, fmt: str) -> Path:
    """Where a recording (RE…) or call index link (CA…) is read from."""
    return layout.find(root, require_playable_sid(sid), f"{sid}.{require_format(fmt)}")


def _new_media_path(root: Path, sid: str, fmt: str) -> Path:
    """Where a recording or call link is written: its folder, created if new."""
    final = layout.path(root, require_playable_sid(sid), f"{sid}.{require_format(fmt)}")
    layout.ensure_folder(final)
    return final


def is_cached(root: Path, sid: str, fmt: str) -> bool:
    """True when the recording, or the call's link to one, is on the volume."""
    return resolve_link(root, sid, fmt) is not None


def media_name(name: str) -> tuple[str, str] | None:
    """(RecordingSid, format) when ``name`` is a recording's file name on the volume."""
    match = _MEDIA_NAME.fullmatch(name)
    return (match[1], match[2]) if match else None


def channels_in(fmt: str, head: bytes) -> int | None:
    """Channels of a file from its first 44 bytes: WAV's fmt chunk, or an MP3
    frame header's channel mode (3 is mono); None when the head does not say."""
    if fmt == "wav" and len(head) >= 24 and head[12:16] == b"fmt ":
        return int.from_bytes(head[22:24], "little") or None
    if fmt == "mp3" and len(head) >= 4 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0:
        return 1 if head[3] >> 6 == 3 else 2
    return None  # e.g. an MP3 starting with an ID3 tag


def file_channels(path: Path, fmt: str) -> int | None:
    """``channels_in`` of a file already written (a staged or rewritten one)."""
    try:
        with path.open("rb") as handle:
            return channels_in(fmt, handle.read(HEAD_BYTES))
    except OSError:
        return None


def looks_like(fmt: str, head: bytes) -> bool:
    """True when ``head`` starts like a file of ``fmt`` (MP3 frame/ID3, RIFF/WAVE)."""
    if fmt == "mp3":
        return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def write_media(
    root: Path,
    recording_sid: str,
    fmt: str,
    chunks: Iterable[bytes],
    expected_bytes: int,
    on_progress: Callable[[int], None] = lambda written: None,
    part_bytes: int | None = None,
) -> StoredFile:
    """Stream ``chunks`` to a temp file, verify, fsync and rename into place.

    With ``part_bytes``, also the MD5 of each window of that size: what a
    multipart upload of the file sends as each part's Content-MD5.
    """
    require_sid(recording_sid, "RE")
    written, head = 0, b""
    try:
        final = _new_media_path(root, recording_sid, fmt)
        # The hash threads finish the tail while the file is fsynced and renamed.
        with ExitStack() as hashing:
            digest = hashing.enter_context(BackgroundHash(hashlib.sha256()))
            parts = hashing.enter_context(BackgroundHash(PartMd5s(part_bytes))) if part_bytes else None
            hashers = [hasher for hasher in (digest, parts) if hasher]
            with atomic.atomic_file(final, temp_dir=root / TMP_DIR) as handle:
                writeback = Writeback(handle.fileno())
                for chunk in chunks:
                    if len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                        if len(head) >= 12 and not looks_like(fmt, head):
                            raise IncompleteMedia(f"body of {recording_sid} does not start like {fmt}")
                    handle.write(chunk)
                    for hasher in hashers:
                        hasher.update(chunk)
                    written += len(chunk)
                    writeback.written(written)
                    on_progress(written)
                if written != expected_bytes:
                    raise IncompleteMedia(f"got {written} of {expected_bytes} bytes for {recording_sid}")
                if not looks_like(fmt, head):
                    raise IncompleteMedia(f"body of {recording_sid} does not start like {fmt}")
            sha256 = digest.result().hexdigest()
            part_md5s = tuple(parts.result().finish()) if parts else ()
        atomic.fsync_dir(final.parent)
    except OSError as exc:
        if isinstance(exc, ConnectionError | TimeoutError):  # the chunks' source, not the volume
            raise
        raise StorageError(f"volume refused {recording_sid}: {exc.strerror or exc}") from exc
    return StoredFile(path=final, bytes=written, sha256=sha256, part_md5s=part_md5s, channels=channels_in(fmt, head))


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file already on the volume (a sidecar's ``sha256``)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def resolve_link(root: Path, sid: str, fmt: str) -> str | None:
    """The RecordingSid a playable SID points at on the volume, or None."""
    name = f"{require_playable_sid(sid)}.{require_format(fmt)}"
    if sid.startswith("RE"):
        return sid if layout.exists(root, sid, name) else None
    try:
        target = layout.readlink(root, sid, name)
    except OSError:
        return None
    recording_sid = Path(target).name.rsplit(".", 1)[0]
    # By the SID the link names, not its literal target: a link written before the
    # volume's migration still names the recording that has moved into its folder.
    if is_sid(recording_sid, "RE") and layout.exists(root, recording_sid, f"{recording_sid}.{fmt}"):
        return recording_sid
    return None


def link_call(root: Path, call_sid: str, recording_sid: str, fmt: str) -> bool:
    """Point the call's (or conference's) index link at a recording unless a newer one holds it.

    Several recordings on one call: the link follows the latest ``recorded_at``.
    """
    require_index_sid(call_sid)
    current = resolve_link(root, call_sid, fmt)
    if current == recording_sid:
        return False
    if current is not None and _recorded_at(root, current, fmt) > _recorded_at(root, recording_sid, fmt):
        return False
    tmp = root / TMP_DIR / f"{call_sid}.{fmt}.{os.getpid()}.{time.monotonic_ns()}.link"
    try:
        with atomic.volume_errors(f"the link of {call_sid}"):
            link = _new_media_path(root, call_sid, fmt)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            target = layout.adopt(root, require_sid(recording_sid, "RE"), f"{recording_sid}.{fmt}")
            os.symlink(os.path.relpath(target, link.parent), tmp)
            os.rename(tmp, link)
    except StorageError:
        atomic.unlink_quietly(tmp)
        raise
    return True


def _recorded_at(root: Path, recording_sid: str, fmt: str) -> str:
    found = sidecar.read(root, recording_sid, fmt)
    return str(found.recorded_at or "") if found else ""


def record_leg(root: Path, child_sid: str, parent_sid: str) -> None:
    """Remember durably that ``child_sid`` is a leg of ``parent_sid``."""
    legs = layout.path(root, require_sid(child_sid, "CA"), child_sid, LEGS)
    if parent_of(root, child_sid) != parent_sid:
        layout.ensure_folder(legs)
        with atomic.volume_errors(legs.name):
            atomic.write_bytes(legs, json.dumps({"parent_call_sid": require_sid(parent_sid, "CA")}).encode())
    children = layout.path(root, parent_sid, parent_sid, CHILDREN)
    children.mkdir(parents=True, exist_ok=True)
    (children / child_sid).touch()


def parent_of(root: Path, child_sid: str) -> str | None:
    """The parent CallSid recorded for a child leg, or None."""
    try:
        data = json.loads(layout.read_bytes(root, require_sid(child_sid, "CA"), child_sid, LEGS))
    except (FileNotFoundError, ValueError):
        return None
    return data.get("parent_call_sid")


def children_of(root: Path, parent_sid: str) -> list[str]:
    """Child legs recorded for a parent call (none for a conference)."""
    if is_sid(parent_sid, "CF"):
        return []
    found: set[str] = set()
    # Both places until the volume is migrated: a leg recorded since went into the folder.
    for folder in layout.candidates(root, require_sid(parent_sid, "CA"), parent_sid, CHILDREN):
        try:
            found.update(p.name for p in folder.iterdir())
        except FileNotFoundError:
            continue
    return sorted(found)


def remove_partial(root: Path, recording_sid: str, fmt: str) -> int:
    """Delete temp files a dead download of this recording left behind."""
    removed = 0
    final = media_path(root, require_sid(recording_sid, "RE"), fmt)
    # Versions before atomic.py named them without the leading dot; a volume may still hold one.
    for glob in (atomic.temp_glob(final), f"{final.name}.*.part"):
        for path in (root / TMP_DIR).glob(glob):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def remove_stale_temp(root: Path, older_than_seconds: float) -> int:
    """Delete temp files older than the given age (left by killed downloads)."""
    removed, cutoff = 0, time.time() - older_than_seconds
    for path in (root / TMP_DIR).glob("*"):
        try:
            if path.lstat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
