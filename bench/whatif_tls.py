"""What-if ``download-tls``: how the worker reads a media body, over plain HTTP and over TLS.

Twilio serves media over HTTPS, where one socket read returns one TLS record
(16 KiB at most), while row 5 of ``make bench`` downloads from the simulator
over plain HTTP. This experiment serves one 200 MiB file from a standalone
nginx on loopback, with and without TLS (a throwaway self-signed certificate
from ``openssl``), and lands it with ``storage.write_media`` (hash, write,
fsync, rename) through each way of reading the body:

- as is: ``MediaStream.chunks()`` (256 KiB reads gathered into 1 MiB chunks);
- ``iter_content`` with 1 MiB or 256 KiB, handed on as read;
- urllib3's ``read1`` (what one read returns, up to 1 MiB).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import requests

from bench.context import Context
from bench.report import say
from tests.stack import free_ports, port_open, wait_for
from worker import storage, twilio_api

MIB = 1024 * 1024
SID = "RE" + "7" * 32

_NGINX = """{user}worker_processes 1;
pid "{base}/nginx.pid";
error_log "{base}/error.log" warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path "{base}/tmp";
    proxy_temp_path "{base}/tmp";
    fastcgi_temp_path "{base}/tmp";
    uwsgi_temp_path "{base}/tmp";
    scgi_temp_path "{base}/tmp";
    server {{ listen 127.0.0.1:{http_port}; root "{base}"; }}
    server {{
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate "{base}/cert.pem";
        ssl_certificate_key "{base}/key.pem";
        root "{base}";
    }}
}}
"""


def _iter_content(size: int) -> Callable[[requests.Response], Iterator[bytes]]:
    return lambda response: response.iter_content(size)


def _read1(response: requests.Response) -> Iterator[bytes]:
    while chunk := response.raw.read1(MIB, decode_content=True):
        yield chunk


def _as_is(response: requests.Response) -> Iterator[bytes]:
    return twilio_api.MediaStream(response=response, length=0).chunks()


READERS: dict[str, Callable[[requests.Response], Iterator[bytes]]] = {
    "as is: 256 KiB reads, 1 MiB chunks": _as_is,
    "iter_content(1 MiB)": _iter_content(MIB),
    "iter_content(256 KiB)": _iter_content(256 * 1024),
    "urllib3 read1 (up to 1 MiB)": _read1,
}


def _serve(base: Path, mib: int) -> tuple[subprocess.Popen, str, str]:
    """nginx serving ``media.mp3`` over http and https; its process and the two URLs."""
    subj = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
    keys = ["-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem")]
    openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", *keys, *subj]
    subprocess.run(openssl, check=True, capture_output=True)
    with (base / "media.mp3").open("wb") as handle:
        handle.write(b"ID3\x03\x00\x00\x00\x00\x00\x00" + os.urandom(mib * MIB - 10))
    (base / "tmp").mkdir()
    http_port, https_port = free_ports(2)
    config = base / "nginx.conf"
    # Run by root, workers must still read the temp folder (mode 0700).
    user = "user root;\n" if os.geteuid() == 0 else ""
    config.write_text(_NGINX.format(user=user, base=base, http_port=http_port, https_port=https_port))
    nginx = subprocess.Popen(["nginx", "-p", str(base), "-c", str(config), "-g", "daemon off;"])
    try:
        wait_for(lambda: port_open(http_port) and port_open(https_port), 10, "nginx for download-tls")
    except TimeoutError:
        nginx.kill()
        nginx.wait(5)
        raise RuntimeError(f"nginx for download-tls did not start: {(base / 'error.log').read_text()[-500:]}") from None
    return nginx, f"http://127.0.0.1:{http_port}/media.mp3", f"https://127.0.0.1:{https_port}/media.mp3"


def _land(url: str, reader: Callable[[requests.Response], Iterator[bytes]], root: Path, cert: Path, mib: int) -> float:
    """Seconds to download ``url`` onto the volume ``root`` (then removed) through ``reader``."""
    started = time.perf_counter()
    # verify= per request: a REQUESTS_CA_BUNDLE in the environment would override a session's.
    with requests.get(url, stream=True, timeout=30, verify=str(cert)) as response:
        storage.write_media(root, SID, "mp3", reader(response), mib * MIB)
    elapsed = time.perf_counter() - started
    storage.media_path(root, SID, "mp3").unlink()
    return elapsed


def exp_download_tls(ctx: Context, mib: int = 200, rounds: int = 5) -> list[dict]:
    """A 200 MiB body landed through each reader, over http and https, interleaved; medians."""
    base = ctx.base / "download-tls"
    base.mkdir()
    nginx, http_url, https_url = _serve(base, mib)
    root = base / "volume"
    rows = []
    try:
        for scheme, url in (("http", http_url), ("https", https_url)):
            times: dict[str, list[float]] = {label: [] for label in READERS}
            _land(url, _as_is, root, base / "cert.pem", mib)  # warm the page cache and the TLS session
            for _ in range(rounds):
                for label, reader in READERS.items():
                    times[label].append(_land(url, reader, root, base / "cert.pem", mib))
            for label, runs in times.items():
                median = statistics.median(runs)
                row = {"scheme": scheme, "reader": label, "median_s": round(median, 3), "mib_s": round(mib / median)}
                rows.append(row)
                say(f"  download-tls {rows[-1]}")
    finally:
        nginx.terminate()
        nginx.wait(10)
    return rows
