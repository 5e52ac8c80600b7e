"""Thread-safe request counters exposed by ``GET /_sim/stats``."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from typing import Any


class Stats:
    """Counts Twilio API requests by kind and media GETs per recording and format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._requests_total = 0
            self._unauthorized_total = 0
            self._by_kind: Counter[str] = Counter()
            self._media_gets: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._media_complete: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._requested_channels: defaultdict[str, Counter[str]] = defaultdict(Counter)
            self._by_account: Counter[str] = Counter()

    def count_request(self, kind: str) -> None:
        """Count one request to the Twilio API surface."""
        with self._lock:
            self._requests_total += 1
            self._by_kind[kind] += 1

    def count_account(self, account_sid: str) -> None:
        """Count one request authenticated as this account (the main one, or a subaccount)."""
        with self._lock:
            self._by_account[account_sid] += 1

    def count_unauthorized(self) -> None:
        """Count one request rejected with 401."""
        with self._lock:
            self._unauthorized_total += 1

    def count_media_get(self, recording_sid: str, fmt: str) -> None:
        """Count one authenticated media GET, whatever its answer."""
        with self._lock:
            self._media_gets[recording_sid][fmt] += 1

    def count_requested_channels(self, recording_sid: str, requested: str | None) -> None:
        """Count the RequestedChannels a media GET named ("1", "2" or "as-recorded")."""
        with self._lock:
            self._requested_channels[recording_sid][requested or "as-recorded"] += 1

    def count_media_complete(self, recording_sid: str, fmt: str) -> None:
        """Count one media body sent in full."""
        with self._lock:
            self._media_complete[recording_sid][fmt] += 1

    def snapshot(self) -> dict[str, Any]:
        """Return all counters as a JSON-ready dict."""
        with self._lock:
            return {
                "requests_total": self._requests_total,
                "unauthorized_total": self._unauthorized_total,
                "by_path_kind": dict(self._by_kind),
                "media_gets": _per_format(self._media_gets),
                "media_gets_total": _total(self._media_gets),
                "media_complete": _per_format(self._media_complete),
                "media_complete_total": _total(self._media_complete),
                "requested_channels": {sid: dict(c) for sid, c in self._requested_channels.items()},
                "by_account": dict(self._by_account),
            }


def _per_format(counts: dict[str, Counter[str]]) -> dict[str, dict[str, int]]:
    # Always report both formats so callers can index without .get().
    return {sid: {"mp3": c["mp3"], "wav": c["wav"]} for sid, c in counts.items()}


def _total(counts: dict[str, Counter[str]]) -> int:
    return sum(sum(c.values()) for c in counts.values())
