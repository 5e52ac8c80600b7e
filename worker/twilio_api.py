"""Access to Twilio's REST API, always at the configured origin.

Every URL is built here from ``TWILIO_API_BASE_URL`` and the SIDs; a
webhook's ``RecordingUrl`` is never fetched, so a forged callback cannot make
the worker connect anywhere else (no SSRF).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from .config import REQUESTED_CHANNELS, Settings
from .errors import IncompleteMedia, RecordingNotFound, UpstreamError, UpstreamNotReady, UpstreamRateLimited
from .sids import require_format, require_sid
from .twilio_slots import TwilioSlots, limit_session

log = logging.getLogger(__name__)

API_VERSION = "2010-04-01"
# The body is read 256 KiB at a time and handed on in chunks of up to 1 MiB
# (fewer Python rounds per byte), or whatever has arrived after CHUNK_SECONDS,
# so on a slow link the lock renewals that run between chunks keep coming (a
# 60 s lock is renewed down to 256 KiB per 40 s). Not urllib3's read1: over
# TLS it returns one 16 KiB record per call (bench/README.md, experiments).
READ_BYTES = 256 * 1024
CHUNK_BYTES = 1024 * 1024
CHUNK_SECONDS = 0.2
MAX_REDIRECTS = 3


# Twilio's RFC 2822 form: no named zones, no two-digit years, and fields
# too short to overflow a datetime. The day name is not checked, as RFC 2822
# parsers (email.utils) do not check it either.
_TWILIO_TIME = re.compile(
    r"[A-Z][a-z]{2}, (\d{2}) ([A-Z][a-z]{2}) (\d{4}) (\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})", re.ASCII
)
_MONTHS = {name: number for number, name in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def iso_time(twilio_time: str) -> str:
    """A Twilio timestamp (``Tue, 01 Sep 2026 10:00:00 +0000``) as sortable ISO
    8601 UTC; ValueError when malformed.

    Read from the fields the pattern has already matched, whatever the locale
    (``strptime``'s ``%a`` and ``%b`` follow LC_TIME); a four-digit year is the
    year as written. ``-0000`` means UTC (RFC 2822: offset unknown).
    """
    match = _TWILIO_TIME.fullmatch(twilio_time) if isinstance(twilio_time, str) else None
    month = _MONTHS.get(match.group(2)) if match else None
    if month is None:
        raise ValueError(f"not an RFC 2822 date as Twilio sends them: {twilio_time!r}")
    day, _, year, hour, minute, second, sign, offset_h, offset_m = match.groups()
    offset = timedelta(hours=int(offset_h), minutes=int(offset_m)) * (-1 if sign == "-" else 1)
    # The constructor refuses a day, hour or offset out of range (ValueError).
    local = datetime(int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=timezone(offset))
    try:
        return local.astimezone(UTC).isoformat(timespec="seconds")
    except OverflowError:  # 31 Dec 9999 west of UTC, 1 Jan 0001 east of it
        raise ValueError(f"not a representable time: {twilio_time!r}") from None


def account_url(settings: Settings) -> str:
    """Base URL of the account's resources at the configured origin."""
    return f"{settings.twilio_api_base_url}/{API_VERSION}/Accounts/{settings.twilio_account_sid}"


def _auth(settings: Settings) -> tuple[str, str]:
    """The credentials of the account these settings name (a subaccount's, for its recordings)."""
    return settings.twilio_account_sid, settings.twilio_auth_token


def media_url(settings: Settings, recording_sid: str, fmt: str) -> str:
    """The media URL of a recording; the only place media is fetched from."""
    return f"{account_url(settings)}/Recordings/{require_sid(recording_sid, 'RE')}.{require_format(fmt)}"


def is_twilio_url(settings: Settings, url: str) -> bool:
    """True when ``url`` is on the configured Twilio origin (for logging webhooks)."""
    # Every genuine callback's RecordingUrl starts with the origin and "/":
    # that test alone costs a webhook a tenth of what two urlsplit() calls do.
    if url.startswith(settings.twilio_api_base_url + "/"):  # Settings strips its trailing "/"
        return True
    try:
        theirs = urlsplit(url)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host: not our origin
        return False
    ours = urlsplit(settings.twilio_api_base_url)
    return (ours.scheme, ours.netloc) == (theirs.scheme, theirs.netloc)


def new_session(settings: Settings, slots: TwilioSlots | None = None) -> requests.Session:
    """A pooled HTTP session carrying the account's basic auth; with ``slots``,
    every request first takes one of the account's concurrency slots."""
    session = requests.Session()
    session.auth = (settings.twilio_account_sid, settings.twilio_auth_token)
    session.headers["User-Agent"] = "recording-cache/1"
    session.max_redirects = MAX_REDIRECTS
    if slots is not None:
        limit_session(session, slots)
    return session


@dataclass
class MediaStream:
    """An open media response: its declared length and its body in chunks.

    Use it as a context manager: leaving the block closes the connection, so a
    download that stops early (lost lock, wrong bytes, full volume) ends the
    transfer at once instead of when the garbage collector gets to it.
    """

    response: requests.Response
    length: int

    def __enter__(self) -> MediaStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.response.close()

    def chunks(self) -> Iterator[bytes]:
        """Body chunks; a broken connection becomes an UpstreamError."""
        pieces: list[bytes] = []
        size, since = 0, time.monotonic()
        try:
            for piece in self.response.iter_content(READ_BYTES):
                pieces.append(piece)
                size += len(piece)
                if size >= CHUNK_BYTES or time.monotonic() - since >= CHUNK_SECONDS:
                    yield b"".join(pieces)
                    pieces, size, since = [], 0, time.monotonic()
        except requests.exceptions.ChunkedEncodingError as exc:
            raise IncompleteMedia(f"media body ended early: {exc}") from exc
        except requests.RequestException as exc:  # a broken connection, a body that does not decode
            raise UpstreamError(f"media transfer broke: {type(exc).__name__}: {exc}") from exc
        if pieces:
            yield b"".join(pieces)


def open_media(session: requests.Session, settings: Settings, recording_sid: str, fmt: str) -> MediaStream:
    """Start the media GET; raise UpstreamNotReady on 404, UpstreamError on faults.

    Twilio may redirect media to its storage; requests follows at most
    MAX_REDIRECTS and drops the Authorization header when the host changes.
    """
    url = media_url(settings, recording_sid, fmt)
    requested = REQUESTED_CHANNELS[settings.recording_channels]
    if requested:  # 1 downmixes a dual-channel recording; 2 splits a conference's parties
        url += f"?RequestedChannels={requested}"
    timeout = (settings.download_connect_timeout, settings.download_read_timeout)
    try:
        response = session.get(url, stream=True, timeout=timeout, auth=_auth(settings))
    except (requests.RequestException, ValueError) as exc:  # ValueError: a redirect to an unparsable URL
        raise UpstreamError(f"media GET failed: {type(exc).__name__}") from exc
    if response.status_code == 404:
        response.close()
        raise UpstreamNotReady(f"media of {recording_sid} is not available yet")
    if response.status_code == 429:
        response.close()
        raise rate_limited("media GET", response)
    if response.status_code != 200:
        response.close()
        raise UpstreamError(f"media GET answered {response.status_code}")
    try:
        length = int(response.headers["Content-Length"])
    except (KeyError, ValueError):
        response.close()
        raise UpstreamError("media response has no Content-Length") from None
    return MediaStream(response=response, length=length)


def rate_limited(what: str, response: requests.Response) -> UpstreamRateLimited:
    """The error for Twilio's 429, with its Retry-After (seconds) when it sent a usable one."""
    raw = response.headers.get("Retry-After", "")
    retry_after = float(raw) if raw.isascii() and raw.isdigit() and int(raw) <= 3600 else None
    return UpstreamRateLimited(f"{what} answered 429: too many concurrent requests", retry_after)


def get_recording(session: requests.Session, settings: Settings, recording_sid: str) -> dict:
    """The Recording resource; RecordingNotFound when Twilio does not know it."""
    url = f"{account_url(settings)}/Recordings/{require_sid(recording_sid, 'RE')}.json"
    timeout = (settings.download_connect_timeout, settings.download_read_timeout)
    try:
        response = session.get(url, timeout=timeout, auth=_auth(settings))
    except (requests.RequestException, ValueError) as exc:
        raise UpstreamError(f"recording lookup failed: {type(exc).__name__}") from exc
    if response.status_code == 404:
        raise RecordingNotFound(f"Twilio does not know recording {recording_sid}")
    if response.status_code == 429:
        raise rate_limited("recording lookup", response)
    if response.status_code != 200:
        raise UpstreamError(f"recording lookup answered {response.status_code}")
    try:
        resource = response.json()
    except (ValueError, RecursionError):
        resource = None
    if not isinstance(resource, dict):
        raise UpstreamError(f"recording lookup of {recording_sid} answered something other than a JSON object")
    return resource


def make_client(settings: Settings, slots: TwilioSlots | None = None) -> Client:
    """A twilio ``Client`` whose API domain points at TWILIO_API_BASE_URL (its requests through ``slots``)."""
    http_client = TwilioHttpClient(timeout=settings.download_connect_timeout + settings.download_read_timeout)
    if slots is not None:
        limit_session(http_client.session, slots)
    client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http_client)
    client.api.base_url = settings.twilio_api_base_url
    return client


def created_within(resource, since: datetime, until: datetime | None = None) -> bool:
    """True when a listed resource was created in [since, until): Twilio's DateCreated
    filters work in whole GMT days, so a list asked for a window returns more."""
    created = getattr(resource, "date_created", None)
    if not isinstance(created, datetime):  # the twilio package keeps what it cannot parse: keep it, to be safe
        return True
    return since <= created and (until is None or created < until)


def call_twilio(func, *args, **kwargs):
    """Run a twilio-package call, mapping its failures onto ours."""
    try:
        return func(*args, **kwargs)
    except TwilioRestException as exc:
        if exc.status == 404:
            raise RecordingNotFound(f"Twilio does not know {exc.uri}") from None
        if exc.status == 429:
            raise UpstreamRateLimited("Twilio answered 429: too many concurrent requests") from exc
        raise UpstreamError(f"Twilio answered {exc.status}") from exc
    except (TwilioException, requests.RequestException) as exc:
        raise UpstreamError(f"Twilio lookup failed: {type(exc).__name__}") from exc
    except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:
            raise  # raised by the call itself (our arguments), not inside the twilio package
        # The twilio package builds its objects from whatever JSON came back.
        raise UpstreamError(f"Twilio's answer was not understood: {type(exc).__name__}: {exc}") from exc
