"""Deterministic, valid audio streams of an exact byte size, generated lazily.

Both formats run at 16000 bytes per second (MP3 at 128 kbps, WAV as 16-bit
mono PCM at 8 kHz), so one ``size`` maps to the same duration in either.
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

# MPEG-1 Layer III, no CRC, 128 kbps, 44.1 kHz, no padding, joint stereo,
# "original" bit set: every frame is floor(144 * 128000 / 44100) = 417 bytes.
MP3_HEADER = b"\xff\xfb\x90\x64"
MP3_FRAME_SIZE = 417
# All-zero side information (32 bytes for a two-channel MPEG-1 frame) means
# main_data_begin = 0 and part2_3_length = 0: the frame decodes to silence and
# the rest of the frame is ancillary data, which decoders skip.
_MP3_SIDE_INFO = bytes(32)
_MP3_ANCILLARY = MP3_FRAME_SIZE - len(MP3_HEADER) - len(_MP3_SIDE_INFO)
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
def _mp3_block(seed: Seed) -> bytes:
    rng = random.Random(f"mp3:{seed}")
    return b"".join(MP3_HEADER + _MP3_SIDE_INFO + rng.randbytes(_MP3_ANCILLARY) for _ in range(_MP3_FRAMES_PER_BLOCK))


def mp3_chunks(size: int, seed: Seed) -> Iterator[bytes]:
    """Yield back-to-back silent MP3 frames totalling exactly ``size`` bytes."""
    return _repeat(_mp3_block(seed), size)


def wav_header(size: int) -> bytes:
    """Return the 44-byte RIFF/WAVE header for a file of ``size`` bytes."""
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
        1,  # mono
        _WAV_RATE,
        _WAV_RATE * 2,  # byte rate
        2,  # block align
        16,  # bits per sample
        b"data",
        data_size,
    )


@lru_cache(maxsize=64)
def _tone_block(seed: Seed) -> bytes:
    rng = random.Random(f"wav:{seed}")
    # An integral frequency makes a whole number of cycles per second, so the
    # repeated block joins without a click; per-sample dither makes it unique.
    freq = rng.randrange(300, 700)
    step = 2 * math.pi * freq / _WAV_RATE
    samples = array.array(
        "h",
        (int(_TONE_AMPLITUDE * math.sin(step * i)) + rng.randint(-2, 2) for i in range(_WAV_BLOCK_SAMPLES)),
    )
    if sys.byteorder == "big":
        samples.byteswap()  # WAV is little-endian
    return samples.tobytes()


def wav_chunks(size: int, seed: Seed) -> Iterator[bytes]:
    """Yield a PCM WAV file (16-bit mono 8 kHz sine tone) of exactly ``size`` bytes."""
    header = wav_header(size)
    if size <= WAV_HEADER_SIZE:
        yield header[:size]  # too small to be valid; still exact in length
        return
    yield header
    data_size = (size - WAV_HEADER_SIZE) & ~1
    yield from _repeat(_tone_block(seed), data_size)
    if data_size != size - WAV_HEADER_SIZE:
        yield b"\x00"


def garbage_chunks(size: int, seed: Seed) -> Iterator[bytes]:
    """Yield ``size`` bytes that look like neither MP3 nor WAV."""
    block = (_GARBAGE_PREFIX + random.Random(f"junk:{seed}").randbytes(65_536))[:65_536]
    return _repeat(block, size)


def media_chunks(fmt: str, size: int, seed: Seed) -> Iterator[bytes]:
    """Yield the audio stream for ``fmt`` ("mp3" or "wav")."""
    if fmt == "mp3":
        return mp3_chunks(size, seed)
    if fmt == "wav":
        return wav_chunks(size, seed)
    raise ValueError(f"unknown media format {fmt!r}")


def stream_sha256(chunks: Iterable[bytes]) -> str:
    """Return the hex sha256 of a chunk stream without joining it in memory."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def media_sha256(fmt: str, size: int, seed: Seed) -> str:
    """Return the hex sha256 of the full ``fmt`` stream for ``size`` and ``seed``."""
    return stream_sha256(media_chunks(fmt, size, seed))


def duration_seconds(size: int) -> int:
    """Return the whole-second duration Twilio would report for ``size`` bytes."""
    return max(1, round(size / BYTES_PER_SECOND))
