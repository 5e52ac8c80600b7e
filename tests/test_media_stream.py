"""MediaStream against a real HTTP server on loopback: chunks as bytes arrive,
and a download that stops early ends the transfer at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from worker import twilio_api
from worker.errors import IncompleteMedia

PIECE = 64 * 1024
SIZE = 64 * PIECE  # 4 MiB: more than loopback buffers hold while nobody reads


class _Body:
    """What the handler sends, and what it saw: set by each test."""

    def __init__(self, send: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.send = send
        self.finished = threading.Event()  # every byte was written
        self.broken = threading.Event()  # a write failed: the client hung up


@pytest.fixture
def serve() -> Iterator[Callable[[_Body], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(body: _Body) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                self.send_response(200)
                self.send_header("Content-Type", "audio/mpeg")
                self.send_header("Content-Length", str(SIZE))
                self.end_headers()
                try:
                    body.send(self)
                    body.finished.set()
                except OSError:  # BrokenPipeError, ConnectionResetError
                    body.broken.set()

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{server.server_port}/media.mp3"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _open(url: str) -> twilio_api.MediaStream:
    response = requests.get(url, stream=True, timeout=5)
    return twilio_api.MediaStream(response=response, length=int(response.headers["Content-Length"]))


def test_chunks_come_as_bytes_arrive_not_when_a_whole_chunk_has(serve):
    # The server sends one piece, then waits until the client has it: a reader
    # that waits for CHUNK_BYTES would never get it (and never renew its lock).
    client_has_first = threading.Event()

    def send(handler):
        handler.wfile.write(b"\xff" * PIECE)
        handler.wfile.flush()
        if not client_has_first.wait(5):
            raise TimeoutError("the client did not see the first piece")
        for _ in range(SIZE // PIECE - 1):
            handler.wfile.write(b"\xff" * PIECE)

    body = _Body(send)
    received = 0
    with _open(serve(body)) as media:
        for chunk in media.chunks():
            assert len(chunk) <= twilio_api.CHUNK_BYTES
            received += len(chunk)
            client_has_first.set()
    assert received == SIZE
    assert body.finished.wait(5)


def test_leaving_the_stream_early_ends_the_transfer(serve):
    def send(handler):
        for _ in range(SIZE // PIECE):
            handler.wfile.write(b"\xff" * PIECE)

    body = _Body(send)
    with pytest.raises(RuntimeError), _open(serve(body)) as media:
        for _chunk in media.chunks():
            raise RuntimeError("lock lost")  # the lock keeper's LockLost, a full volume, wrong bytes
    assert body.broken.wait(5), "the server kept sending after the download stopped"
    assert not body.finished.is_set()


def test_a_body_cut_short_is_incomplete_media(serve):
    def send(handler):
        handler.wfile.write(b"\xff" * PIECE)
        handler.close_connection = True

    with pytest.raises(IncompleteMedia), _open(serve(_Body(send))) as media:
        for _chunk in media.chunks():
            pass
