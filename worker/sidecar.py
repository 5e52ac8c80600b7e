"""The sidecar: what the service knows about one recording on the volume.

``RE….mp3.json`` sits beside the media it describes, in its SID's folder
(``worker.layout``). It is
written once the media is verified (fetch), marked ``pinned`` and
``twilio_deleted_at`` by retention, and read by the API, eviction and the call
index. This module owns its fields, its name and its reading and writing;
nothing here talks to Twilio.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from . import atomic, layout
from .sids import FORMATS, is_sid, require_format, require_sid

SUFFIX = ".json"
# Written only once set, so a sidecar nobody pinned reads as it always did.
_ONLY_WHEN_SET = (
    "pinned",
    "twilio_deleted_at",
    "conference_sid",
    "channels",
    "duration_s",
    "talk_s",
    "silence_s",
    "peaks",
    "peaks_error",
)


@dataclass(frozen=True)
class Sidecar:
    """Facts about one verified recording file."""

    recording_sid: str
    format: str
    bytes: int | None = None
    sha256: str | None = None
    call_sid: str | None = None
    conference_sid: str | None = None  # a conference's recording: no call leg
    channels: int | None = None  # as stored (RECORDING_CHANNELS), read from the file's header
    account_sid: str | None = None
    duration: str | int | None = None  # as Twilio gave it
    recorded_at: str | None = None  # ISO 8601 UTC: orders a call's recordings
    downloaded_at: str | None = None  # ISO 8601 UTC
    pinned: bool = False  # Twilio's copy is (being) deleted: never evict
    twilio_deleted_at: str | None = None
    # From the decoded audio (worker.waveforms), once its peaks are computed:
    duration_s: float | None = None
    talk_s: list | None = None  # seconds of talk per channel
    silence_s: list | None = None
    peaks: str | None = None  # "ready", or "unavailable" (undecodable: peaks_error says why)
    peaks_error: str | None = None
    # Keys this version does not know (a newer writer's) survive a rewrite.
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_pinned(self) -> bool:
        """True when this file may be the only copy left."""
        return self.pinned or bool(self.twilio_deleted_at)

    def marked(self, **changes: object) -> Sidecar:
        """A copy with ``changes`` (``pinned=True``, ``twilio_deleted_at=…``)."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """The JSON object written to disk."""
        known = {k: v for k, v in asdict(self).items() if k != "extra" and (k not in _ONLY_WHEN_SET or v)}
        return {**self.extra, **known}


FIELDS = frozenset(f.name for f in fields(Sidecar)) - {"extra"}


def path(root: Path, recording_sid: str, fmt: str) -> Path:
    """Path of the sidecar next to a recording (where it is read)."""
    return layout.find(root, require_sid(recording_sid, "RE"), _name(recording_sid, fmt))


def _name(recording_sid: str, fmt: str) -> str:
    return f"{recording_sid}.{require_format(fmt)}{SUFFIX}"


def read(root: Path, recording_sid: str, fmt: str) -> Sidecar | None:
    """The sidecar of a cached recording, or None when absent or not a JSON object.

    Fields it lacks read as unknown (None), so a partial sidecar still says
    what it does say (``pinned`` above all).
    """
    try:
        data = json.loads(layout.read_bytes(root, require_sid(recording_sid, "RE"), _name(recording_sid, fmt)))
    except (FileNotFoundError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    known = {k: v for k, v in data.items() if k in FIELDS}
    known.update(recording_sid=recording_sid, format=fmt)  # its name says which recording it describes
    return Sidecar(**known, extra={k: v for k, v in data.items() if k not in FIELDS})


def write(root: Path, sidecar: Sidecar, replace: bool = True) -> bool:
    """Write atomically; with ``replace=False`` a sidecar already there wins. True when written."""
    target = layout.path(root, require_sid(sidecar.recording_sid, "RE"), _name(sidecar.recording_sid, sidecar.format))
    with atomic.volume_errors(target.name):
        layout.ensure_folder(target)
        return atomic.write_bytes(target, json.dumps(sidecar.as_dict(), sort_keys=True).encode(), replace=replace)


def exists(root: Path, recording_sid: str, fmt: str) -> bool:
    """True when the recording's sidecar is on the volume."""
    return layout.exists(root, require_sid(recording_sid, "RE"), _name(recording_sid, fmt))


def remove(root: Path, recording_sid: str, fmt: str) -> None:
    """Delete the sidecar (eviction), if there is one."""
    layout.remove(root, require_sid(recording_sid, "RE"), _name(recording_sid, fmt))


def _named(name: str) -> tuple[str, str] | None:
    """(RecordingSid, format) when ``name`` is a sidecar's file name."""
    stem = name.removesuffix(SUFFIX)
    sid, _, fmt = stem.partition(".")
    if stem != name and is_sid(sid, "RE") and fmt in FORMATS:
        return sid, fmt
    return None


def every(root: Path) -> Iterator[Sidecar]:
    """Every readable sidecar on the volume."""
    for entry in layout.entries(root):
        named = _named(entry.name)
        found = read(root, *named) if named else None
        if found is not None:
            yield found


def newest(root: Path, fmt: str, limit: int) -> list[str]:
    """RecordingSids of the ``limit`` most recently written sidecars of one format."""
    entries = [e for e in layout.entries(root) if (named := _named(e.name)) and named[1] == fmt]
    entries.sort(key=lambda entry: entry.stat().st_mtime, reverse=True)
    return [entry.name.partition(".")[0] for entry in entries[:limit]]
