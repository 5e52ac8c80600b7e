"""Bucket mode only: signatures for nginx's reads of the private bucket.

nginx serves playback from its edge cache; a slice it lacks goes to its
signing origin, whose ``auth_request`` lands here. So Python signs one GET
per edge miss and never runs for a cached slice. Reached only through
nginx's socket in the runtime folder (the public server answers 404 for
``/internal/``).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, abort, request

from worker import objectstore
from worker.sids import FORMAT, pattern

from . import services

bp = Blueprint("bucket_origin", __name__)
_OBJECT_NAME = re.compile(rf"/({pattern('RE')})\.({FORMAT})")


@bp.get("/internal/bucket-sign")
def sign():
    """204 with X-S3-Authorization and X-S3-Date for a GET of the recording nginx names."""
    match = _OBJECT_NAME.fullmatch(request.headers.get("X-Object-Name", ""))
    if not match:
        abort(404, "not a recording's object")
    headers = objectstore.signed_get_headers(services().settings.bucket, f"{match[1]}.{match[2]}")
    response = Response(status=204)
    response.headers["X-S3-Authorization"] = headers["Authorization"]
    response.headers["X-S3-Date"] = headers["X-Amz-Date"]
    return response
