"""Twilio SID formats, checked before a SID touches a path or a key.

The patterns here are the only spelling of a SID's shape: nginx's playback
location is rendered from ``PLAYABLE_PREFIXES`` and ``FORMAT``, and the web tier's
miss path and the volume scans compile theirs from the same strings.
"""

import re

from .errors import InvalidSid

FORMATS = ("mp3", "wav")
# What a player may ask for: a RecordingSid, or the SID of a call or a
# conference, which names its latest recording through an index.
PLAYABLE_PREFIXES = ("RE", "CA", "CF")
INDEX_PREFIXES = ("CA", "CF")


def pattern(*prefixes: str) -> str:
    """A regular expression (no anchors, no groups) for SIDs of these two-letter types."""
    return f"(?:{'|'.join(prefixes)})[0-9a-f]{{32}}"


PLAYABLE_SID = pattern(*PLAYABLE_PREFIXES)
RECORDING_SID = pattern("RE")
FORMAT = "|".join(FORMATS)  # an alternation: every user puts it inside a group
INDEX_SID = pattern(*INDEX_PREFIXES)
_SID = re.compile(pattern("AC", "CA", "CF", "CR", "RE"))  # CR: a public key (encryption)


def is_sid(value: object, prefix: str) -> bool:
    """True when ``value`` is a SID of the given two-letter type."""
    return isinstance(value, str) and value.startswith(prefix) and _SID.fullmatch(value) is not None


def is_playable(value: object) -> bool:
    """True for the SIDs a player may ask for: a RecordingSid, CallSid or ConferenceSid."""
    return any(is_sid(value, prefix) for prefix in PLAYABLE_PREFIXES)


def is_index_sid(value: object) -> bool:
    """True for a CallSid or ConferenceSid: SIDs that name a recording through an index."""
    return any(is_sid(value, prefix) for prefix in INDEX_PREFIXES)


def require_index_sid(value: object, field: str = "sid") -> str:
    """Return a CallSid or ConferenceSid, else raise InvalidSid."""
    if is_index_sid(value):
        return value  # type: ignore[return-value]
    raise InvalidSid(f"{field} must be a CallSid (CA…) or ConferenceSid (CF…), got {value!r}")


def require_sid(value: object, prefix: str, field: str = "sid") -> str:
    """Return ``value`` when it is a SID of type ``prefix``, else raise InvalidSid."""
    if not is_sid(value, prefix):
        raise InvalidSid(f"{field} must be {prefix} followed by 32 hex digits, got {value!r}")
    return value  # type: ignore[return-value]


def require_playable_sid(value: object, field: str = "sid") -> str:
    """Return a RecordingSid, CallSid or ConferenceSid; these are the SIDs a player may ask for."""
    if is_playable(value):
        return value  # type: ignore[return-value]
    raise InvalidSid(f"{field} must be a RecordingSid (RE…), CallSid (CA…) or ConferenceSid (CF…), got {value!r}")


def require_format(value: object) -> str:
    """Return ``value`` when it is a supported media format."""
    if value not in FORMATS:
        raise InvalidSid(f"format must be one of {', '.join(FORMATS)}, got {value!r}")
    return value  # type: ignore[return-value]
