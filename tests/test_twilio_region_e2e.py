"""TWILIO_REGION and TWILIO_EDGE end to end: every request the worker makes goes to
https://api.{edge}.{region}.twilio.com, and only there.

Twilio is out of reach, so the test plays the network: the worker's standard
proxy settings (HTTPS_PROXY, REQUESTS_CA_BUNDLE: no code of the service knows
about them) send its TLS connections through a CONNECT proxy that records
which host each one asked for, presents a certificate for that regional host
(from a CA made for the test) and relays the requests to the simulator.
"""

from __future__ import annotations

import datetime
import socket
import socketserver
import ssl
import threading
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from simulator.callbacks import place_call
from stack.local import Stack
from stack.ports import wait_for
from tests.support import relay
from worker import signing

pytestmark = [pytest.mark.e2e, pytest.mark.twilio_kinds]

REGION, EDGE = "ie1", "dublin"
HOST = f"api.{EDGE}.{REGION}.twilio.com"


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA (the bundle the worker trusts) and a certificate it signed for the regional host."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "recording-cache test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    leaf = (
        x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)]))
        .issuer_name(ca_name).public_key(leaf_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    bundle, cert, key = folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key"
    bundle.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(_pem(leaf_key))
    return bundle, cert, key


class _RegionalTwilio(socketserver.ThreadingTCPServer):
    """A CONNECT proxy playing Twilio's regional host in front of the simulator."""

    daemon_threads = allow_reuse_address = True

    def __init__(self, cert: Path, key: Path, simulator_port: int):
        super().__init__(("127.0.0.1", 0), _Tunnel)
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.simulator_port, self.targets = simulator_port, []


class _Tunnel(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1")
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # the CONNECT request's headers
        method, target, _ = request_line.split(" ", 2)
        self.server.targets.append(target)
        if method != "CONNECT" or target != f"{HOST}:443":
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            return
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()
        with (
            self.server.tls.wrap_socket(self.connection, server_side=True) as client,
            socket.create_connection(("127.0.0.1", self.server.simulator_port)) as upstream,
        ):
            pump = threading.Thread(target=relay, args=(upstream, client), daemon=True)
            pump.start()
            relay(client, upstream)
            pump.join(10)


@pytest.fixture(scope="module")
def regional(tmp_path_factory):
    folder = tmp_path_factory.mktemp("region")
    bundle, cert, key = _certificates(folder)
    stack = Stack(folder / "stack")
    proxy = _RegionalTwilio(cert, key, stack.sim_port)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    stack.overrides.update(
        TWILIO_API_BASE_URL="",
        TWILIO_REGION=REGION,
        TWILIO_EDGE=EDGE,
        HTTPS_PROXY=f"http://127.0.0.1:{proxy.server_address[1]}",
        NO_PROXY="127.0.0.1,localhost",
        REQUESTS_CA_BUNDLE=str(bundle),
    )
    try:
        with stack:
            yield stack.start_all(workers=1, concurrency=1), proxy
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_every_request_goes_to_the_regional_host_and_the_recording_arrives(regional):
    stack, proxy = regional
    call = place_call(stack.sim_url, stack.http_url, stack.account_sid, stack.auth_token)
    assert set(call["callback_statuses"]) == {204}
    sid = call["recording_sid"]
    url = stack.http_url + signing.signed_url(sid, "mp3", stack.signing_key, 600)
    wait_for(lambda: requests.get(url, timeout=10).status_code == 200, 30, "the recording, through the region")
    assert requests.get(url, timeout=10).content == requests.get(f"{stack.sim_url}/_sim/media/{sid}.mp3").content
    assert proxy.targets and set(proxy.targets) == {f"{HOST}:443"}  # the regional host, and only it
