"""Twilio's concurrency limit on one account: 429 (error 20429) above it.

Twilio counts the requests an account has in flight, a streamed media
download included until its body is sent, and refuses a request that arrives
above the limit. The simulator does the same when a limit is set
(``POST /_sim/limits``) and counts what the service should never cause: the
requests it refused, and the most it ever had in flight.
"""

from __future__ import annotations

import threading
from typing import Any


class Concurrency:
    """In-flight Twilio API requests of the simulated account, against an optional limit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.limit: int | None = None
        self.retry_after: int | None = None  # seconds, sent as Retry-After with a 429 when set
        self.reset()

    def reset(self) -> None:
        """Zero the counters (the limit stays)."""
        with self._lock:
            self.in_flight = 0
            self.in_flight_max = 0
            self.over_limit = 0

    def configure(self, limit: int | None, retry_after: int | None) -> None:
        with self._lock:
            self.limit, self.retry_after = limit, retry_after

    def enter(self) -> bool:
        """Count a request in; False (and counted as over the limit) when the account is at its limit."""
        with self._lock:
            if self.limit is not None and self.in_flight >= self.limit:
                self.over_limit += 1
                return False
            self.in_flight += 1
            self.in_flight_max = max(self.in_flight_max, self.in_flight)
            return True

    def leave(self) -> None:
        """Count a request out, once its response is fully sent."""
        with self._lock:
            self.in_flight -= 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "limit": self.limit,
                "in_flight": self.in_flight,
                "in_flight_max": self.in_flight_max,
                "over_limit": self.over_limit,
            }
