"""MediaStream against a real HTTP server on loopback: chunks keep coming on a
slow link, and a download that stops early ends the transfer at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from worker import twilio_api
from worker.errors import IncompleteMedia

PIECE = 64 * 1024


class _Body:
    """What the handler declares and sends, and what it saw: set by each test."""

    def __init__(self, size: int, send: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.size = size
        self.send = send
        self.finished = threading.Event()  # every byte was written
        self.broken = threading.Event()  # a write failed: the client hung up


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a handler still writing never holds up server_close


@pytest.fixture
def serve() -> Iterator[Callable[[_Body], str]]:
    servers: list[_Server] = []

    def start(body: _Body) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(body.size))
                self.end_headers()
                try:
                    body.send(self)
                    body.finished.set()
                except OSError:  # BrokenPipeError, ConnectionResetError
                    body.broken.set()

            def log_message(self, *args):
                pass

        server = _Server(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_port}/media.mp3"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _open(url: str) -> twilio_api.MediaStream:
    response = requests.get(url, stream=True, timeout=10)
    return twilio_api.MediaStream(response=response, length=int(response.headers["Content-Length"]))


def _pieces(count: int) -> Callable[[BaseHTTPRequestHandler], None]:
    def send(handler: BaseHTTPRequestHandler) -> None:
        for _ in range(count):
            handler.wfile.write(b"\xff" * PIECE)

    return send


def test_a_slow_link_yields_chunks_before_a_whole_one_arrived(serve):
    # A piece every 0.1 s until the client has its first chunk (10 s at most):
    # a reader that waits for CHUNK_BYTES would take 1.6 s, renewing no lock.
    client_has_first = threading.Event()
    trickle = 100

    def send(handler):
        sent = 0
        while sent < trickle and not client_has_first.is_set():
            handler.wfile.write(b"\xff" * PIECE)
            handler.wfile.flush()
            sent += 1
            client_has_first.wait(0.1)
        _pieces(trickle + 16 - sent)(handler)

    body = _Body((trickle + 16) * PIECE, send)
    with _open(serve(body)) as media:
        chunks = media.chunks()
        first = next(chunks)
        client_has_first.set()
        assert len(first) < twilio_api.CHUNK_BYTES, "the first chunk waited for a whole CHUNK_BYTES"
        assert len(first) + sum(len(chunk) for chunk in chunks) == body.size
    assert body.finished.wait(5)


def test_a_fast_link_yields_whole_chunks(serve, monkeypatch):
    monkeypatch.setattr(twilio_api, "CHUNK_SECONDS", 60)  # only the size decides
    body = _Body(4 * twilio_api.CHUNK_BYTES, _pieces(4 * twilio_api.CHUNK_BYTES // PIECE))
    with _open(serve(body)) as media:
        sizes = [len(chunk) for chunk in media.chunks()]
    assert sizes == [twilio_api.CHUNK_BYTES] * 4


def test_leaving_the_stream_early_ends_the_transfer(serve):
    # As in a download: the chunk generator outlives the error (write_media's
    # frame, kept by the retry's traceback), so only the stream can close it.
    body = _Body(1 << 30, _pieces((1 << 30) // PIECE))  # far more than socket buffers hold
    with pytest.raises(RuntimeError), _open(serve(body)) as media:
        chunks = media.chunks()
        next(chunks)
        raise RuntimeError("lock lost")
    assert body.broken.wait(5), "the server kept sending after the download stopped"
    chunks.close()


def test_a_body_cut_short_is_incomplete_media(serve):
    with pytest.raises(IncompleteMedia), _open(serve(_Body(16 * PIECE, _pieces(1)))) as media:
        for _chunk in media.chunks():
            pass
