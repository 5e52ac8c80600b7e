"""Flask app factory: Twilio API plus the /_sim control API."""

from __future__ import annotations

import hmac

from flask import Flask, Response, g, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from simulator import api, control, demo
from simulator.context import SimContext, sim
from simulator.resources import API_VERSION, ApiError, error_body

_API_PREFIX = f"/{API_VERSION}/"


def _twilio_error(status: int, code: int, message: str) -> Response:
    response = jsonify(error_body(status, code, message))
    response.status_code = status
    return response


def _authenticate() -> Response | None:
    """Count API requests and demand AccountSid:AuthToken basic auth, as Twilio does."""
    if not request.path.startswith(_API_PREFIX):
        return None
    ctx = sim()
    ctx.stats.count_request(api.path_kind())
    auth = request.authorization
    token = ctx.token_of(auth.username or "") if auth is not None and auth.type == "basic" else None
    if token is not None and hmac.compare_digest(auth.password or "", token):
        g.account = auth.username  # the main account, or a subaccount
        ctx.stats.count_account(auth.username)
        return _admit(ctx)
    ctx.stats.count_unauthorized()
    response = _twilio_error(401, 20003, "Authenticate")
    response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


def _admit(ctx) -> Response | None:
    """Count the request in flight, or refuse it as Twilio does above the account's concurrency."""
    if ctx.concurrency.enter():
        g.in_flight = True
        return None
    response = _twilio_error(429, 20429, "Too many requests")
    if ctx.concurrency.retry_after:
        response.headers["Retry-After"] = str(ctx.concurrency.retry_after)
    return response


class _CountedBody:
    """A streamed body that counts its request out as it hands over its last
    byte (before the client can have it, so a client that starts its next
    request on receiving the last byte is never counted twice), or when the
    server closes it early. Werkzeug gives a direct-passthrough body to the
    server as it is: the response's own close callbacks never run for it."""

    def __init__(self, body, leave, length: int | None) -> None:
        self.body, self.leave, self.left, self.counted = iter(body), leave, length, False

    def __iter__(self):
        return self

    def __next__(self) -> bytes:
        try:
            chunk = next(self.body)
        except StopIteration:
            self._count_out()
            raise
        if self.left is not None:
            self.left -= len(chunk)
            if self.left <= 0:
                self._count_out()
        return chunk

    def close(self) -> None:
        try:
            getattr(self.body, "close", lambda: None)()
        finally:
            self._count_out()

    def _count_out(self) -> None:
        if not self.counted:
            self.counted = True
            self.leave()


def _count_out(response: Response) -> Response:
    """Count the request out once its answer is made (a streamed download's, with its last byte)."""
    if g.pop("in_flight", False):
        leave = sim().concurrency.leave
        if response.direct_passthrough:
            response.response = _CountedBody(response.response, leave, response.content_length)
        else:
            leave()
    return response


def _api_error(error: ApiError) -> Response:
    return _twilio_error(error.status, error.code, error.message)


def _http_error(error: HTTPException) -> Response:
    """Answer unrouted paths and wrong methods in Twilio's shape on the API surface."""
    status = error.code or 500
    if request.path.startswith(_API_PREFIX):
        if status == 404:
            return _twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if status == 405:
            return _twilio_error(405, 20004, "Method not allowed")
    response = jsonify({"error": error.description})
    response.status_code = status
    return response


class _OrderedJSON(DefaultJSONProvider):
    sort_keys = False  # keep Twilio's field order


def create_app(
    account_sid: str, auth_token: str, *, public_url: str | None = None, service_url: str | None = None
) -> Flask:
    """Build a simulator app for one account; ``public_url`` overrides media_url's host,
    ``service_url`` is where ``/_sim/place-call`` sends Twilio's callbacks."""
    app = Flask("simulator")
    app.json = _OrderedJSON(app)
    app.extensions["simulator"] = SimContext(account_sid, auth_token, public_url, service_url)
    app.before_request(_authenticate)
    app.after_request(_count_out)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.account_list_bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(demo.bp)
    return app
