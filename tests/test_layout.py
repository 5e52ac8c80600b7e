"""The fan-out layout: files found from the SID, and a flat volume of an earlier version migrated in place."""

from __future__ import annotations

import json
import os

import pytest

from worker import layout, sidecar, storage, volume_index, waveforms

RE1, RE2 = "RE" + "1" * 30 + "a1", "RE" + "2" * 30 + "b2"
CA1, CA_CHILD = "CA" + "3" * 30 + "c3", "CA" + "4" * 30 + "d4"
MP3 = b"\xff\xfb\x90\x64" + b"\x00" * 96


def flat_volume(root):
    """What the version before fan-out left: every file at the top level."""
    root.mkdir(parents=True, exist_ok=True)
    for sid in (RE1, RE2):
        (root / f"{sid}.mp3").write_bytes(MP3)
        facts = {"recording_sid": sid, "format": "mp3", "bytes": len(MP3), "sha256": "0" * 64, "call_sid": CA1}
        (root / f"{sid}.mp3.json").write_text(json.dumps(facts))
    (root / f"{RE1}.peaks.json").write_text('{"version": 2}')
    os.symlink(f"{RE1}.mp3", root / f"{CA1}.mp3")
    os.symlink(f"{RE1}.mp3", root / f"{CA_CHILD}.mp3")
    (root / ".state" / "legs").mkdir(parents=True)
    (root / ".state" / "legs" / CA_CHILD).write_text(json.dumps({"parent_call_sid": CA1}))
    (root / ".state" / "children" / CA1).mkdir(parents=True)
    (root / ".state" / "children" / CA1 / CA_CHILD).touch()
    (root / ".state" / "demo-secrets.json").write_text("{}")


def reads(root) -> dict:
    """What the service reads of the volume, through its own functions."""
    return {
        "cached": [storage.is_cached(root, sid, "mp3") for sid in (RE1, RE2, CA1, CA_CHILD)],
        "links": [storage.resolve_link(root, sid, "mp3") for sid in (CA1, CA_CHILD)],
        "sidecars": sorted(facts.recording_sid for facts in sidecar.every(root)),
        "peaks": waveforms.is_ready(root, RE1),
        "parent": storage.parent_of(root, CA_CHILD),
        "children": storage.children_of(root, CA1),
        "media": storage.media_path(root, RE1, "mp3").read_bytes(),
    }


EXPECTED = {
    "cached": [True, True, True, True],
    "links": [RE1, RE1],
    "sidecars": [RE1, RE2],
    "peaks": True,
    "parent": CA1,
    "children": [CA_CHILD],
    "media": MP3,
}


def test_a_sids_files_go_in_the_folder_of_its_last_two_hex_digits(tmp_path):
    stored = storage.write_media(tmp_path, RE1, "mp3", [MP3], len(MP3))
    assert stored.path == tmp_path / "a1" / f"{RE1}.mp3"
    sidecar.write(tmp_path, sidecar.Sidecar(recording_sid=RE1, format="mp3", bytes=len(MP3), sha256="0" * 64))
    assert storage.link_call(tmp_path, CA1, RE1, "mp3")
    storage.record_leg(tmp_path, CA_CHILD, CA1)
    assert os.readlink(tmp_path / "c3" / f"{CA1}.mp3") == f"../a1/{RE1}.mp3"
    assert (tmp_path / "a1" / f"{RE1}.mp3.json").is_file()
    assert (tmp_path / ".state" / "legs" / "d4" / CA_CHILD).is_file()
    assert (tmp_path / ".state" / "children" / "c3" / CA1 / CA_CHILD).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".state", ".tmp", "a1", "c3"]


def test_a_flat_volume_reads_the_same_before_during_and_after_its_migration(tmp_path):
    root = tmp_path / "recordings"
    flat_volume(root)
    assert reads(root) == EXPECTED  # an earlier version's volume works before it is migrated
    report = layout.migrate(root)
    assert (report.moved, report.relinked, report.superseded, report.complete) == (7, 2, 0, True)
    assert reads(root) == EXPECTED
    assert sorted(p.name for p in root.iterdir()) == [".layout", ".state", "a1", "b2", "c3", "d4"]
    assert os.readlink(root / "d4" / f"{CA_CHILD}.mp3") == f"../a1/{RE1}.mp3"
    assert (root / ".state" / "demo-secrets.json").is_file()  # not a SID's file: left where it is
    assert sorted(p.name for p in (root / ".state" / "legs").iterdir()) == ["d4"]


def test_a_migration_is_rerun_safe_and_a_rerun_moves_nothing(tmp_path):
    flat_volume(tmp_path)
    layout.migrate(tmp_path)
    again = layout.migrate(tmp_path)
    assert (again.changed, again.complete) == (0, True)
    assert reads(tmp_path) == EXPECTED


def test_an_interrupted_migration_finishes_on_the_next_run(tmp_path, monkeypatch):
    flat_volume(tmp_path)
    real_link, calls = os.link, []

    def crash_on_the_third(src, dst):
        calls.append(dst)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the process dies between two files
        return real_link(src, dst)

    monkeypatch.setattr(layout.os, "link", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        layout.migrate(tmp_path)
    monkeypatch.undo()
    assert not layout.is_fanned(tmp_path) and reads(tmp_path) == EXPECTED  # half moved: still all readable
    assert layout.migrate(tmp_path).complete
    assert reads(tmp_path) == EXPECTED


def test_a_file_written_in_the_new_layout_during_the_migration_wins_over_its_flat_copy(tmp_path):
    flat_volume(tmp_path)
    newer = sidecar.read(tmp_path, RE1, "mp3").marked(pinned=True)
    sidecar.write(tmp_path, newer)  # e.g. pinned by an operator before the migration reached it
    assert sidecar.read(tmp_path, RE1, "mp3").pinned  # the reader sees the newer one already
    report = layout.migrate(tmp_path)
    assert report.superseded == 1 and sidecar.read(tmp_path, RE1, "mp3").pinned
    assert not (tmp_path / f"{RE1}.mp3.json").exists()


def test_a_call_linked_to_a_flat_recording_moves_the_recording_first(tmp_path):
    flat_volume(tmp_path)
    assert storage.link_call(tmp_path, "CA" + "5" * 32, RE2, "mp3")
    link = tmp_path / "55" / f"{'CA' + '5' * 32}.mp3"
    assert link.read_bytes() == MP3  # the link resolves at once, not only after the migration
    assert (tmp_path / "b2" / f"{RE2}.mp3").is_file() and not (tmp_path / f"{RE2}.mp3").exists()


def test_eviction_and_the_index_rebuild_see_flat_and_fanned_files_alike(tmp_path, redis):
    flat_volume(tmp_path)
    storage.write_media(tmp_path, "RE" + "6" * 32, "mp3", [MP3], len(MP3))
    assert volume_index.rebuild(tmp_path, redis).indexed == 3
    layout.remove(tmp_path, RE1, f"{RE1}.mp3")
    assert not storage.is_cached(tmp_path, RE1, "mp3")


def test_after_the_marker_a_stray_file_at_the_top_level_is_not_read(tmp_path):
    layout.migrate(tmp_path)  # a new volume: the first pass only writes the marker
    (tmp_path / f"{RE1}.mp3").write_bytes(MP3)
    assert not storage.is_cached(tmp_path, RE1, "mp3")
    assert list(layout.entries(tmp_path)) == []


def test_a_pinned_sidecar_moved_while_it_is_read_is_still_read_pinned(tmp_path, monkeypatch):
    flat_volume(tmp_path)
    facts = json.loads((tmp_path / f"{RE1}.mp3.json").read_text())
    (tmp_path / f"{RE1}.mp3.json").write_text(json.dumps({**facts, "pinned": True}))
    real_read = type(tmp_path).read_bytes

    def migrated_just_before(self):
        if self.parent == tmp_path:  # the top level, as found a moment ago: the migration moves it now
            layout.migrate(tmp_path)
        return real_read(self)

    monkeypatch.setattr(type(tmp_path), "read_bytes", migrated_just_before)
    assert sidecar.read(tmp_path, RE1, "mp3").pinned  # eviction's check: never "no sidecar, not pinned"
    assert layout.is_fanned(tmp_path)


def test_a_removal_during_a_migration_leaves_nothing_behind(tmp_path, monkeypatch):
    flat_volume(tmp_path)
    real_unlink, unlinked = type(tmp_path).unlink, []

    def migration_links_meanwhile(self, missing_ok=False):
        real_unlink(self, missing_ok=missing_ok)
        unlinked.append(self)
        if len(unlinked) == 1:  # between the removal's two unlinks, the migration moves the file
            layout.adopt(tmp_path, RE2, f"{RE2}.mp3")

    monkeypatch.setattr(type(tmp_path), "unlink", migration_links_meanwhile)
    layout.remove(tmp_path, RE2, f"{RE2}.mp3")
    monkeypatch.undo()
    assert not storage.is_cached(tmp_path, RE2, "mp3") and not (tmp_path / "b2" / f"{RE2}.mp3").exists()
