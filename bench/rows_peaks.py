"""Row 13: CPU time to compute a recording's waveform peaks, per minute of 8 kHz audio.

The files are the simulator's call audio (``simulator.audio``: alternating
speech-like turns over line noise) at 8 kHz, about 10 minutes each: WAV as
16-bit PCM, MP3 as LAME frames at 32 kbps a channel. Each side is the
process CPU time (``time.process_time``) of ``worker.peaks.compute`` on the
file; its anchor is miniaudio decoding the same file and nothing else, the
floor any peaks computation on it pays. Runs alternate between the two.
"""

from __future__ import annotations

import math
import shutil
import statistics
import time
import wave
from collections.abc import Callable
from pathlib import Path

import miniaudio

from bench.context import Context
from bench.report import Check, RowResult
from simulator import audio
from worker import peaks

RATE = 8_000
KBPS_PER_CHANNEL = 32
TARGET_MS_PER_MIN = 50
SEED = "bench-peaks"
_DECODE = {"mp3": miniaudio.mp3_stream_file, "wav": miniaudio.wav_stream_file}


def write_call(folder: Path, fmt: str, channels: int, minutes: int) -> Path:
    """The simulator's call, ``minutes`` long or a little more (whole blocks), at 8 kHz."""
    pcm = audio.speech_pcm(SEED, channels, RATE)
    blocks = math.ceil(minutes * 60 / audio.BLOCK_SECONDS)
    path = folder / f"call-{channels}ch.{fmt}"
    if fmt == "mp3":
        frames = audio.encode_mp3(pcm, RATE, channels, KBPS_PER_CHANNEL * channels)
        with path.open("wb") as handle:
            for _ in range(blocks):
                handle.write(frames)
        return path
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        for _ in range(blocks):
            wav.writeframes(pcm)
    return path


def cpu_seconds(work: Callable[[], object]) -> float:
    """Process CPU time of one call of ``work``."""
    started = time.process_time()
    work()
    return time.process_time() - started


def decode_only(path: Path, fmt: str) -> None:
    """Stream the file through miniaudio in 5 s reads, as compute does, measuring nothing."""
    for _ in _DECODE[fmt](str(path), frames_to_read=5 * RATE):
        pass


def measure(path: Path, fmt: str, reps: int) -> dict:
    """Alternating runs of compute and of the bare decode; figures per minute of audio."""
    result = peaks.compute(path, fmt)  # warm: the file in the page cache, the code paths loaded
    compute_s, decode_s = [], []
    for _ in range(reps):
        compute_s.append(cpu_seconds(lambda: peaks.compute(path, fmt)))
        decode_s.append(cpu_seconds(lambda: decode_only(path, fmt)))
    minutes = result.duration_s / 60
    return {
        "audio_s": result.duration_s,
        "sample_rate": result.waveform["sample_rate"],
        "file_bytes": path.stat().st_size,
        "json_bytes_per_channel": round(len(result.to_json()) / result.channels),
        "talk_s": list(result.talk_s),
        "compute_cpu_s": [round(s, 4) for s in compute_s],
        "decode_cpu_s": [round(s, 4) for s in decode_s],
        "ms_per_min": round(statistics.median(compute_s) * 1000 / minutes, 2),
        "decode_ms_per_min": round(statistics.median(decode_s) * 1000 / minutes, 2),
    }


def row_peaks(ctx: Context, result: RowResult) -> None:
    """Row 13: peaks CPU per minute of 8 kHz audio, mono and dual, MP3 and WAV; target < 50 ms."""
    quick = ctx.budget.quick
    minutes, reps = (2, 1) if quick else (10, 5)
    folder = ctx.base / "peaks"
    folder.mkdir(parents=True, exist_ok=True)
    cases: dict[str, dict] = {}
    try:
        for fmt in ("mp3", "wav"):
            for channels, name in ((1, "mono"), (2, "dual")):
                path = write_call(folder, fmt, channels, minutes)
                figures = measure(path, fmt, reps)
                path.unlink()
                cases[f"{fmt}_{name}"] = figures
                result.checks.append(
                    Check(
                        f"peaks CPU per minute of 8 kHz audio, {fmt.upper()} {name}",
                        f"{figures['ms_per_min']:.1f} ms",
                        f"decode alone {figures['decode_ms_per_min']:.1f} ms",
                        figures["ms_per_min"] / figures["decode_ms_per_min"],
                        f"< {TARGET_MS_PER_MIN} ms",
                        figures["ms_per_min"] < TARGET_MS_PER_MIN,
                    )
                )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    result.details.update(cases)
    sizes = ", ".join(f"{key} {value['json_bytes_per_channel'] / 1000:.1f} KB" for key, value in cases.items())
    result.notes.append(
        f"The simulator's call audio at 8 kHz, {minutes} minutes (whole {audio.BLOCK_SECONDS} s blocks): WAV 16-bit "
        f"PCM, MP3 LAME at {KBPS_PER_CHANNEL} kbps a channel. Median of {reps} runs of process CPU time for "
        f"worker.peaks.compute, alternating with miniaudio's bare decode of the same file (the anchor). "
        f"Peaks JSON per channel: {sizes}."
    )
