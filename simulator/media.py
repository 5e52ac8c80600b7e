"""Media responses: streaming audio bodies with the per-recording fault knobs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from flask import Response, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from simulator.audio import MEDIA_TYPES, garbage_chunks, media_chunks
from simulator.encryption import TAG_BYTES, encrypt_chunks
from simulator.knobs import Knobs
from simulator.resources import ApiError, not_found
from simulator.state import Outcome, Recording
from simulator.stats import Stats

_WRITES_PER_SECOND = 20  # granularity of throughput pacing
_MAX_WRITE = 65_536


def _limited(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Yield from ``chunks`` until ``limit`` bytes have gone out."""
    left = limit
    for chunk in chunks:
        if left <= 0:
            return
        yield chunk[:left]
        left -= len(chunk)


def _paced(chunks: Iterable[bytes], throughput: int) -> Iterator[bytes]:
    """Yield ``chunks`` in small writes no faster than ``throughput`` bytes/s."""
    if throughput <= 0:
        yield from chunks
        return
    piece = max(1, min(_MAX_WRITE, throughput // _WRITES_PER_SECOND))
    started = time.monotonic()
    sent = 0
    for chunk in chunks:
        for offset in range(0, len(chunk), piece):
            part = chunk[offset : offset + piece]
            sent += len(part)
            # Wait until this piece is due, measured from the start rather than
            # the last write, so slow client reads don't add up to extra delay.
            due = started + sent / throughput - time.monotonic()
            if due > 0:
                time.sleep(due)
            yield part


def _faulty_body(rec: Recording, fmt: str, stats: Stats, channels: int) -> Iterator[bytes]:
    knobs: Knobs = rec.knobs
    if knobs.hang_ms:
        yield b""  # werkzeug sends the status line and headers on the first write
        time.sleep(knobs.hang_ms / 1000)
    source = garbage_chunks(rec.size, rec.sid) if knobs.garbage else media_chunks(fmt, rec.size, rec.sid, channels)
    if rec.sealed:
        source = encrypt_chunks(source, rec.sealed)
    if knobs.tamper_at is not None:
        source = _tampered(source, knobs.tamper_at)
    size = served_size(rec)
    # Stopping short of Content-Length is enough to truncate: werkzeug closes
    # every connection after its response, so the client sees a short body.
    limit = size if knobs.truncate_at is None else min(knobs.truncate_at, size)
    sent = 0
    for chunk in _paced(_limited(source, limit), knobs.throughput):
        sent += len(chunk)
        if sent == size:
            # Count before the final write: a client holding the whole body
            # must never read stats that miss it.
            stats.count_media_complete(rec.sid, fmt)
        yield chunk


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single ``Range: bytes=…`` a CDN would honour; None to send it all."""
    if not header or not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if not first:  # bytes=-N: the last N bytes
            return (max(0, size - int(last)), size - 1) if int(last) > 0 else None
        start, end = int(first), int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or end < start:
        raise ApiError(416, 20001, f"Range {header} is not satisfiable for {size} bytes")
    return start, min(end, size - 1)


def _skipped(chunks: Iterable[bytes], count: int) -> Iterator[bytes]:
    """``chunks`` without their first ``count`` bytes."""
    for chunk in chunks:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:]
        count = 0


def served_size(rec: Recording) -> int:
    """Bytes a media GET sends: the audio, and an encrypted recording's GCM tag."""
    return rec.size + (TAG_BYTES if rec.sealed else 0)


def _tampered(chunks: Iterable[bytes], offset: int) -> Iterator[bytes]:
    seen = 0
    for chunk in chunks:
        if seen <= offset < seen + len(chunk):
            at = offset - seen
            chunk = chunk[:at] + bytes([chunk[at] ^ 0xFF]) + chunk[at + 1 :]
        seen += len(chunk)
        yield chunk


def _audio_response(body: Iterable[bytes], fmt: str, size: int) -> Response:
    response = Response(body, status=200, mimetype=MEDIA_TYPES[fmt], direct_passthrough=True)
    response.content_length = size
    return response


def media_response(
    outcome: Outcome, rec: Recording | None, fmt: str, path: str, stats: Stats, channels: int | None = None
) -> BaseResponse:
    """Answer a Twilio media GET according to ``outcome`` (raises ApiError for errors).

    ``channels``: RequestedChannels (1 downmixes, 2 splits a conference's
    parties); None serves the recording as recorded.
    """
    if outcome in (Outcome.MISSING, Outcome.NOT_READY) or rec is None or (rec.sealed and fmt != "wav"):
        raise not_found(path)  # Twilio answers 404 until the media is ready; it encrypts WAV only
    if outcome is Outcome.FAIL:
        raise ApiError(500, 20500, "An internal server error has occurred")
    if outcome is Outcome.REDIRECT and rec.knobs.redirect_to:
        target = rec.knobs.redirect_to.replace("{sid}", rec.sid).replace("{fmt}", fmt)
        return redirect(target, code=302)
    if rec.knobs.delay_ms:
        time.sleep(rec.knobs.delay_ms / 1000)
    body = _faulty_body(rec, fmt, stats, channels or rec.channels)
    size = served_size(rec)
    wanted = byte_range(request.headers.get("Range"), size)
    if wanted is None:
        return _audio_response(body, fmt, size)
    start, end = wanted  # a CDN's answer: 206 with the slice asked for
    response = _audio_response(_limited(_skipped(body, start), end - start + 1), fmt, end - start + 1)
    response.status_code = 206
    response.headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return response


def exact_media_response(rec: Recording, fmt: str, channels: int | None = None) -> Response:
    """Stream the true audio bytes (as recorded, or with ``channels``), ignoring every knob."""
    return _audio_response(media_chunks(fmt, rec.size, rec.sid, channels or rec.channels), fmt, rec.size)
