"""Deterministic, valid, audible audio streams of an exact byte size, generated lazily.

Both formats run at 16000 bytes per second (MP3: MPEG-2 Layer III at 128 kbps
and 16 kHz; WAV: 16-bit PCM at 8 kHz mono, or 4 kHz for two channels), so one
``size`` maps to the same duration in either. Two channels are what Twilio
records a call in by default (dual channel since 2022): each party on its own
channel.

What a listener hears is a phone call: the agent (channel 0, a lower voice)
and the customer (channel 1, a higher one) take turns saying syllable-like
bursts of a voiced tone over faint line noise; one channel holds both turns.
A stream repeats one 9-second block whose timing and noise come from ``seed``,
so two recordings of equal size still differ from their first bytes, which
keeps a content-addressed cache honest. MP3 blocks are real LAME frames
(``lameenc``), encoded once per (seed, channels) and repeated whole: each block
starts with an empty bit reservoir and ends in a pause, so the joins decode cleanly.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator
from functools import lru_cache

import lameenc

Seed = int | str

BYTES_PER_SECOND = 16_000
MEDIA_TYPES = {"mp3": "audio/mpeg", "wav": "audio/x-wav"}
BLOCK_SECONDS = 9  # whole MP3 frames at 16 kHz (250) and 8 kHz (125); room for a few turns

# 128 kbps at 16 kHz keeps the 16000 bytes a second; a frame is 576 samples, so
# 576 / 8 * 128000 / 16000 = 576 bytes with no padding slot: every frame is alike.
MP3_RATE = 16_000
MP3_KBPS = 128
MP3_FRAME_SIZE = 576
_CHUNK_LIMIT = 65_536  # the most bytes one yielded chunk holds

WAV_HEADER_SIZE = 44
_WAV_RATE = 8_000

# The voice: a fundamental and two overtones (a buzzy vowel rather than a
# whistle), each syllable shaped by a half-sine so it starts and ends at zero.
_VOICES = ((165, 175, 185, 196), (247, 262, 277, 294))  # Hz: channel 0 (agent), channel 1 (customer)
_HARMONICS = (1.0, 0.5, 0.25)
_PEAK = 20_000  # a syllable peaks near -6 dBFS: clearly audible, never clipped
_GAINS = (0.55, 0.75, 1.0)
_SYLLABLE_MS = (110, 150, 190, 230, 270)
_TAIL_MS = 300  # every block ends in a pause: LAME's delay costs its last 72 ms
# Line noise of ±32 (about -65 dBFS RMS) fills the pauses: a phone line is never
# digitally silent, and random bytes from the seed make every stream unique.
_NOISE_LOW = bytes((((b - 256 if b > 127 else b) >> 2) & 0xFF) for b in range(256))
_NOISE_HIGH = bytes(0xFF if b > 127 else 0 for b in range(256))

_GARBAGE_PREFIX = b"GARBAGE! this is not audio\n"


def _pieces(block: bytes, unit: int) -> tuple[bytes, ...]:
    """``block`` cut into chunks of at most 64 KiB, each a whole number of ``unit``-byte frames."""
    step = _CHUNK_LIMIT - _CHUNK_LIMIT % unit
    return tuple(block[i : i + step] for i in range(0, len(block), step))


def _repeat(pieces: tuple[bytes, ...], size: int) -> Iterator[bytes]:
    """Yield ``pieces`` over and over, the last one trimmed so the total is ``size`` bytes."""
    left = size
    while left > 0:
        for piece in pieces:
            if left <= len(piece):
                yield piece[:left] if left < len(piece) else piece
                return
            yield piece
            left -= len(piece)


@lru_cache(maxsize=512)  # bounded by construction: voices x lengths x gains x rates
def _syllable(pitch: int, length_ms: int, gain: float, rate: int) -> array:
    count = length_ms * rate // 1000
    step = 2 * math.pi * pitch / rate
    scale = _PEAK * gain / sum(_HARMONICS)
    return array(
        "h",
        (
            int(
                scale
                * math.sin(math.pi * i / count)
                * sum(weight * math.sin(step * i * n) for n, weight in enumerate(_HARMONICS, 1))
            )
            for i in range(count)
        ),
    )


@lru_cache(maxsize=64)
def _timeline(seed: Seed) -> tuple[tuple[int, int, int, int, float], ...]:
    """(start ms, party, pitch, length ms, gain) of every syllable in one block: alternating turns."""
    rng = random.Random(f"speech:{seed}")
    syllables: list[tuple[int, int, int, int, float]] = []
    end = BLOCK_SECONDS * 1000 - _TAIL_MS
    at, party = rng.randrange(80, 300), 0  # the agent speaks first
    while True:
        turn_start = at
        for _ in range(rng.randint(2, 6)):  # words in this turn
            word = [
                (rng.choice(_VOICES[party]), rng.choice(_SYLLABLE_MS), rng.choice(_GAINS))
                for _ in range(rng.randint(1, 3))
            ]
            gaps = [rng.randrange(25, 60) for _ in word]
            if at + sum(length for _, length, _ in word) + sum(gaps) > end:
                break  # the word would run into the block's closing pause
            for (pitch, length, gain), gap in zip(word, gaps, strict=True):
                syllables.append((at, party, pitch, length, gain))
                at += length + gap
            at += rng.randrange(120, 250)  # between words
        if at == turn_start:
            return tuple(syllables)  # not even one word fits any more
        at += rng.randrange(350, 800)  # the other party answers
        party = 1 - party


def _noise(rng: random.Random, count: int) -> array:
    """``count`` samples of faint white noise, built from random bytes without a Python loop per sample."""
    low = rng.randbytes(count)
    pcm = bytearray(2 * count)
    pcm[0::2] = low.translate(_NOISE_LOW)  # little-endian: the value's low byte ...
    pcm[1::2] = low.translate(_NOISE_HIGH)  # ... and its sign extension
    samples = array("h")
    samples.frombytes(pcm)
    if sys.byteorder == "big":
        samples.byteswap()
    return samples


def speech_pcm(seed: Seed, channels: int, rate: int) -> bytes:
    """One block (BLOCK_SECONDS) of the call for ``seed``: interleaved 16-bit little-endian PCM at ``rate``."""
    frames = BLOCK_SECONDS * rate
    samples = _noise(random.Random(f"noise:{seed}:{channels}:{rate}"), frames * channels)
    for start_ms, party, pitch, length_ms, gain in _timeline(seed):
        voice = _syllable(pitch, length_ms, gain, rate)
        start = start_ms * rate // 1000
        if channels == 1:
            samples[start : start + len(voice)] = voice  # one channel: both parties, taking turns
        else:
            first = start * channels + party
            samples[first : first + len(voice) * channels : channels] = voice
    if sys.byteorder == "big":
        samples.byteswap()  # PCM in WAV (and for LAME) is little-endian
    return samples.tobytes()


def encode_mp3(pcm: bytes, rate: int, channels: int, kbps: int) -> bytes:
    """CBR MP3 frames of 16-bit PCM, exactly as many as the PCM spans, so repeating them keeps time.

    LAME delays its output by about two frames and pads the end; the frames
    beyond the PCM's length (the tail of a closing pause) are dropped.
    """
    frame_samples = 1152 if rate >= 32_000 else 576  # MPEG-1, or MPEG-2/2.5 below 32 kHz
    frame_bytes, slack = divmod(frame_samples * kbps * 125, rate)
    frames, rest = divmod(len(pcm) // (2 * channels), frame_samples)
    if slack or rest:
        raise ValueError(f"{kbps} kbps at {rate} Hz over {len(pcm)} bytes is not a whole number of unpadded frames")
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_out_sample_rate(rate)
    encoder.set_channels(channels)
    encoder.set_quality(7)  # LAME's fast mode: per seed this runs once, on the request path
    encoder.silence()  # LAME would print its settings on stdout
    data = encoder.encode(pcm) + encoder.flush()
    if len(data) < frames * frame_bytes:
        raise ValueError(f"LAME gave {len(data)} bytes, fewer than {frames} frames")
    return bytes(data[: frames * frame_bytes])


@lru_cache(maxsize=64)
def _mp3_pieces(seed: Seed, channels: int) -> tuple[bytes, ...]:
    pcm = speech_pcm(seed, channels, MP3_RATE)
    return _pieces(encode_mp3(pcm, MP3_RATE, channels, MP3_KBPS), MP3_FRAME_SIZE)


def mp3_chunks(size: int, seed: Seed, channels: int = 2) -> Iterator[bytes]:
    """Yield MP3 frames of the call (joint stereo or mono) totalling exactly ``size`` bytes."""
    return _repeat(_mp3_pieces(seed, channels), size)


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


@lru_cache(maxsize=64)
def _wav_pieces(seed: Seed, channels: int) -> tuple[bytes, ...]:
    return _pieces(speech_pcm(seed, channels, _WAV_RATE // channels), 2 * channels)


def wav_chunks(size: int, seed: Seed, channels: int = 1) -> Iterator[bytes]:
    """Yield a 16-bit PCM WAV file of the call (a voice per channel) of exactly ``size`` bytes."""
    header = wav_header(size, channels)
    if size <= WAV_HEADER_SIZE:
        yield header[:size]  # too small to be valid; still exact in length
        return
    yield header
    data_size = (size - WAV_HEADER_SIZE) & ~1
    yield from _repeat(_wav_pieces(seed, channels), data_size)
    if data_size != size - WAV_HEADER_SIZE:
        yield b"\x00"


def garbage_chunks(size: int, seed: Seed) -> Iterator[bytes]:
    """Yield ``size`` bytes that look like neither MP3 nor WAV."""
    block = (_GARBAGE_PREFIX + random.Random(f"junk:{seed}").randbytes(_CHUNK_LIMIT))[:_CHUNK_LIMIT]
    return _repeat((block,), size)


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
