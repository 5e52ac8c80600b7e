"""Peaks for a recording kept on the volume: the waveform file nginx serves, and the sidecar's facts.

Computed after the recording is in place (its own task), so peaks never
delay playback. A recording that cannot be decoded stays cached and
playable: its sidecar says ``peaks: unavailable`` with the reason, and the
player falls back to drawing nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from . import layout, peaks, sidecar, storage
from .sids import require_format, require_sid

log = logging.getLogger(__name__)

READY, UNAVAILABLE = "ready", "unavailable"
SUFFIX = ".peaks.json"


@dataclass(frozen=True)
class PeaksOutcome:
    """``ready``, ``unavailable`` (undecodable), ``not_cached`` or ``already`` (a backfill's rerun)."""

    recording_sid: str
    result: str
    ms: float = 0.0

    def as_dict(self) -> dict:
        return {"sid": self.recording_sid, "result": self.result, "ms": round(self.ms, 1)}


def path(root: Path, recording_sid: str) -> Path:
    """``RE….peaks.json`` beside the media (where it is read): the name nginx serves it under."""
    return layout.find(root, require_sid(recording_sid, "RE"), f"{recording_sid}{SUFFIX}")


def is_ready(root: Path, recording_sid: str) -> bool:
    return layout.exists(root, require_sid(recording_sid, "RE"), f"{recording_sid}{SUFFIX}")


def make(root: Path, recording_sid: str, fmt: str, again: bool = False) -> PeaksOutcome:
    """Compute and keep the peaks of a cached recording (rerun-safe: ``already`` unless ``again``)."""
    require_format(fmt)
    media = storage.media_path(root, require_sid(recording_sid, "RE"), fmt)
    if not media.is_file():
        return PeaksOutcome(recording_sid, "not_cached")
    # adopt: peaks a flat volume still has at the top level move into the folder nginx serves them from.
    if not again and layout.adopt(root, recording_sid, f"{recording_sid}{SUFFIX}").exists():
        return PeaksOutcome(recording_sid, "already")
    started = time.monotonic()
    try:
        found = peaks.compute(media, fmt)
    except peaks.Undecodable as exc:
        _note(root, recording_sid, fmt, peaks=UNAVAILABLE, peaks_error=str(exc))
        log.warning("peaks.unavailable", extra={"recording_sid": recording_sid, "format": fmt, "reason": str(exc)})
        return PeaksOutcome(recording_sid, UNAVAILABLE, (time.monotonic() - started) * 1000)
    summary = found.summary()
    # The sidecar first: once the peaks file exists (what nginx serves and is_ready
    # checks) the sidecar and the API already describe it.
    _note(
        root,
        recording_sid,
        fmt,
        peaks=READY,
        peaks_error=None,
        duration_s=summary["duration_s"],
        talk_s=summary["talk_s"],
        silence_s=summary["silence_s"],
    )
    peaks.write(layout.path(root, recording_sid, f"{recording_sid}{SUFFIX}"), found)
    ms = (time.monotonic() - started) * 1000
    log.info(
        "peaks.done",
        extra={"recording_sid": recording_sid, "format": fmt, "duration_s": found.duration_s, "ms": round(ms, 1)},
    )
    return PeaksOutcome(recording_sid, READY, ms)


def _note(root: Path, recording_sid: str, fmt: str, **facts: object) -> None:
    """Add the peaks' facts to the sidecar."""
    current = sidecar.read(root, recording_sid, fmt)
    if current is None:  # evicted meanwhile, or its sidecar not written yet: nothing to describe
        return
    sidecar.write(root, current.marked(**facts))


def remove(root: Path, recording_sid: str) -> None:
    """Delete the peaks file (eviction)."""
    layout.remove(root, require_sid(recording_sid, "RE"), f"{recording_sid}{SUFFIX}")
