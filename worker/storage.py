"""The volume layout: the durable source of truth nginx serves from.

    RECORDINGS_DIR/
      RE<32 hex>.mp3             the verified media, served by nginx as is
      RE<32 hex>.mp3.json        sidecar: call SID, bytes, sha256, format, times
      CA<32 hex>.mp3 -> RE….mp3  call index: the call's (or a child leg's) latest
                                 recording, a relative symlink nginx follows
      .tmp/                      downloads in progress, same filesystem as above
      .state/legs/CA…            child call leg -> parent CallSid
      .state/children/CA…/CA…    parent -> its child legs

A file appears under its final name only by an atomic rename of a complete,
verified, fsynced temp file, so nginx never serves a partial recording.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import IncompleteMedia, StorageError
from .sids import require_format, require_playable_sid, require_sid
from .stream_io import BackgroundSha256, Writeback

TMP_DIR = ".tmp"


@dataclass(frozen=True)
class StoredFile:
    """What a completed download left on the volume."""

    path: Path
    bytes: int
    sha256: str


def media_path(root: Path, sid: str, fmt: str) -> Path:
    """Final path of a recording (RE…) or call index link (CA…)."""
    return root / f"{require_playable_sid(sid)}.{require_format(fmt)}"


def sidecar_path(root: Path, recording_sid: str, fmt: str) -> Path:
    """Path of the metadata sidecar next to a recording."""
    return root / f"{require_sid(recording_sid, 'RE')}.{require_format(fmt)}.json"


def is_cached(root: Path, sid: str, fmt: str) -> bool:
    """True when the recording, or the call's link to one, is on the volume."""
    return media_path(root, sid, fmt).exists()


def looks_like(fmt: str, head: bytes) -> bool:
    """True when ``head`` starts like a file of ``fmt`` (MP3 frame/ID3, RIFF/WAVE)."""
    if fmt == "mp3":
        return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
    return head[:4] == b"RIFF" and head[8:12] == b"WAVE"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_media(
    root: Path,
    recording_sid: str,
    fmt: str,
    chunks: Iterable[bytes],
    expected_bytes: int,
    on_progress: Callable[[int], None] = lambda written: None,
) -> StoredFile:
    """Stream ``chunks`` to a temp file, verify, fsync and rename into place."""
    final = media_path(root, require_sid(recording_sid, "RE"), fmt)
    tmp_dir = root / TMP_DIR
    written, head = 0, b""
    with _volume_errors(f"a temp file for {recording_sid}"):  # read-only, full, out of inodes, not a folder
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix=f"{recording_sid}.{fmt}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle, BackgroundSha256() as digest:
            writeback = Writeback(fd)
            for chunk in chunks:
                if len(head) < 12:
                    head += chunk[: 12 - len(head)]
                    if len(head) >= 12 and not looks_like(fmt, head):
                        raise IncompleteMedia(f"body of {recording_sid} does not start like {fmt}")
                handle.write(chunk)
                digest.update(chunk)
                written += len(chunk)
                writeback.written(written)
                on_progress(written)
            if written != expected_bytes:
                raise IncompleteMedia(f"got {written} of {expected_bytes} bytes for {recording_sid}")
            if not looks_like(fmt, head):
                raise IncompleteMedia(f"body of {recording_sid} does not start like {fmt}")
            handle.flush()
            os.fsync(handle.fileno())
            sha256 = digest.hexdigest()
        os.chmod(tmp_name, 0o644)
        os.rename(tmp_name, final)
        _fsync_dir(root)
    except OSError as exc:
        _unlink_quietly(tmp_name)
        if isinstance(exc, ConnectionError | TimeoutError):  # the chunks' source, not the volume
            raise
        raise StorageError(f"volume refused {recording_sid}: {exc.strerror or exc}") from exc
    except BaseException:
        _unlink_quietly(tmp_name)
        raise
    return StoredFile(path=final, bytes=written, sha256=sha256)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file already on the volume (a sidecar's ``sha256``)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


@contextmanager
def _volume_errors(what: str) -> Iterator[None]:
    """Whatever the volume says (full, read-only, EIO…) becomes a StorageError: the task retries later."""
    try:
        yield
    except OSError as exc:
        raise StorageError(f"volume refused {what}: {exc.strerror or exc}") from exc


def _unlink_quietly(path: str | Path) -> None:
    """Best-effort cleanup: on a volume that just failed, unlink may fail too,
    and must not replace the error being reported (stale temp files are swept later)."""
    try:
        os.unlink(path)
    except OSError:
        pass


def write_json_atomically(path: Path, data: dict, replace: bool = True) -> bool:
    """Write a small JSON file so readers see the old or the new one, never half.

    With ``replace=False`` an existing file is kept; returns whether ``data`` was written.
    """
    with _volume_errors(path.name):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with _volume_errors(path.name):
            with os.fdopen(fd, "w") as handle:
                json.dump(data, handle, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_name, 0o644)
            if replace:
                os.rename(tmp_name, path)
                return True
            try:
                os.link(tmp_name, path)
            except FileExistsError:  # someone wrote it meanwhile
                return False
            return True
    finally:
        _unlink_quietly(tmp_name)  # gone after a rename; the second name after a link


def read_sidecar(root: Path, recording_sid: str, fmt: str) -> dict | None:
    """The sidecar of a cached recording, or None."""
    try:
        return json.loads(sidecar_path(root, recording_sid, fmt).read_text())
    except (FileNotFoundError, ValueError):
        return None


def resolve_link(root: Path, sid: str, fmt: str) -> str | None:
    """The RecordingSid a playable SID points at on the volume, or None."""
    path = media_path(root, sid, fmt)
    if sid.startswith("RE"):
        return sid if path.exists() else None
    try:
        target = os.readlink(path)
    except OSError:
        return None
    recording_sid = Path(target).name.rsplit(".", 1)[0]
    return recording_sid if (root / target).exists() else None


def link_call(root: Path, call_sid: str, recording_sid: str, fmt: str) -> bool:
    """Point the call's index link at a recording unless a newer one holds it.

    Several recordings on one call: the link follows the latest ``recorded_at``.
    """
    link = media_path(root, require_sid(call_sid, "CA"), fmt)
    new = read_sidecar(root, recording_sid, fmt) or {}
    current = resolve_link(root, call_sid, fmt)
    if current == recording_sid:
        return False
    if current is not None:
        old = read_sidecar(root, current, fmt) or {}
        if str(old.get("recorded_at", "")) > str(new.get("recorded_at", "")):
            return False
    tmp = root / TMP_DIR / f"{call_sid}.{fmt}.{os.getpid()}.{time.monotonic_ns()}.link"
    try:
        with _volume_errors(f"the link of {call_sid}"):
            tmp.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(f"{recording_sid}.{fmt}", tmp)
            os.rename(tmp, link)
    except StorageError:
        _unlink_quietly(tmp)
        raise
    return True


def record_leg(root: Path, child_sid: str, parent_sid: str) -> None:
    """Remember durably that ``child_sid`` is a leg of ``parent_sid``."""
    state = root / ".state"
    legs = state / "legs" / require_sid(child_sid, "CA")
    if parent_of(root, child_sid) != parent_sid:
        write_json_atomically(legs, {"parent_call_sid": require_sid(parent_sid, "CA")})
    children = state / "children" / parent_sid
    children.mkdir(parents=True, exist_ok=True)
    (children / child_sid).touch()


def parent_of(root: Path, child_sid: str) -> str | None:
    """The parent CallSid recorded for a child leg, or None."""
    try:
        data = json.loads((root / ".state" / "legs" / require_sid(child_sid, "CA")).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return data.get("parent_call_sid")


def children_of(root: Path, parent_sid: str) -> list[str]:
    """Child legs recorded for a parent call."""
    folder = root / ".state" / "children" / require_sid(parent_sid, "CA")
    try:
        return sorted(p.name for p in folder.iterdir())
    except FileNotFoundError:
        return []


def remove_partial(root: Path, recording_sid: str, fmt: str) -> int:
    """Delete temp files a dead download of this recording left behind."""
    removed = 0
    for path in (root / TMP_DIR).glob(f"{require_sid(recording_sid, 'RE')}.{require_format(fmt)}.*.part"):
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
