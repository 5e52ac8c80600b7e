"""Where a SID's files live on the volume: one of 256 folders, named by the SID's last two hex digits.

    RECORDINGS_DIR/ab/RE…ab.mp3          a recording (and its .mp3.json sidecar, its .peaks.json)
    RECORDINGS_DIR/cd/CA…cd.mp3 -> ../ab/RE…ab.mp3
    RECORDINGS_DIR/.state/legs/cd/CA…cd  a child leg's parent (also .state/children/cd/CA…cd/)

One flat folder holds three entries per recording (media, sidecar, call link),
and ext4 without ``large_dir`` refuses new names in a folder past about 8.4
million (bench row 8 met it). Fanned out, ten million recordings are about
120,000 entries a folder. nginx finds a file from the SID alone, as Python
does: its location captures the same two digits (``fanned_pattern``).

A volume an earlier version wrote flat is moved in place by ``migrate``
(rerun-safe; maintenance runs it, ``recording-cache migrate-layout`` by hand).
Until a pass has found nothing left to move and written the marker, readers
(``find``) and scans (``entries``) also look at the top level, and nginx falls
back to it, so playback goes on meanwhile.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import atomic
from .sids import FORMAT, pattern

FAN_DIGITS = 2
MARKER = ".layout"  # written when no flat entry is left: readers stop looking at the top level
MARKER_TEXT = f"fan-out: the last {FAN_DIGITS} hex digits of the SID\n"
STATE_SUBDIRS = (".state/legs", ".state/children")
MAX_PASSES = 3
_FOLDER = re.compile(f"[0-9a-f]{{{FAN_DIGITS}}}")
# The files of a SID that live in its folder: media or a call link, a sidecar, peaks.
_SID_FILE = re.compile(rf"({pattern('RE', 'CA', 'CF')})\.(?:(?:{FORMAT})(?:\.json)?|peaks\.json)")
_SID = re.compile(pattern("CA"))
_fanned_roots: set[Path] = set()


def fanned_pattern(*prefixes: str, capture: str = "rc_fan") -> str:
    """A SID regular expression that also captures its folder (for nginx's locations)."""
    return f"(?:{'|'.join(prefixes)})[0-9a-f]{{{32 - FAN_DIGITS}}}(?<{capture}>[0-9a-f]{{{FAN_DIGITS}}})"


def folder_of(sid: str) -> str:
    return sid[-FAN_DIGITS:]


def path(root: Path, sid: str, name: str, sub: str = "") -> Path:
    """Where ``name`` (a file of ``sid``) is written: its fan-out folder."""
    return (root / sub if sub else root) / folder_of(sid) / name


def find(root: Path, sid: str, name: str, sub: str = "") -> Path:
    """Where ``name`` is read: its folder, or the top level of a volume not yet migrated."""
    fanned = path(root, sid, name, sub)
    if is_fanned(root) or os.path.lexists(fanned):
        return fanned
    flat = (root / sub if sub else root) / name
    return flat if os.path.lexists(flat) else fanned


def candidates(root: Path, sid: str, name: str, sub: str = "") -> list[Path]:
    """Every place ``name`` may be: its folder, and the top level until the volume is migrated."""
    fanned = path(root, sid, name, sub)
    return [fanned] if is_fanned(root) else [fanned, (root / sub if sub else root) / name]


def exists(root: Path, sid: str, name: str) -> bool:
    """``find(…).exists()`` without its race: a migration moves the file between the check and the use."""
    return any(place.exists() for place in _reading_order(root, sid, name))


def _reading_order(root: Path, sid: str, name: str, sub: str = "") -> list[Path]:
    """The folder (newest when both exist), the top level, then the folder again: a
    migration moving the file in between is still found, as it only moves it into the folder."""
    places = candidates(root, sid, name, sub)
    return places + places[:1] if len(places) > 1 else places


def read_bytes(root: Path, sid: str, name: str, sub: str = "") -> bytes:
    """The file's bytes wherever it is; FileNotFoundError when nowhere."""
    for place in _reading_order(root, sid, name, sub):
        try:
            return place.read_bytes()
        except FileNotFoundError:
            continue
    raise FileNotFoundError(path(root, sid, name, sub))


def readlink(root: Path, sid: str, name: str) -> str:
    """A call link's target wherever the link is (as ``read_bytes``); OSError when there is none."""
    for place in _reading_order(root, sid, name):
        try:
            return os.readlink(place)
        except FileNotFoundError:
            continue
    raise FileNotFoundError(path(root, sid, name))


def remove(root: Path, sid: str, name: str) -> None:
    """Delete ``name`` wherever it is (in the middle of a migration, both places).

    The top level first: a migration's link into the folder can then never
    bring back a file this removed.
    """
    for place in reversed(candidates(root, sid, name)):
        place.unlink(missing_ok=True)


def ensure_folder(file: Path) -> None:
    """Create the folder ``file`` goes in, durably (its parent fsynced) the first time."""
    try:
        file.parent.mkdir()
    except FileExistsError:
        return
    except FileNotFoundError:  # a new volume: its root (or .state/legs) is not there yet
        file.parent.mkdir(parents=True, exist_ok=True)
    atomic.fsync_dir(file.parent.parent)


def adopt(root: Path, sid: str, name: str, report: MigrateReport | None = None) -> Path:
    """The file's path in its folder, where it is moved first if it is still at the top level
    (so a call link written to it never dangles)."""
    dest = path(root, sid, name)
    flat = root / name
    if not is_fanned(root) and not os.path.lexists(dest) and flat.is_file():
        ensure_folder(dest)
        _move(flat, dest, report or MigrateReport())
    return dest


def is_fanned(root: Path) -> bool:
    """True once the volume holds no flat entry (its marker is there); remembered per process."""
    if root in _fanned_roots:
        return True
    if (root / MARKER).exists():
        _fanned_roots.add(root)
        return True
    return False


def entries(root: Path, sub: str = "") -> Iterator[os.DirEntry]:
    """Every entry of every folder (and the top level's, until the volume is migrated)."""
    base = root / sub if sub else root
    flat_too, folders = not is_fanned(root), []
    try:
        with os.scandir(base) as top:
            for entry in top:
                if _FOLDER.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                elif flat_too and not entry.name.startswith("."):
                    yield entry
    except FileNotFoundError:
        return
    for folder in sorted(folders):
        try:
            with os.scandir(folder) as inside:
                yield from inside
        except FileNotFoundError:
            continue


@dataclass
class MigrateReport:
    """What a migration did (a rerun on a migrated volume: all zero, complete)."""

    moved: int = 0  # files moved into their folder
    relinked: int = 0  # call links written again, pointing into the recording's folder
    superseded: int = 0  # flat entries dropped because a newer one was already in the folder
    complete: bool = False  # a pass found nothing left: the marker is written
    seconds: float = 0.0

    @property
    def changed(self) -> int:
        return self.moved + self.relinked + self.superseded

    def as_dict(self) -> dict:
        return {**vars(self), "seconds": round(self.seconds, 2)}


def migrate(root: Path) -> MigrateReport:
    """Move a flat volume's files into their folders, in place; rerun-safe and safe beside running workers.

    Each file is hard-linked into its folder (never over a file there: one
    written since, in the new layout, is newer and wins) and then unlinked from
    the top level, so a reader finds it in one place or the other at every
    moment. A call link is written again with its target in the recording's
    folder. The marker is written once a pass finds nothing left to move.
    """
    report, started = MigrateReport(), time.monotonic()
    root.mkdir(parents=True, exist_ok=True)  # a new volume: its first write would create it anyway
    # A second pass finds what was written flat during the first (by a worker
    # of the earlier version, in a rolling upgrade); only an empty pass marks it.
    for _ in range(MAX_PASSES):
        before = report.changed
        _migrate_legs(root / STATE_SUBDIRS[0], report)
        _migrate_children(root / STATE_SUBDIRS[1], report)
        _migrate_files(root, report)
        _sync_folders(root)  # the pass's links are durable before the marker says it is done
        if report.changed == before:
            atomic.write_bytes(root / MARKER, MARKER_TEXT.encode())
            atomic.fsync_dir(root)
            _fanned_roots.add(root)
            report.complete = True
            break
    report.seconds = time.monotonic() - started
    return report


def _sync_folders(root: Path) -> None:
    for base in (root, *(root / sub for sub in STATE_SUBDIRS)):
        try:
            with os.scandir(base) as found:
                folders = [entry.path for entry in found if _FOLDER.fullmatch(entry.name) and entry.is_dir()]
        except FileNotFoundError:
            continue
        for folder in folders:
            atomic.fsync_dir(Path(folder))


def _migrate_files(root: Path, report: MigrateReport) -> None:
    with os.scandir(root) as top:
        for entry in top:
            named = _SID_FILE.fullmatch(entry.name)
            if named is None:
                continue
            dest = path(root, named[1], entry.name)
            ensure_folder(dest)
            if entry.is_symlink():
                _relink(root, entry, dest, report)
            else:
                _move(Path(entry.path), dest, report)


def _relink(root: Path, entry: os.DirEntry, dest: Path, report: MigrateReport) -> None:
    try:
        target_name = Path(os.readlink(entry.path)).name  # RE….mp3: the recording the call's link names
    except FileNotFoundError:  # another migrator took it
        return
    target = adopt(root, target_name.partition(".")[0], target_name, report)
    try:
        os.symlink(os.path.relpath(target, dest.parent), dest)
        report.relinked += 1
    except FileExistsError:
        report.superseded += 1  # linked again since, in the new layout
    Path(entry.path).unlink(missing_ok=True)


def _move(flat: Path, dest: Path, report: MigrateReport) -> None:
    try:
        os.link(flat, dest)
        report.moved += 1
    except FileExistsError:
        report.superseded += 1
    except FileNotFoundError:  # moved already (for a call link to it, or by another migrator)
        return
    flat.unlink(missing_ok=True)


def _migrate_legs(legs: Path, report: MigrateReport) -> None:
    for entry in _flat_sids(legs):
        dest = legs / folder_of(entry.name) / entry.name
        ensure_folder(dest)
        _move(Path(entry.path), dest, report)


def _migrate_children(children: Path, report: MigrateReport) -> None:
    for entry in _flat_sids(children):
        dest = children / folder_of(entry.name) / entry.name
        dest.mkdir(parents=True, exist_ok=True)
        with os.scandir(entry.path) as legs:
            for child in legs:
                (dest / child.name).touch()
                Path(child.path).unlink(missing_ok=True)
                report.moved += 1
        try:
            os.rmdir(entry.path)
        except OSError:  # a leg added meanwhile (or another migrator took it): the next pass
            continue


def _flat_sids(base: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(base) as found:
            return [entry for entry in found if _SID.fullmatch(entry.name)]
    except FileNotFoundError:
        return []
