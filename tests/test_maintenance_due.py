"""Maintenance is sent only when it has work: nothing at idle, each due job once per period."""

from __future__ import annotations

from dataclasses import replace

import pytest

from worker import layout, volume_index
from worker.maintenance import due, playlog, relayout


@pytest.fixture(autouse=True)
def fanned(settings):
    """A volume in today's layout (its migration's first pass marked it)."""
    settings.recordings_dir.mkdir(parents=True, exist_ok=True)
    layout.migrate(settings.recordings_dir)


def test_an_idle_service_sends_nothing(settings, redis, tmp_path):
    settings = replace(settings, playback_log=tmp_path / "playback.log")
    volume_index.rebuild(settings.recordings_dir, redis)  # an empty volume, fully indexed
    assert due.due(settings, redis) == []


def test_new_playback_lines_are_due_once_per_period_and_not_after_ingestion(settings, redis, tmp_path):
    settings = replace(settings, playback_log=tmp_path / "playback.log")
    volume_index.rebuild(settings.recordings_dir, redis)
    settings.playback_log.write_text("1796600000.000 RE" + "1" * 32 + " mp3 206 100\n")
    assert due.due(settings, redis) == ["maintenance.ingest_playlog"]
    assert due.due(settings, redis) == []  # claimed: another worker does not send it again
    redis.delete("maintenance-claim:maintenance.ingest_playlog")
    playlog.ingest(settings, redis)
    assert not playlog.has_new_lines(settings.playback_log, redis)
    assert due.due(settings, redis) == []


def test_a_missing_index_and_a_volume_over_budget_are_due(settings, redis, tmp_path):
    settings = replace(settings, playback_log=tmp_path / "playback.log", cache_max_bytes=500)
    assert due.due(settings, redis) == ["maintenance.index_volume"]  # no index in this Redis yet
    volume_index.add(redis, "RE" + "2" * 32, "mp3", 1000, 1.0)
    volume_index.rebuild(settings.recordings_dir, redis)
    assert due.due(settings, redis) == ["maintenance.evict"]


def test_a_volume_without_the_layout_marker_is_due_for_migration_until_a_pass_marks_it(settings, redis, tmp_path):
    settings = replace(settings, playback_log=tmp_path / "playback.log", recordings_dir=tmp_path / "flat")
    volume_index.rebuild(settings.recordings_dir, redis)
    assert due.due(settings, redis) == ["maintenance.migrate_layout"]
    assert due.due(settings, redis) == []  # claimed for its period
    assert relayout.migrate(settings, redis).complete
    redis.delete("maintenance-claim:maintenance.migrate_layout")
    assert due.due(settings, redis) == []
