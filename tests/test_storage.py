"""The volume layout: atomic verified writes, sidecars, call links, legs."""

from __future__ import annotations

import errno
import hashlib
import json
import os

import pytest

from worker import atomic, sidecar, storage, stream_io
from worker.errors import IncompleteMedia, InvalidSid, StorageError

RE1 = "RE" + "1" * 32
RE2 = "RE" + "2" * 32
CA1 = "CA" + "1" * 32
CA_CHILD = "CA" + "c" * 32
MP3 = b"\xff\xfb\x90\x64" + b"\x00" * 1020
WAV = b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 100


def chunks(data: bytes, size: int = 100):
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_write_media_lands_complete_file_with_hash(tmp_path):
    stored = storage.write_media(tmp_path, RE1, "mp3", chunks(MP3), len(MP3))
    assert stored.path == tmp_path / RE1[-2:] / f"{RE1}.mp3"  # in its fan-out folder
    assert stored.path.read_bytes() == MP3
    assert stored.bytes == len(MP3)
    assert stored.sha256 == hashlib.sha256(MP3).hexdigest()
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_a_large_stream_is_hashed_in_order_while_flushed_behind(tmp_path):
    # Uneven chunks over several writeback steps: the helper-thread digest
    # must see every chunk once, in order.
    body = MP3 + os.urandom(3 * stream_io.WRITEBACK_BYTES + 12345)
    pieces, at, size = [], 0, 1
    while at < len(body):
        pieces.append(body[at : at + size])
        at, size = at + size, size * 3 % 700_001 + 1
    stored = storage.write_media(tmp_path, RE1, "mp3", pieces, len(body))
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert stored.path.read_bytes() == body
    assert stored.part_md5s == ()  # asked for by the bucket tier only


@pytest.mark.parametrize("part_bytes", [1, 1000, 4096, len(MP3) * 5 + 7])
def test_the_download_also_hashes_each_upload_part(tmp_path, part_bytes):
    # Chunks that straddle part boundaries, end on one, and a short last part.
    body = MP3 * 5 + os.urandom(999)
    windows = [body[at : at + part_bytes] for at in range(0, len(body), part_bytes)]
    stored = storage.write_media(tmp_path, RE1, "mp3", chunks(body, 333), len(body), part_bytes=part_bytes)
    assert stored.part_md5s == tuple(hashlib.md5(window).digest() for window in windows)
    assert stored.sha256 == hashlib.sha256(body).hexdigest()


@pytest.mark.skipif(stream_io._sync_file_range is None, reason="no sync_file_range on this platform")
def test_writeback_stays_on_for_a_regular_file(tmp_path):
    # A wrong flag or argument type would make the kernel refuse every call and
    # silently turn writeback off; only "start writing, do not wait" is asked for.
    assert stream_io._SYNC_FILE_RANGE_WRITE == 2
    with open(tmp_path / "file", "wb", buffering=0) as handle:
        writeback = stream_io.Writeback(handle.fileno(), every=4096)
        for written in range(8192, 8192 * 5, 8192):
            handle.write(b"\0" * 8192)
            writeback.written(written)
        assert writeback.enabled
        assert writeback.started == 8192 * 4


def test_writeback_turns_itself_off_where_the_kernel_refuses_it():
    read_end, write_end = os.pipe()  # sync_file_range fails on a pipe (ESPIPE)
    try:
        writeback = stream_io.Writeback(write_end, every=1)
        writeback.written(10)
        writeback.written(20)
        assert writeback.enabled is False
    finally:
        os.close(read_end)
        os.close(write_end)


def test_wav_is_recognised(tmp_path):
    storage.write_media(tmp_path, RE1, "wav", chunks(WAV), len(WAV))
    assert storage.is_cached(tmp_path, RE1, "wav")


@pytest.mark.parametrize(
    ("fmt", "body", "declared"),
    [
        ("mp3", MP3[:500], len(MP3)),  # truncated before Content-Length
        ("mp3", MP3 + b"extra", len(MP3)),  # longer than declared
        ("mp3", b"<html>nope</html>" + b"\x00" * 1007, 1024),  # not audio
        ("wav", MP3, len(MP3)),  # audio, but not the declared format
        ("mp3", b"", 0),  # empty
    ],
)
def test_bad_bodies_never_appear_under_the_final_name(tmp_path, fmt, body, declared):
    with pytest.raises(IncompleteMedia):
        storage.write_media(tmp_path, RE1, fmt, chunks(body), declared)
    assert not storage.is_cached(tmp_path, RE1, fmt)
    assert list((tmp_path / ".tmp").iterdir()) == []


def test_a_broken_stream_leaves_no_temp_file(tmp_path):
    def broken():
        yield MP3[:100]
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        storage.write_media(tmp_path, RE1, "mp3", broken(), len(MP3))
    assert not storage.is_cached(tmp_path, RE1, "mp3")
    assert list((tmp_path / ".tmp").glob("*")) == []


@pytest.mark.parametrize("sid", ["../etc/passwd", "RE" + "0" * 31, "CA" + "1" * 32, "AC" + "1" * 32])
def test_write_media_refuses_anything_but_a_recording_sid(tmp_path, sid):
    with pytest.raises(InvalidSid):
        storage.write_media(tmp_path, sid, "mp3", chunks(MP3), len(MP3))


def _cache(root, sid, recorded_at):
    storage.write_media(root, sid, "mp3", chunks(MP3), len(MP3))
    stored = sidecar.Sidecar(recording_sid=sid, format="mp3", bytes=len(MP3), sha256="", recorded_at=recorded_at)
    sidecar.write(root, stored)


def test_call_link_points_at_the_latest_recording(tmp_path):
    _cache(tmp_path, RE1, "2026-01-01T10:00:00+00:00")
    _cache(tmp_path, RE2, "2026-01-01T11:00:00+00:00")
    assert storage.link_call(tmp_path, CA1, RE2, "mp3")
    assert not storage.link_call(tmp_path, CA1, RE1, "mp3")  # older: keep the newer one
    assert storage.resolve_link(tmp_path, CA1, "mp3") == RE2
    link = tmp_path / CA1[-2:] / f"{CA1}.mp3"
    assert os.readlink(link) == f"../{RE2[-2:]}/{RE2}.mp3"  # relative: survives moving the volume
    assert link.read_bytes() == MP3


def test_link_to_a_missing_recording_does_not_resolve(tmp_path):
    (tmp_path / CA1[-2:]).mkdir()
    os.symlink(f"../{RE1[-2:]}/{RE1}.mp3", tmp_path / CA1[-2:] / f"{CA1}.mp3")
    assert storage.resolve_link(tmp_path, CA1, "mp3") is None
    assert not storage.is_cached(tmp_path, CA1, "mp3")


def test_legs_are_kept_both_ways(tmp_path):
    storage.record_leg(tmp_path, CA_CHILD, CA1)
    storage.record_leg(tmp_path, CA_CHILD, CA1)
    assert storage.parent_of(tmp_path, CA_CHILD) == CA1
    assert storage.children_of(tmp_path, CA1) == [CA_CHILD]
    assert storage.parent_of(tmp_path, CA1) is None


def test_stale_temp_files_are_removed(tmp_path):
    tmp = tmp_path / ".tmp"
    tmp.mkdir()
    old, new = tmp / "old.part", tmp / "new.part"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (1, 1))
    assert storage.remove_stale_temp(tmp_path, older_than_seconds=60) == 1
    assert not old.exists() and new.exists()


@pytest.mark.parametrize("error", [errno.EMFILE, errno.EROFS, errno.ENOTCONN])
def test_any_volume_error_is_a_storage_error_and_leaves_no_temp_file(tmp_path, monkeypatch, error):
    def refuse(fd):
        raise OSError(error, os.strerror(error))

    (tmp_path / RE1[-2:]).mkdir()  # its folder exists: the file's own fsync is what fails
    monkeypatch.setattr(storage.os, "fsync", refuse)
    with pytest.raises(StorageError):
        storage.write_media(tmp_path, RE1, "mp3", chunks(MP3), len(MP3))
    monkeypatch.undo()
    assert not storage.is_cached(tmp_path, RE1, "mp3")
    assert (tmp_path / ".tmp").is_dir() and list((tmp_path / ".tmp").iterdir()) == []


def test_a_failing_cleanup_does_not_hide_the_storage_error(tmp_path, monkeypatch):
    def read_only(*args):
        raise OSError(errno.EROFS, "Read-only file system")

    (tmp_path / RE1[-2:]).mkdir()
    monkeypatch.setattr(storage.os, "fsync", read_only)
    monkeypatch.setattr(storage.os, "unlink", read_only)
    with pytest.raises(StorageError, match="Read-only"):
        storage.write_media(tmp_path, RE1, "mp3", chunks(MP3), len(MP3))


def test_an_atomic_write_without_replace_keeps_what_is_there(tmp_path):
    path = tmp_path / "x.json"
    assert atomic.write_bytes(path, b'{"a": 1}')
    assert not atomic.write_bytes(path, b'{"a": 2}', replace=False)
    assert atomic.write_bytes(tmp_path / "y.json", b'{"b": 1}', replace=False)
    assert (path.read_text(), (tmp_path / "y.json").read_text()) == ('{"a": 1}', '{"b": 1}')
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_a_sidecar_round_trips_and_reads_unknown_or_missing_fields_leniently(tmp_path):
    facts = sidecar.Sidecar(recording_sid=RE1, format="mp3", bytes=3, sha256="ab", call_sid=CA1)
    assert sidecar.write(tmp_path, facts)
    assert sidecar.read(tmp_path, RE1, "mp3") == facts
    written = json.loads(sidecar.path(tmp_path, RE1, "mp3").read_text())
    assert "pinned" not in written and "twilio_deleted_at" not in written  # only once set
    sidecar.path(tmp_path, RE1, "mp3").write_text(json.dumps({**written, "added_later": 1, "pinned": True}))
    assert sidecar.read(tmp_path, RE1, "mp3").is_pinned
    sidecar.write(tmp_path, sidecar.read(tmp_path, RE1, "mp3").marked(twilio_deleted_at="2026-12-01T00:00:00+00:00"))
    assert json.loads(sidecar.path(tmp_path, RE1, "mp3").read_text())["added_later"] == 1  # a newer writer's key
    sidecar.path(tmp_path, RE1, "mp3").write_text('{"pinned": true}')  # partial: still pinned
    partial = sidecar.read(tmp_path, RE1, "mp3")
    assert partial.is_pinned and (partial.recording_sid, partial.sha256) == (RE1, None)
    sidecar.path(tmp_path, RE1, "mp3").write_text("[1, 2]")
    assert sidecar.read(tmp_path, RE1, "mp3") is None
    assert sidecar.read(tmp_path, RE2, "mp3") is None


def test_newest_and_every_list_only_sidecars(tmp_path):
    for index, sid in enumerate((RE1, RE2)):
        sidecar.write(tmp_path, sidecar.Sidecar(recording_sid=sid, format="mp3", bytes=1, sha256=""))
        os.utime(sidecar.path(tmp_path, sid, "mp3"), (1000 + index, 1000 + index))
    (tmp_path / f"{RE1}.mp3").write_bytes(MP3)
    (tmp_path / "notes.json").write_text("{}")
    assert sidecar.newest(tmp_path, "mp3", 10) == [RE2, RE1]
    assert sidecar.newest(tmp_path, "wav", 10) == []
    assert {facts.recording_sid for facts in sidecar.every(tmp_path)} == {RE1, RE2}


def test_the_next_holder_removes_a_dead_downloads_temp_files_old_and_new_names(tmp_path):
    tmp = tmp_path / ".tmp"
    tmp.mkdir()
    left = [tmp / f".{RE1}.mp3.k2j3.part", tmp / f"{RE1}.mp3.9xyz.part"]  # this version's, the previous one's
    others = [tmp / f".{RE2}.mp3.k2j3.part", tmp / f".{RE1}.wav.k2j3.part"]
    for path in left + others:
        path.write_bytes(b"partial")
    assert storage.remove_partial(tmp_path, RE1, "mp3") == 2
    assert sorted(tmp.iterdir()) == sorted(others)


@pytest.mark.parametrize(
    ("fmt", "head", "channels"),
    [
        ("mp3", b"\xff\xfb\x90\x64" + bytes(40), 2),  # joint stereo
        ("mp3", b"\xff\xfb\x90\xe4" + bytes(40), 1),  # mono
        ("mp3", b"ID3\x04" + bytes(40), None),  # a tag first: the header does not say
        ("wav", WAV[:22] + (2).to_bytes(2, "little") + bytes(20), 2),
        ("wav", WAV[:22] + (1).to_bytes(2, "little") + bytes(20), 1),
        ("wav", b"RIFF\x24\x00\x00\x00WAVE", None),  # cut before the fmt chunk
    ],
)
def test_the_channels_come_from_the_files_own_header(tmp_path, fmt, head, channels):
    assert storage.channels_in(fmt, head) == channels
    if channels:
        body = head + bytes(1000)
        assert storage.write_media(tmp_path, RE1, fmt, chunks(body, 7), len(body)).channels == channels
