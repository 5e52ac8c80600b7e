"""Subaccounts: an ISV's recordings arrive from many subaccounts of one main account.

A webhook from a subaccount is signed with that subaccount's auth token, and
its recordings are fetched with its credentials. The tokens come from Twilio
through the main account (``GET /Accounts.json`` lists its subaccounts, each
with its auth token) and are kept in one Redis hash, which the web tier reads
to validate signatures: the web tier itself never calls Twilio. The worker
refreshes the hash periodically, when a webhook names an account it does not
know, and before it gives up on a recording whose subaccount it does not know.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass

import redis
from twilio.rest import Client

from . import keys
from .config import Settings
from .errors import RecordingNotFound
from .sids import is_sid
from .twilio_api import call_twilio

log = logging.getLogger(__name__)

SYNC_CLAIM_SECONDS = 30  # at most one sync a webhook for an unknown account asks for, per this long


class UnknownAccount(RecordingNotFound):
    """A task names an AccountSid that is not (or no longer) a subaccount of TWILIO_ACCOUNT_SID:
    for this service the recording is not there (the fetch finishes as not_found)."""

    def __init__(self, account_sid: str):
        super().__init__(f"{account_sid} is not a subaccount of TWILIO_ACCOUNT_SID")


@dataclass
class SyncReport:
    subaccounts: int = 0
    added: int = 0
    removed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def sync(settings: Settings, r: redis.Redis, client: Client) -> SyncReport:
    """Keep the hash of subaccount tokens equal to the main account's active subaccounts."""
    main = settings.twilio_account_sid
    found = {
        account.sid: account.auth_token
        for account in call_twilio(client.api.v2010.accounts.list, page_size=1000)
        if is_sid(account.sid, "AC")
        and account.sid != main
        and account.owner_account_sid == main
        and account.status == "active"
        and account.auth_token
    }
    known = {sid.decode(): token.decode() for sid, token in r.hgetall(keys.subaccounts()).items()}
    gone = [sid for sid in known if sid not in found]
    with r.pipeline() as pipe:
        if found:
            pipe.hset(keys.subaccounts(), mapping=found)
        if gone:
            pipe.hdel(keys.subaccounts(), *gone)
        pipe.execute()
    report = SyncReport(subaccounts=len(found), added=len(found.keys() - known.keys()), removed=len(gone))
    log.info("accounts.synced", extra=report.as_dict())
    return report


def token(r: redis.Redis, settings: Settings, account_sid: str) -> str | None:
    """The auth token Twilio signs this account's webhooks with: the main account's, or a known subaccount's."""
    if account_sid == settings.twilio_account_sid:
        return settings.twilio_auth_token
    if not is_sid(account_sid, "AC"):
        return None
    known = r.hget(keys.subaccounts(), account_sid)
    return known.decode() if known else None


def settings_for(settings: Settings, r: redis.Redis, client: Client, account_sid: str | None) -> Settings:
    """The settings a fetch of this account's recording runs with: a subaccount's SID and token
    in place of the main account's (its URLs and credentials); synced once when unknown."""
    if account_sid is None or account_sid == settings.twilio_account_sid:
        return settings
    found = token(r, settings, account_sid)
    if found is None:
        sync(settings, r, client)
        found = token(r, settings, account_sid)
    if found is None:
        raise UnknownAccount(account_sid)
    return dataclasses.replace(settings, twilio_account_sid=account_sid, twilio_auth_token=found)


def claim_sync(r: redis.Redis) -> bool:
    """True for the first webhook of an unknown account in SYNC_CLAIM_SECONDS: it asks for a sync."""
    return bool(r.set(keys.subaccounts_sync_claim(), "1", nx=True, ex=SYNC_CLAIM_SECONDS))
