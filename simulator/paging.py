"""Twilio list semantics: DateCreated filters, Page/PageSize/PageToken, page JSON."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, Protocol
from urllib.parse import urlencode

from simulator.resources import ApiError
from simulator.state import OrderKey

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

# The twilio library sends "DateCreated>" / "DateCreated<" as parameter names,
# so on the wire they read "DateCreated>=..." / "DateCreated<=...": inclusive.
_DATE_OPERATORS = {"DateCreated": operator.eq, "DateCreated>": operator.ge, "DateCreated<": operator.le}


class Listed(Protocol):
    """Anything a Twilio list can page over (calls and recordings)."""

    @property
    def sid(self) -> str: ...

    @property
    def date_created(self) -> datetime: ...

    @property
    def seq(self) -> int: ...


@dataclass(frozen=True)
class PageRequest:
    """The paging part of a list request, plus the filters to echo in page URIs."""

    page: int
    page_size: int
    page_token: str | None
    echo: tuple[tuple[str, str], ...]


def _int_param(args: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, 20001, f"Invalid {name}: {raw}") from None
    if not low <= value <= high:
        raise ApiError(400, 20001, f"{name} must be between {low} and {high}")
    return value


def parse_page_request(args: Mapping[str, str], filter_names: Sequence[str]) -> PageRequest:
    """Read Page, PageSize and PageToken; remember the filters present."""
    return PageRequest(
        page=_int_param(args, "Page", 0, 0, 10**9),
        page_size=_int_param(args, "PageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE),
        page_token=args.get("PageToken") or None,
        echo=tuple((name, args[name]) for name in filter_names if args.get(name)),
    )


def _parse_when(name: str, raw: str) -> date | datetime:
    try:
        if len(raw) == 10:
            return date.fromisoformat(raw)
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ApiError(400, 20001, f"Invalid {name}: {raw}") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _date_check(compare: Callable[[Any, Any], bool], bound: date | datetime) -> Callable[[datetime], bool]:
    # Whole GMT days, as Twilio documents: a date-time bound counts for its day
    # (DateCreated>=2026-12-06T15:00:00Z lists all of the 6th), so a client
    # wanting an exact window filters again.
    day = bound.astimezone(UTC).date() if isinstance(bound, datetime) else bound
    return lambda created: compare(created.astimezone(UTC).date(), day)


def date_filter(args: Mapping[str, str]) -> Callable[[datetime], bool]:
    """Return a predicate for the DateCreated, DateCreated> and DateCreated< params."""
    checks = [
        _date_check(compare, _parse_when(name, args[name]))
        for name, compare in _DATE_OPERATORS.items()
        if args.get(name)
    ]
    return lambda created: all(check(created) for check in checks)


def _start_index(items: Sequence[Listed], req: PageRequest, order_key_of: Callable[[str], OrderKey | None]) -> int:
    if req.page_token is None:
        return req.page * req.page_size
    direction, sid = req.page_token[:2], req.page_token[2:]
    anchor = order_key_of(sid)
    if direction not in ("PA", "PB") or anchor is None:
        raise ApiError(400, 20001, f"Invalid PageToken: {req.page_token}")
    keys = [(item.date_created, item.seq) for item in items]  # newest first
    if direction == "PA":  # the page after the anchor record
        return next((i for i, key in enumerate(keys) if key < anchor), len(items))
    newer = sum(1 for key in keys if key > anchor)  # the page before it
    return max(0, newer - req.page_size)


def build_page(
    items: Sequence[Listed],
    *,
    key: str,
    path: str,
    req: PageRequest,
    render: Callable[[Any], dict[str, Any]],
    order_key_of: Callable[[str], OrderKey | None],
) -> dict[str, Any]:
    """Return Twilio's page JSON for ``items`` (already filtered, newest first)."""
    start = _start_index(items, req, order_key_of)
    records = list(items[start : start + req.page_size])

    def uri(page: int, token: str | None = None) -> str:
        query = [*req.echo, ("PageSize", str(req.page_size)), ("Page", str(page))]
        if token:
            query.append(("PageToken", token))
        return f"{path}?{urlencode(query)}"

    has_next = start + req.page_size < len(items)
    offset = req.page * req.page_size
    page = {
        "end": offset + len(records) - 1 if records else offset,
        "first_page_uri": uri(0),
        key: [render(item) for item in records],
        "next_page_uri": uri(req.page + 1, "PA" + records[-1].sid) if has_next else None,
        "page": req.page,
        "page_size": req.page_size,
        "previous_page_uri": (uri(req.page - 1, "PB" + records[0].sid) if req.page > 0 and records else None),
        "start": offset,
        "uri": uri(req.page, req.page_token),
    }
    return dict(sorted(page.items()))  # Twilio emits page keys alphabetically
