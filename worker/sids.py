"""Twilio SID formats, checked before a SID touches a path or a key."""

import re

from .errors import InvalidSid

_SID = re.compile(r"(AC|CA|RE)[0-9a-f]{32}")
FORMATS = ("mp3", "wav")


def is_sid(value: object, prefix: str) -> bool:
    """True when ``value`` is a SID of the given two-letter type."""
    return isinstance(value, str) and value.startswith(prefix) and _SID.fullmatch(value) is not None


def require_sid(value: object, prefix: str, field: str = "sid") -> str:
    """Return ``value`` when it is a SID of type ``prefix``, else raise InvalidSid."""
    if not is_sid(value, prefix):
        raise InvalidSid(f"{field} must be {prefix} followed by 32 hex digits, got {value!r}")
    return value  # type: ignore[return-value]


def require_playable_sid(value: object, field: str = "sid") -> str:
    """Return a RecordingSid or CallSid; these are the SIDs a player may ask for."""
    if is_sid(value, "RE") or is_sid(value, "CA"):
        return value  # type: ignore[return-value]
    raise InvalidSid(f"{field} must be a RecordingSid (RE…) or CallSid (CA…), got {value!r}")


def require_format(value: object) -> str:
    """Return ``value`` when it is a supported media format."""
    if value not in FORMATS:
        raise InvalidSid(f"format must be one of {', '.join(FORMATS)}, got {value!r}")
    return value  # type: ignore[return-value]
