"""Deterministic, valid audio streams of an exact byte size, generated lazily.

Both formats run at 16000 bytes per second (MP3 at 128 kbps, WAV as 16-bit
PCM at 8 kHz mono, or 4 kHz for two channels), so one ``size`` maps to the
same duration in either. Two channels are what Twilio records a call in by
default (dual channel since 2022): each party on its own channel.
Content depends on ``seed`` so that two recordings of equal size still differ,
which keeps a content-addressed cache honest.
"""

from __future__ import annotations

import array
import hashlib
import math
import random
import struct
import sys
from collections.abc import Iterable, Iterator
from functools import lru_cache

Seed = int | str

BYTES_PER_SECOND = 16_000
MEDIA_TYPES = {"mp3": "audio/mpeg", "wav": "audio/x-wav"}

# MPEG-1 Layer III, no CRC, 128 kbps, 44.1 kHz, no padding, "original" bit
# set, joint stereo (two channels) or mono: every frame is
# floor(144 * 128000 / 44100) = 417 bytes.
MP3_HEADER = b"\xff\xfb\x90\x64"
MP3_MONO_HEADER = b"\xff\xfb\x90\xe4"
MP3_FRAME_SIZE = 417
# All-zero side information (32 bytes for a two-channel MPEG-1 frame, 17 for
# mono) means main_data_begin = 0 and part2_3_length = 0: the frame decodes to
# silence and the rest of the frame is ancillary data, which decoders skip.
_MP3_SIDE_INFO = {2: bytes(32), 1: bytes(17)}
_MP3_FRAMES_PER_BLOCK = 157  # ~64 KiB per chunk, whole frames only

WAV_HEADER_SIZE = 44
_WAV_RATE = 8_000
_WAV_BLOCK_SAMPLES = 4 * _WAV_RATE  # 64000-byte chunks
_TONE_AMPLITUDE = 1_500  # about -27 dBFS: audible but quiet

_GARBAGE_PREFIX = b"GARBAGE! this is not audio\n"


def _repeat(block: bytes, size: int) -> Iterator[bytes]:
    """Yield ``block`` over and over, trimmed so the total is ``size`` bytes."""
    full, rest = divmod(size, len(block))
    for _ in range(full):
        yield block
    if rest:
        yield block[:rest]


@lru_cache(maxsize=64)
def _mp3_block(seed: Seed, channels: int = 2) -> bytes:
    rng = random.Random(f"mp3:{seed}")
    head = (MP3_HEADER if channels == 2 else MP3_MONO_HEADER) + _MP3_SIDE_INFO[channels]
    return b"".join(head + rng.randbytes(MP3_FRAME_SIZE - len(head)) for _ in range(_MP3_FRAMES_PER_BLOCK))


def mp3_chunks(size: int, seed: Seed, channels: int = 2) -> Iterator[bytes]:
    """Yield back-to-back silent MP3 frames (two channels or mono) totalling exactly ``size`` bytes."""
    return _repeat(_mp3_block(seed, channels), size)


def wav_header(size: int, channels: int = 1) -> bytes:
    """Return the 44-byte RIFF/WAVE header for a file of ``size`` bytes."""
    rate = _WAV_RATE // channels  # 16000 bytes a second either way
    # PCM samples come in 2-byte pairs; an odd remainder is the RIFF pad byte,
    # which the RIFF size counts but the data chunk size does not.
    data_size = max(0, size - WAV_HEADER_SIZE) & ~1
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        max(0, size - 8),
        b"WAVE",
        b"fmt ",
        16,  # fmt chunk size for plain PCM
        1,  # PCM
        channels,
        rate,
        rate * 2 * channels,  # byte rate
        2 * channels,  # block align
        16,  # bits per sample
        b"data",
        data_size,
    )


def _tone(rng: random.Random, rate: int, count: int) -> list[int]:
    # An integral frequency makes a whole number of cycles per second, so the
    # repeated block joins without a click; per-sample dither makes it unique.
    step = 2 * math.pi * rng.randrange(300, 700) / rate
    return [int(_TONE_AMPLITUDE * math.sin(step * i)) + rng.randint(-2, 2) for i in range(count)]


@lru_cache(maxsize=64)
def _tone_block(seed: Seed, channels: int = 1) -> bytes:
    rng = random.Random(f"wav:{seed}")
    frames = _WAV_BLOCK_SAMPLES // channels  # the same 4 s and 64000 bytes either way
    tones = [_tone(rng, _WAV_RATE // channels, frames) for _ in range(channels)]  # a tone per party
    samples = array.array("h", (tone[i] for i in range(frames) for tone in tones))  # interleaved
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    return samples.tobytes()


def wav_chunks(size: int, seed: Seed, channels: int = 1) -> Iterator[bytes]:
    """Yield a PCM WAV file (16-bit sine tones, a tone per channel) of exactly ``size`` bytes."""
    header = wav_header(size, channels)
    if size <= WAV_HEADER_SIZE:
        yield header[:size]  # too small to be valid; still exact in length
        return
    yield header
    data_size = (size - WAV_HEADER_SIZE) & ~1
    yield from _repeat(_tone_block(seed, channels), data_size)
    if data_size != size - WAV_HEADER_SIZE:
        yield b"\x00"


def garbage_chunks(size: int, seed: Seed) -> Iterator[bytes]:
    """Yield ``size`` bytes that look like neither MP3 nor WAV."""
    block = (_GARBAGE_PREFIX + random.Random(f"junk:{seed}").randbytes(65_536))[:65_536]
    return _repeat(block, size)


def media_chunks(fmt: str, size: int, seed: Seed, channels: int = 2) -> Iterator[bytes]:
    """Yield the audio stream for ``fmt`` ("mp3" or "wav") with one or two channels."""
    if channels not in (1, 2):
        raise ValueError(f"channels must be 1 or 2, got {channels!r}")
    if fmt == "mp3":
        return mp3_chunks(size, seed, channels)
    if fmt == "wav":
        return wav_chunks(size, seed, channels)
    raise ValueError(f"unknown media format {fmt!r}")


def stream_sha256(chunks: Iterable[bytes]) -> str:
    """Return the hex sha256 of a chunk stream without joining it in memory."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def media_sha256(fmt: str, size: int, seed: Seed, channels: int = 2) -> str:
    """Return the hex sha256 of the full ``fmt`` stream for ``size``, ``seed`` and ``channels``."""
    return stream_sha256(media_chunks(fmt, size, seed, channels))


def duration_seconds(size: int) -> int:
    """Return the whole-second duration Twilio would report for ``size`` bytes."""
    return max(1, round(size / BYTES_PER_SECOND))
