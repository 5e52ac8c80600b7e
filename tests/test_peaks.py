"""Waveform peaks (worker/peaks.py) of real audio: WAV from the stdlib, MP3 from the simulator's LAME encoder."""

from __future__ import annotations

import json
import math
import tracemalloc
import wave
from array import array
from pathlib import Path

import pytest

from simulator import audio
from worker import peaks

RATE = 8_000


def tone(seconds: float, amplitude: int, rate: int = RATE, pitch: int = 440) -> array:
    """A sine tone as 16-bit samples."""
    step = 2 * math.pi * pitch / rate
    return array("h", (round(amplitude * math.sin(step * i)) for i in range(int(seconds * rate))))


def silence(seconds: float, rate: int = RATE) -> array:
    return array("h", bytes(2 * int(seconds * rate)))


def write_wav(path: Path, *lanes: array, rate: int = RATE, repeat: int = 1) -> Path:
    """A 16-bit PCM WAV of one lane per channel (interleaved), its data written ``repeat`` times."""
    frames = array("h", bytes(2 * len(lanes[0]) * len(lanes)))
    for channel, lane in enumerate(lanes):
        frames[channel :: len(lanes)] = lane
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(len(lanes))
        wav.setsampwidth(2)
        wav.setframerate(rate)
        for _ in range(repeat):
            wav.writeframes(frames.tobytes())
    return path


def simulator_file(path: Path, fmt: str, seconds: int, channels: int, seed: str = "RE-peaks") -> Path:
    """The simulator's recording of ``seconds`` (MP3: LAME frames at 16 kHz; WAV: 8 kHz mono or 4 kHz dual)."""
    size = seconds * audio.BYTES_PER_SECOND + (audio.WAV_HEADER_SIZE if fmt == "wav" else 0)
    with path.open("wb") as handle:
        for chunk in audio.media_chunks(fmt, size, seed, channels):
            handle.write(chunk)
    return path


def pairs(result: peaks.Peaks, channel: int) -> list[tuple[int, int]]:
    """(min, max) of every pixel of one channel's lane."""
    data, step = result.waveform["data"], 2 * result.channels
    return list(zip(data[2 * channel :: step], data[2 * channel + 1 :: step], strict=True))


@pytest.mark.parametrize(("fmt", "channels"), [("mp3", 1), ("mp3", 2), ("wav", 1), ("wav", 2)])
def test_waveform_is_audiowaveform_json_version_2(tmp_path: Path, fmt: str, channels: int) -> None:
    result = peaks.compute(simulator_file(tmp_path / f"call.{fmt}", fmt, 3, channels), fmt)
    waveform = result.waveform
    assert list(waveform) == ["version", "channels", "sample_rate", "samples_per_pixel", "bits", "length", "data"]
    rate = {"mp3": 16_000, "wav": RATE // channels}[fmt]  # as the file has it: no resampling
    assert (waveform["version"], waveform["channels"], waveform["sample_rate"], waveform["bits"]) == (
        2,
        channels,
        rate,
        8,
    )
    assert waveform["samples_per_pixel"] == rate // 5  # 5 pixels a second at any rate
    assert waveform["length"] == math.ceil(result.duration_s * 5)
    assert len(waveform["data"]) == waveform["length"] * 2 * channels
    assert all(type(value) is int and -128 <= value <= 127 for value in waveform["data"])
    assert all(low <= high for channel in range(channels) for low, high in pairs(result, channel))
    text = result.to_json()
    assert b" " not in text and json.loads(text) == waveform
    assert result.channels == channels and len(result.talk_s) == len(result.silence_s) == channels


def test_full_scale_tone_peaks_near_127_and_silence_at_0(tmp_path: Path) -> None:
    result = peaks.compute(write_wav(tmp_path / "a.wav", tone(1, 32_767), silence(1)), "wav")
    loud, quiet = pairs(result, 0), pairs(result, 1)
    assert all(low <= -126 and high >= 126 for low, high in loud)
    assert set(quiet) == {(0, 0)}


def test_dual_channel_lanes_and_talk_time_per_channel(tmp_path: Path) -> None:
    left = tone(3, 12_000) + silence(1)  # the agent talks 3 s, then a pause
    path = write_wav(tmp_path / "dual.wav", left, silence(4))
    result = peaks.compute(path, "wav")
    assert result.channels == 2 and result.duration_s == pytest.approx(4.0)
    assert result.talk_s == pytest.approx((3.0, 0.0), abs=0.05)
    assert result.silence_s == pytest.approx((1.0, 4.0), abs=0.05)
    agent, customer = pairs(result, 0), pairs(result, 1)
    assert all(high >= 45 and low <= -45 for low, high in agent[:15])  # 12000 / 256 = 46
    assert set(agent[15:]) == {(0, 0)} and set(customer) == {(0, 0)}
    assert result.summary() == {"duration_s": 4.0, "channels": 2, "talk_s": [3.0, 0.0], "silence_s": [1.0, 4.0]}


def test_talk_threshold_is_minus_40_dbfs_rms(tmp_path: Path) -> None:
    def at_dbfs(level: float) -> array:
        return tone(2, round(32_768 * 10 ** (level / 20) * math.sqrt(2)), pitch=330)

    # a line's hiss, under and over the threshold (a tone reads within 3 dB), a phone's nominal speech level
    path = write_wav(tmp_path / "levels.wav", at_dbfs(-61), at_dbfs(-44), at_dbfs(-36), at_dbfs(-26))
    assert peaks.compute(path, "wav").talk_s == pytest.approx((0.0, 0.0, 2.0, 2.0), abs=0.03)


@pytest.mark.parametrize(("fmt", "seconds"), [("wav", 5), ("mp3", 5)])
def test_duration_counts_the_decoded_frames(tmp_path: Path, fmt: str, seconds: int) -> None:
    result = peaks.compute(simulator_file(tmp_path / f"call.{fmt}", fmt, seconds, 2), fmt)
    assert result.duration_s == pytest.approx(seconds, abs=0.04)  # MP3: whole 36 ms frames only
    assert all(
        talk + quiet == pytest.approx(result.duration_s, abs=0.002)
        for talk, quiet in zip(result.talk_s, result.silence_s, strict=True)
    )


def test_simulator_call_shows_both_parties_taking_turns(tmp_path: Path) -> None:
    result = peaks.compute(simulator_file(tmp_path / "call.mp3", "mp3", 18, 2), "mp3")
    assert all(2.0 < talk < 12.0 for talk in result.talk_s)  # each party speaks, and pauses
    assert sum(result.talk_s) < result.duration_s  # in turns, not over each other
    agent, customer = pairs(result, 0), pairs(result, 1)
    assert agent != customer and max(high for _, high in agent) > 40 and max(high for _, high in customer) > 40


@pytest.fixture(scope="module")
def ten_minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10 minutes of a loud 8 kHz mono tone: every pixel near full scale, the largest JSON."""
    return write_wav(tmp_path_factory.mktemp("long") / "long.wav", tone(1, 30_000), repeat=600)


def test_ten_minute_8khz_call_takes_about_30_kb(ten_minutes: Path) -> None:
    result = peaks.compute(ten_minutes, "wav")
    assert result.duration_s == 600.0 and result.waveform["length"] == 3000
    assert 20_000 <= len(result.to_json()) <= 40_000


def test_compute_streams_in_bounded_memory(ten_minutes: Path) -> None:
    tracemalloc.start()
    try:
        peaks.compute(ten_minutes, "wav")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert ten_minutes.stat().st_size > 9_000_000
    assert peak < 2_000_000  # a few seconds of PCM at a time, never the whole file


@pytest.mark.parametrize(
    ("fmt", "content"),
    [
        ("mp3", b"".join(audio.garbage_chunks(20_000, "junk"))),
        ("wav", b"".join(audio.garbage_chunks(20_000, "junk"))),
        ("mp3", b""),
        ("wav", audio.wav_header(44)),  # a header and no samples
    ],
)
def test_undecodable_file_raises_one_clear_line(tmp_path: Path, fmt: str, content: bytes) -> None:
    path = tmp_path / f"RE{'0' * 32}.{fmt}"
    path.write_bytes(content)
    with pytest.raises(peaks.Undecodable) as caught:
        peaks.compute(path, fmt)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert message.startswith(f"cannot decode {path.name} as {fmt}: ") and "\n" not in message


def test_missing_file_and_unknown_format_are_not_undecodable(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        peaks.compute(tmp_path / "gone.mp3", "mp3")
    with pytest.raises(ValueError, match="format must be one of mp3, wav, got 'ogg'"):
        peaks.compute(write_wav(tmp_path / "a.wav", silence(1)), "ogg")


def test_write_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    first = peaks.compute(write_wav(tmp_path / "a.wav", tone(1, 8_000)), "wav")
    second = peaks.compute(write_wav(tmp_path / "b.wav", silence(2)), "wav")
    folder = tmp_path / "volume"
    folder.mkdir()
    dest = folder / f"RE{'1' * 32}.mp3.peaks.json"
    peaks.write(dest, first)
    assert dest.read_bytes() == first.to_json()
    peaks.write(dest, second)
    assert json.loads(dest.read_bytes()) == second.waveform
    assert [p.name for p in folder.iterdir()] == [dest.name]
