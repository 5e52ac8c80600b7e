"""Bucket mode only: signatures for nginx's reads of the private bucket.

nginx serves playback from its edge cache; a slice it lacks goes to its
signing origin, whose ``auth_request`` lands here. So Python signs one GET
per edge miss and never runs for a cached slice. Reached only through
nginx's socket in the runtime folder (the public server answers 404 for
``/internal/``). The signature comes with the object's checked ETag: nginx
sends it as If-Match, so the store never hands out bytes other than the ones
the worker verified and uploaded.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, request
from redis import RedisError

from worker import keys, objectstore
from worker.sids import FORMAT, pattern

from . import services

bp = Blueprint("bucket_origin", __name__)
_OBJECT_NAME = re.compile(rf"/({pattern('RE')})\.({FORMAT})")


@bp.get("/internal/bucket-sign")
def sign():
    """204 with X-S3-Authorization, X-S3-Date and X-S3-If-Match for a GET of the recording nginx
    names; 403 when the object is missing or no longer the bytes uploaded (nginx: a miss)."""
    match = _OBJECT_NAME.fullmatch(request.headers.get("X-Object-Name", ""))
    if not match:
        abort(403, "not a recording's object")
    svc = services()
    try:
        known = svc.redis.get(keys.object_etag(match[1], match[2]))
    except RedisError:  # a hint only: without it the tier checks the object itself
        known = None
    etag = svc.tier.verified_etag(match[1], match[2], known.decode() if known else None)
    if etag is None:
        abort(403, "the object is missing or changed")
    headers = objectstore.signed_get_headers(svc.settings.bucket, f"{match[1]}.{match[2]}")
    response = Response(status=204)
    response.headers["X-S3-Authorization"] = headers["Authorization"]
    response.headers["X-S3-Date"] = headers["X-Amz-Date"]
    response.headers["X-S3-If-Match"] = f'"{etag}"'
    return response
