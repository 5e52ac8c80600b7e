"""Where a verified recording is kept: the volume (default) or a bucket (STORAGE_URL).

Both tiers receive the media the same way: ``storage.write_media`` streams,
verifies and fsyncs it under ``staging``. On the volume that is already its
final place; for a bucket it is a local file that is uploaded (checksummed,
never partial) and then removed. ``fetch`` talks to a tier only through the
methods below, so the lock, the checks before and after it, and the Twilio
side are the same in both modes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from . import calls, objectstore, sidecar, storage
from .config import Settings
from .objectstore import ETAG_KEY, ObjectStore
from .sidecar import Sidecar
from .sids import is_index_sid
from .storage import StoredFile

log = logging.getLogger(__name__)

STAGING_DIR = ".staging"


class Tier(Protocol):
    """What fetch needs of the place recordings are kept."""

    staging: Path
    part_bytes: int | None  # the download also hashes windows of this size (an upload's parts)
    indexed: bool  # what it keeps is counted in the volume's index (worker.volume_index) and evicted from it

    def size(self, recording_sid: str, fmt: str) -> int | None:
        """Bytes of the kept recording, None when it is not kept."""

    def is_complete(self, recording_sid: str, fmt: str) -> bool:
        """True when the recording and its facts are kept."""

    def resolve(self, sid: str, fmt: str) -> str | None:
        """The kept RecordingSid a playable SID (RE… or CA…) plays, or None."""

    def facts(self, recording_sid: str, fmt: str) -> Sidecar | None:
        """The kept recording's facts, or None."""

    def sweep(self, older_than_seconds: float) -> int:
        """Remove what killed writers left behind (temp files; open uploads); how many."""

    def every(self) -> Iterator[Sidecar]:
        """The facts of every kept recording."""

    def verify(self, facts: Sidecar) -> bool:
        """True when what is kept still matches its facts (size and sha256), re-read now."""

    def mark(self, facts: Sidecar) -> None:
        """Keep changed facts (pinned, twilio_deleted_at) for a kept recording."""

    def keep(self, stored: StoredFile, facts: Sidecar) -> None:
        """Make a verified file under ``staging`` the kept recording, with its facts."""

    def staged(self, recording_sid: str, fmt: str) -> StoredFile | None:
        """A verified download still waiting under ``staging`` to be kept (its keep failed), or None."""

    def link_call(
        self, settings: Settings, call_sid: str, recording_sid: str, fmt: str, recorded_at: str | None
    ) -> None:
        """Point the call (and its known legs) at the recording unless a later one holds it."""


class VolumeTier:
    """RECORDINGS_DIR: media, sidecar and call links side by side; nginx serves the files."""

    def __init__(self, settings: Settings):
        self.staging = settings.recordings_dir
        self.part_bytes = None
        self.indexed = True

    def size(self, recording_sid: str, fmt: str) -> int | None:
        try:
            return storage.media_path(self.staging, recording_sid, fmt).stat().st_size
        except FileNotFoundError:
            return None

    def is_complete(self, recording_sid: str, fmt: str) -> bool:
        return storage.is_cached(self.staging, recording_sid, fmt) and sidecar.exists(self.staging, recording_sid, fmt)

    def resolve(self, sid: str, fmt: str) -> str | None:
        return storage.resolve_link(self.staging, sid, fmt)

    def facts(self, recording_sid: str, fmt: str) -> Sidecar | None:
        return sidecar.read(self.staging, recording_sid, fmt)

    def sweep(self, older_than_seconds: float) -> int:
        return storage.remove_stale_temp(self.staging, older_than_seconds)

    def staged(self, recording_sid: str, fmt: str) -> StoredFile | None:
        return None  # on the volume, the staged file is the kept one

    def every(self) -> Iterator[Sidecar]:
        return sidecar.every(self.staging)

    def verify(self, facts: Sidecar) -> bool:
        path = storage.media_path(self.staging, facts.recording_sid, facts.format)
        return path.exists() and storage.file_sha256(path) == facts.sha256

    def mark(self, facts: Sidecar) -> None:
        sidecar.write(self.staging, facts)

    def keep(self, stored: StoredFile, facts: Sidecar) -> None:
        sidecar.write(self.staging, facts)  # the media is in place already

    def link_call(
        self, settings: Settings, call_sid: str, recording_sid: str, fmt: str, recorded_at: str | None
    ) -> None:
        calls.link_call_and_legs(settings, call_sid, recording_sid, fmt)  # orders by the sidecars


class BucketTier:
    """An S3-compatible bucket: the object carries the sidecar's facts as its metadata."""

    def __init__(self, settings: Settings, store: ObjectStore):
        self.staging = settings.recordings_dir / STAGING_DIR
        self.store = store
        self.part_bytes = store.part_bytes
        self.indexed = False  # the bucket keeps everything; nginx bounds each host's edge cache

    def _intact(self, recording_sid: str, fmt: str) -> dict | None:
        """The object's HEAD when it is there and its bytes are the ones uploaded; a changed one is logged."""
        found = self.store.head(recording_sid, fmt)
        if found is not None and not objectstore.intact(found):
            log.error(
                "object.checksum_mismatch",
                extra={"recording_sid": recording_sid, "format": fmt, "etag": found["etag"]},
            )
            return None  # not kept: the next fetch asks Twilio again and replaces it
        return found

    def size(self, recording_sid: str, fmt: str) -> int | None:
        found = self._intact(recording_sid, fmt)
        return found["bytes"] if found else None

    def is_complete(self, recording_sid: str, fmt: str) -> bool:
        return self.size(recording_sid, fmt) is not None

    def resolve(self, sid: str, fmt: str) -> str | None:
        recording_sid = self.store.resolve_call(sid, fmt) if is_index_sid(sid) else sid
        return recording_sid if recording_sid and self.is_complete(recording_sid, fmt) else None

    def facts(self, recording_sid: str, fmt: str) -> Sidecar | None:
        found = self.store.head(recording_sid, fmt)
        if found is None:
            return None
        meta = {name.replace("-", "_"): value for name, value in found["metadata"].items()}
        known = {k: v for k, v in meta.items() if k in sidecar.FIELDS and k not in ("recording_sid", "format", "bytes")}
        if "bytes" in meta and meta["bytes"] != str(found["bytes"]):
            log.error("object.size_mismatch", extra={"recording_sid": recording_sid, "metadata": meta["bytes"]})
        if "pinned" in known:
            known["pinned"] = known["pinned"] == "True"
        if "channels" in known:  # metadata is text
            known["channels"] = int(known["channels"]) if known["channels"].isdigit() else None
        return Sidecar(recording_sid=recording_sid, format=fmt, bytes=found["bytes"], **known)

    def sweep(self, older_than_seconds: float) -> int:
        removed = storage.remove_stale_temp(self.staging, older_than_seconds)
        return removed + self.store.abort_stale_uploads(older_than_seconds)

    def every(self) -> Iterator[Sidecar]:
        for recording_sid, fmt in self.store.recordings():
            facts = self.facts(recording_sid, fmt)
            if facts is not None:
                yield facts

    def verify(self, facts: Sidecar) -> bool:
        # The store's own checksum of the bytes it holds now (the ETag), re-read,
        # against the one recorded from the verified file at upload.
        found = self.store.head(facts.recording_sid, facts.format)
        if found is None:
            return False
        meta = found["metadata"]
        return (
            found["etag"] == meta.get(ETAG_KEY)
            and found["bytes"] == facts.bytes
            and bool(facts.sha256)
            and meta.get("sha256") == facts.sha256
        )

    def mark(self, facts: Sidecar) -> None:
        found = self.store.head(facts.recording_sid, facts.format) or {"metadata": {}}
        self.store.replace_metadata(facts.recording_sid, facts.format, {**found["metadata"], **object_metadata(facts)})

    def staged(self, recording_sid: str, fmt: str) -> StoredFile | None:
        path = storage.media_path(self.staging, recording_sid, fmt)
        if not path.is_file():
            return None
        return StoredFile(path=path, bytes=path.stat().st_size, sha256=storage.file_sha256(path))

    def keep(self, stored: StoredFile, facts: Sidecar) -> None:
        started = time.monotonic()
        # A failed upload leaves the verified file staged: the retry uploads it
        # without asking Twilio again (one media GET per recording).
        etag = self.store.upload(
            stored.path, facts.recording_sid, facts.format, object_metadata(facts), part_md5s=stored.part_md5s
        )
        stored.path.unlink(missing_ok=True)
        log.info(
            "upload.done",
            extra={
                "recording_sid": facts.recording_sid,
                "format": facts.format,
                "bytes": stored.bytes,
                "ms": round((time.monotonic() - started) * 1000, 1),
                "key": self.store.media_key(facts.recording_sid, facts.format),
                "etag": etag,
            },
        )

    def link_call(
        self, settings: Settings, call_sid: str, recording_sid: str, fmt: str, recorded_at: str | None
    ) -> None:
        for sid in [call_sid, *storage.children_of(settings.recordings_dir, call_sid)]:
            self.store.link_call(sid, recording_sid, fmt, recorded_at)


def object_metadata(facts: Sidecar) -> dict[str, str]:
    """The sidecar's facts as S3 user metadata (x-amz-meta-*: ASCII strings, dashes for underscores)."""
    return {
        name.replace("_", "-"): str(value)
        for name, value in facts.as_dict().items()
        if value is not None and name not in ("recording_sid", "format")  # the object's key says these
    }


def for_settings(settings: Settings, store: ObjectStore | None = None) -> Tier:
    """The tier STORAGE_URL selects; ``store`` reuses a process's client."""
    if settings.bucket is None:
        return VolumeTier(settings)
    return BucketTier(settings, store or ObjectStore(settings.bucket))
