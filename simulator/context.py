"""The per-app simulator context shared by the API and control blueprints."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from flask import current_app, request

from simulator.concurrency import Concurrency
from simulator.state import Store
from simulator.stats import Stats


@dataclass
class SimContext:
    """Credentials, data and counters of one simulator app."""

    account_sid: str
    auth_token: str
    public_url: str | None = None
    service_url: str | None = None
    store: Store = field(default_factory=Store)
    stats: Stats = field(default_factory=Stats)
    concurrency: Concurrency = field(default_factory=Concurrency)
    public_keys: dict = field(default_factory=dict)  # CR… -> the RSA public key recordings are encrypted for
    subaccounts: dict = field(default_factory=dict)  # AC… -> its auth token (an ISV's customers)

    def token_of(self, account_sid: str) -> str | None:
        """The auth token of the main account or one of its subaccounts."""
        return self.auth_token if account_sid == self.account_sid else self.subaccounts.get(account_sid)

    started: datetime = field(default_factory=lambda: datetime.now(UTC))

    def api_base_url(self) -> str:
        """Return the base URL clients reach the simulator at (for media_url)."""
        return (self.public_url or request.host_url).rstrip("/")


def sim() -> SimContext:
    """Return the context of the current app."""
    return current_app.extensions["simulator"]
