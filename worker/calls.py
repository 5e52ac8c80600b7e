"""The call index: which recording a CallSid, or a child leg of it, plays.

Twilio files a ``<Dial>`` recording under the parent call while a UI often
only knows the child leg, so every call the service knows of gets a link on
the volume (``storage.link_call``) to its latest recording.
"""

from __future__ import annotations

import logging

from . import storage
from .config import Settings

log = logging.getLogger(__name__)


def link_call_and_legs(settings: Settings, call_sid: str, recording_sid: str, fmt: str) -> None:
    """Point the call and its known child legs at the recording on the volume."""
    root = settings.recordings_dir
    for sid in [call_sid, *storage.children_of(root, call_sid)]:
        if storage.link_call(root, sid, recording_sid, fmt):
            log.info("call.linked", extra={"call_sid": sid, "recording_sid": recording_sid, "format": fmt})


def record_leg(settings: Settings, child_sid: str, parent_sid: str, fmt: str) -> str | None:
    """Keep a child leg's parent on the volume; link the leg when the parent's recording is cached."""
    root = settings.recordings_dir
    storage.record_leg(root, child_sid, parent_sid)
    recording_sid = storage.resolve_link(root, parent_sid, fmt)
    if recording_sid:
        storage.link_call(root, child_sid, recording_sid, fmt)
    return recording_sid
