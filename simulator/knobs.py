"""Per-recording fault knobs and validation of the JSON that sets them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Knobs:
    """How media GETs for one recording misbehave; the defaults are fast and clean."""

    ready_after: int = 0  # media GETs answered 404 before the media is ready
    ready_in_ms: int = 0  # media stays 404 until this long after creation/PATCH
    fail_first: int = 0  # then this many media GETs answer 500
    truncate_at: int | None = None  # close the connection after this many bytes
    garbage: bool = False  # right length, not audio
    delay_ms: int = 0  # latency before the response starts
    throughput: int = 0  # bytes per second, 0 = unlimited
    hang_ms: int = 0  # send headers, then stall this long before the body
    redirect_to: str | None = None  # answer media GETs with 302 to this URL
    tamper_at: int | None = None  # flip the bits of the body's byte at this offset (same length)

    def to_dict(self) -> dict[str, Any]:
        """Return the knobs as a JSON-ready dict."""
        return dataclasses.asdict(self)


KNOB_NAMES = frozenset(field.name for field in dataclasses.fields(Knobs))
_BOOL_KNOBS = frozenset({"garbage"})
_NULLABLE_INT_KNOBS = frozenset({"truncate_at", "tamper_at"})
_NULLABLE_STR_KNOBS = frozenset({"redirect_to"})


def _check_int(name: str, value: Any) -> int:
    # bool is a subclass of int; "true" for a byte count is a caller mistake.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if value < 0:
        raise ValueError(f"{name} must be >= 0")
    return value


def check_value(name: str, value: Any) -> Any:
    """Validate one knob value from JSON and return it (raises ValueError)."""
    if name in _BOOL_KNOBS:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        return value
    if name in _NULLABLE_STR_KNOBS:
        if value is not None and (not isinstance(value, str) or not value):
            raise ValueError(f"{name} must be a non-empty string or null")
        return value
    if name in _NULLABLE_INT_KNOBS and value is None:
        return None
    return _check_int(name, value)


def apply_knobs(base: Knobs, changes: Mapping[str, Any]) -> Knobs:
    """Return ``base`` with the knob fields present in ``changes`` validated and applied."""
    picked = {name: check_value(name, changes[name]) for name in KNOB_NAMES & changes.keys()}
    return dataclasses.replace(base, **picked)
