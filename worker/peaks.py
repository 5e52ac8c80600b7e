"""Waveform peaks of a stored recording: what a player draws before it fetches any audio.

``compute`` decodes an MP3 or WAV file with miniaudio a few seconds at a time
(memory stays bounded whatever the length), at the file's own sample rate and
channel count, and returns ``Peaks``: min/max pairs per channel in the JSON
format BBC audiowaveform writes (version 2), which peaks.js and wavesurfer.js
read, with the duration and each channel's talk and silence time. ``write``
puts the JSON beside the recording atomically. A file miniaudio cannot decode
raises ``Undecodable`` with a one-line reason; the caller logs it and keeps
the recording playable.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import miniaudio

from . import atomic
from .errors import RecordingCacheError

log = logging.getLogger(__name__)

# audiowaveform's JSON holds one min and one max per pixel and channel, each an
# 8-bit integer written as text: at most 9 bytes a pixel with the commas
# ("-128,127,"), fewer in pauses ("0,0,"). At 5 pixels a second a 10-minute
# call is 3,000 pixels: at most 3,000 x 9 = 27 KB a channel, the ~30 KB aimed
# for. samples_per_pixel is the rate over 5 (audiowaveform's
# --pixels-per-second), so every recording shares one time scale.
PIXELS_PER_SECOND = 5
VERSION = 2
BITS = 8
# Talk is decided per window of about 25 ms (8 to a pixel), the frame length of
# speech analysis: short enough to see the gaps between words. A window talks
# when its RMS reaches -40 dBFS: active speech on a phone line sits near
# -26 dBFS (ITU-T P.56's nominal level), line and comfort noise at -60 to -70,
# so there is margin on both sides.
WINDOWS_PER_PIXEL = 8
TALK_DBFS = -40.0
_PIXELS_PER_READ = 25  # 5 s of PCM per decoder call

# Everything is measured on each sample's high byte, the 8 bits the waveform
# keeps, through bytes.translate tables and memchr: C speed without numpy
# (which every worker process would then carry), a few dozen Python steps per
# pixel instead of one per sample.
_HIGH = 0 if sys.byteorder == "big" else 1  # where the high byte of a native 16-bit sample sits
_OFFSET = bytes(b ^ 0x80 for b in range(256))  # signed high byte -> offset binary: byte order is sample order
_SIXTEENTH = bytes(v >> 4 for v in range(256))
_BYTE = [bytes([v]) for v in range(256)]
_PAUSE = _BYTE[127] + _BYTE[128]  # x >> 8 of -1 or 0: |x| < 256, under -42 dBFS
# Energy: each sample's 8-bit bucket centre, doubled to stay whole: (2h + 1)
# for h = x >> 8, squared. Near the threshold that RMS is within 1 dB of the
# exact one for speech and noise (3 dB for a pure tone): beside the 14 dB to
# speech and 20 dB to line noise, the verdict is the same. A sample's share is
# capped at 255 (-24 dBFS), so a lone click does not make a window talk.
_ENERGY = bytes(min(255, (2 * (v - 128) + 1) ** 2) for v in range(256))
_TALK_ENERGY = 4 * (10 ** (TALK_DBFS / 20) * 128) ** 2  # the threshold in those units: (2 * RMS / 256)^2

_Decoder = tuple[Callable[[str], miniaudio.SoundFileInfo], Callable[..., Iterator[array]]]
_DECODERS: dict[str, _Decoder] = {
    "mp3": (miniaudio.mp3_get_file_info, miniaudio.mp3_stream_file),
    "wav": (miniaudio.wav_get_file_info, miniaudio.wav_stream_file),
}


class Undecodable(RecordingCacheError, ValueError):
    """miniaudio cannot decode the file as its format; final: the media stays, without peaks."""


@dataclass(frozen=True)
class Peaks:
    """A recording's waveform (audiowaveform JSON, version 2) and what it says about the call."""

    waveform: dict
    duration_s: float
    channels: int
    talk_s: tuple[float, ...]
    silence_s: tuple[float, ...]

    def to_json(self) -> bytes:
        """The waveform as compact JSON bytes, as served to players."""
        return json.dumps(self.waveform, separators=(",", ":")).encode()

    def summary(self) -> dict:
        """Duration, channels and per-channel talk and silence seconds, for a sidecar or the API."""
        return {
            "duration_s": self.duration_s,
            "channels": self.channels,
            "talk_s": list(self.talk_s),
            "silence_s": list(self.silence_s),
        }


def samples_per_pixel(sample_rate: int) -> int:
    """Frames per waveform pixel for ``sample_rate``: a fixed number of pixels a second."""
    return max(2, sample_rate // PIXELS_PER_SECOND)  # audiowaveform's floor and its minimum zoom


def _extremes(pixel: bytes) -> tuple[int, int]:
    """Smallest and largest byte of ``pixel``: its sixteenth of the range first, then the value, by memchr."""
    coarse = pixel.translate(_SIXTEENTH)
    low = next(n for n in range(16) if _BYTE[n] in coarse)
    high = next(n for n in range(15, low - 1, -1) if _BYTE[n] in coarse)
    smallest = next(v for v in range(16 * low, 16 * low + 16) if _BYTE[v] in pixel)
    largest = next(v for v in range(16 * high + 15, 16 * high - 1, -1) if _BYTE[v] in pixel)
    return smallest, largest


def _eight_bits(offset_byte: int) -> int:
    """audiowaveform's 8-bit value, x / 256 truncated toward zero, from the high byte (x >> 8).

    The two differ by one below zero, except at exact multiples of 256
    (e.g. -32768 gives -127 here, -128 there): invisible in a drawing.
    """
    value = offset_byte - 128
    return value + 1 if value < 0 else value


@lru_cache(maxsize=64)
def _windows(count: int) -> tuple[tuple[int, int, float], ...]:
    """(first, last, least energy sum to be talk) of each window of a ``count``-frame pixel."""
    bounds = [k * count // WINDOWS_PER_PIXEL for k in range(WINDOWS_PER_PIXEL + 1)]
    return tuple((a, b, _TALK_ENERGY * (b - a)) for a, b in zip(bounds, bounds[1:], strict=False) if b > a)


def _talk_frames(pixel: bytes) -> int:
    """Frames of ``pixel`` (one channel's offset high bytes) in windows loud enough to be talk."""
    energy = pixel.translate(_ENERGY)
    return sum(b - a for a, b, least in _windows(len(pixel)) if sum(energy[a:b]) >= least)


class _Meter:
    """Min/max per pixel and talk frames per channel, fed whole pixels of interleaved PCM."""

    def __init__(self, channels: int, per_pixel: int):
        self.channels, self.per_pixel = channels, per_pixel
        self.data: list[int] = []  # per pixel: ch0 min, ch0 max, ch1 min, ch1 max, ...
        self.talk = [0] * channels
        self.frames = 0

    def feed(self, samples: array) -> None:
        """Measure a block of whole pixels (the last block of a file may end in a partial one)."""
        raw, step = samples.tobytes(), 2 * self.channels
        block = [0] * (step * -(-len(samples) // (self.channels * self.per_pixel)))
        for channel in range(self.channels):
            values = self._lane(raw[2 * channel + _HIGH :: step].translate(_OFFSET), channel)
            block[2 * channel :: step] = values[0::2]
            block[2 * channel + 1 :: step] = values[1::2]
        self.data += block
        self.frames += len(samples) // self.channels

    def _lane(self, lane: bytes, channel: int) -> list[int]:
        values: list[int] = []
        for start in range(0, len(lane), self.per_pixel):
            pixel = lane[start : start + self.per_pixel]
            if pixel.translate(None, _PAUSE):
                smallest, largest = _extremes(pixel)
                self.talk[channel] += _talk_frames(pixel)
            else:  # most pixels of a call are pauses: one pass settles them, and they cannot be talk
                smallest = 127 if _BYTE[127] in pixel else 128
                largest = 128 if _BYTE[128] in pixel else 127
            values += (_eight_bits(smallest), _eight_bits(largest))
        return values


def _blocks(chunks: Iterable[array], size: int) -> Iterator[array]:
    """Re-cut decoder output into blocks of exactly ``size`` samples (the last may be shorter)."""
    pending = array("h")
    for chunk in chunks:
        pending.extend(chunk)
        while len(pending) >= size:
            yield pending[:size]
            del pending[:size]
    if pending:
        yield pending


def _decoder(fmt: str) -> _Decoder:
    try:
        return _DECODERS[fmt]
    except KeyError:
        raise ValueError(f"format must be one of {', '.join(_DECODERS)}, got {fmt!r}") from None


def compute(path: Path, fmt: str) -> Peaks:
    """Decode ``path`` as ``fmt`` ("mp3" or "wav") and measure its peaks, duration and talk per channel."""
    info_of, stream_of = _decoder(fmt)
    path.stat()  # a missing file is an OSError for the caller, not an undecodable one
    started = time.process_time()
    try:
        info = info_of(str(path))
        channels, rate = info.nchannels, info.sample_rate
        per_pixel = samples_per_pixel(rate)
        meter = _Meter(channels, per_pixel)
        frames_per_read = per_pixel * _PIXELS_PER_READ
        for block in _blocks(stream_of(str(path), frames_to_read=frames_per_read), frames_per_read * channels):
            meter.feed(block)
    except miniaudio.MiniaudioError as exc:
        reason = exc.args[0] if exc.args else type(exc).__name__
        raise Undecodable(f"cannot decode {path.name} as {fmt}: {reason}") from exc
    if not meter.frames:
        raise Undecodable(f"cannot decode {path.name} as {fmt}: no audio frames")
    peaks = _peaks(meter, rate)
    log.debug(
        "peaks.computed",
        extra={
            "file": path.name,
            "channels": channels,
            "sample_rate": rate,
            "duration_s": peaks.duration_s,
            "cpu_ms": round((time.process_time() - started) * 1000, 1),
        },
    )
    return peaks


def _peaks(meter: _Meter, rate: int) -> Peaks:
    duration = meter.frames / rate
    talk = tuple(round(frames / rate, 3) for frames in meter.talk)
    waveform = {
        "version": VERSION,
        "channels": meter.channels,
        "sample_rate": rate,
        "samples_per_pixel": meter.per_pixel,
        "bits": BITS,
        "length": len(meter.data) // (2 * meter.channels),
        "data": meter.data,
    }
    return Peaks(
        waveform=waveform,
        duration_s=round(duration, 3),
        channels=meter.channels,
        talk_s=talk,
        silence_s=tuple(round(max(0.0, duration - seconds), 3) for seconds in talk),
    )


def write(dest: Path, peaks: Peaks) -> None:
    """Write ``peaks`` as JSON at ``dest`` atomically: temp file in the same folder, fsync, rename."""
    data = peaks.to_json()
    # No fsync of the folder: a rename lost to a crash leaves no peaks, which a backfill recomputes.
    atomic.write_bytes(dest, data)
    log.info("peaks.written", extra={"file": dest.name, "bytes": len(data), "duration_s": peaks.duration_s})
