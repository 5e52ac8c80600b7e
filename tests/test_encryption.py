"""Voice Recording Encryption: the content key unwrapped with the right private key, the GCM tag always checked."""

from __future__ import annotations

import base64
import json
import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from worker import encryption
from worker.errors import IncompleteMedia

RE = "RE" + "e" * 32
KEY_SID, OTHER_SID = "CR" + "1" * 32, "CR" + "2" * 32
PLAIN = b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(70_000)
OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


@pytest.fixture(scope="module")
def private_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def keys_dir(tmp_path, private_key):
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / f"{KEY_SID}.pem").write_bytes(pem)
    return tmp_path


def _sealed(private_key, key_sid: str = KEY_SID):
    """What Twilio gives: the details (as a callback's JSON text) and the body, ciphertext + tag."""
    cek, iv = AESGCM.generate_key(bit_length=256), os.urandom(12)
    details = {
        "type": "rsa-aes",
        "public_key_sid": key_sid,
        "encrypted_cek": base64.b64encode(private_key.public_key().encrypt(cek, OAEP)).decode(),
        "iv": base64.b64encode(iv).decode(),
    }
    return json.dumps(details), AESGCM(cek).encrypt(iv, PLAIN, None)


def _decrypt(keys_dir, details_json: str, body: bytes, size: int = 4097) -> bytes:
    details = encryption.details_of(RE, {"encryption_details": details_json})
    cek = encryption.content_key(RE, keys_dir, details)
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(encryption.decrypt_chunks(pieces, cek, details.iv, RE))


@pytest.mark.parametrize("size", [1, 15, 16, 17, 4097, 100_000])
def test_the_body_decrypts_to_the_recording_whatever_the_chunks(keys_dir, private_key, size):
    details, body = _sealed(private_key)
    assert _decrypt(keys_dir, details, body, size if size > 1 else 997) == PLAIN


@pytest.mark.parametrize(
    "damage",
    [
        lambda body: body[:100] + bytes([body[100] ^ 1]) + body[101:],  # one ciphertext bit
        lambda body: body[:-1] + bytes([body[-1] ^ 1]),  # the tag
        lambda body: body[:-16],  # cut after the ciphertext: no tag
        lambda body: body[: len(body) // 2],  # cut halfway
        lambda body: body[:10],  # shorter than a tag
    ],
    ids=["ciphertext", "tag", "no-tag", "half", "tiny"],
)
def test_a_tampered_or_truncated_body_fails_its_tag(keys_dir, private_key, damage):
    details, body = _sealed(private_key)
    with pytest.raises(IncompleteMedia, match="GCM tag"):
        _decrypt(keys_dir, details, damage(body))


def test_a_missing_key_names_its_sid(keys_dir, private_key):
    details, _ = _sealed(private_key, OTHER_SID)
    with pytest.raises(encryption.Undecryptable, match=f"no private key {OTHER_SID}.pem"):
        _decrypt(keys_dir, details, b"")


def test_the_wrong_key_does_not_unwrap_the_content_key(keys_dir):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    details, _ = _sealed(stranger)  # wrapped for a key whose SID we hold another key under
    with pytest.raises(encryption.Undecryptable, match="does not unwrap"):
        _decrypt(keys_dir, details, b"")


@pytest.mark.parametrize(
    "details",
    [
        '{"public_key_sid": "CR1"}',
        json.dumps({"public_key_sid": "../../etc/passwd", "encrypted_cek": "AA==", "iv": "AA=="}),
        json.dumps({"public_key_sid": KEY_SID, "encrypted_cek": "not base64!", "iv": "AA=="}),
        "{not json",
    ],
)
def test_malformed_details_are_one_clear_failure(details):
    with pytest.raises(encryption.Undecryptable):
        encryption.details_of(RE, {"encryption_details": details})


def test_an_unencrypted_recording_has_no_details():
    assert encryption.details_of(RE, {"encryption_details": None}) is None
    assert encryption.details_of(RE, None) is None
