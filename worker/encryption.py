"""Twilio Voice Recording Encryption: the media is AES-256-GCM, its key (the
CEK) wrapped with RSA-OAEP-SHA256 under one of the account's public keys.

The Recording resource (or the callback's EncryptionDetails) names the
public key's SID, the wrapped CEK and the IV. The matching private key is
``<public_key_sid>.pem`` in TWILIO_ENCRYPTION_KEYS_DIR, several at once
while keys rotate. The body is the ciphertext followed by the 16-byte GCM
tag; it is decrypted as it streams and the tag is checked at the end, before
anything is renamed into place, so a tampered or truncated body is never
stored (Twilio's own sample skips the check).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import IncompleteMedia, RecordingUnavailable
from .sids import is_sid

TAG_BYTES = 16


@dataclass(frozen=True)
class EncryptionDetails:
    """What Twilio says of an encrypted recording."""

    public_key_sid: str
    encrypted_cek: bytes
    iv: bytes


class Undecryptable(RecordingUnavailable):
    """An encrypted recording this service cannot decrypt (no key, a format Twilio does not
    encrypt, malformed details): final ``failed`` with the reason, until an operator acts."""

    def __init__(self, recording_sid: str, reason: str):
        super().__init__(recording_sid, "failed", None)
        self.args = (f"{recording_sid} is encrypted and cannot be decrypted: {reason}",)


def details_of(recording_sid: str, resource: dict | None) -> EncryptionDetails | None:
    """The resource's ``encryption_details`` (an object, or JSON text as in a callback), or None."""
    raw = (resource or {}).get("encryption_details")
    if not raw:
        return None
    try:
        details = json.loads(raw) if isinstance(raw, str) else raw
        sid = details["public_key_sid"]
        cek = base64.b64decode(details["encrypted_cek"], validate=True)
        iv = base64.b64decode(details["iv"], validate=True)
    except (ValueError, TypeError, KeyError, binascii.Error):
        raise Undecryptable(recording_sid, "Twilio's encryption_details are malformed") from None
    if not is_sid(sid, "CR"):
        raise Undecryptable(recording_sid, f"public_key_sid is not a key SID: {str(sid)[:40]!r}")
    return EncryptionDetails(sid, cek, iv)


def content_key(recording_sid: str, keys_dir: Path | None, details: EncryptionDetails) -> bytes:
    """The recording's AES key, unwrapped with the private key ``details`` names."""
    # Imported here, as boto3 is: an account without encryption never loads it (about 4 MiB per process).
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    if keys_dir is None:
        raise Undecryptable(recording_sid, f"no TWILIO_ENCRYPTION_KEYS_DIR for key {details.public_key_sid}")
    path = keys_dir / f"{details.public_key_sid}.pem"
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise Undecryptable(recording_sid, f"no private key {path.name} in TWILIO_ENCRYPTION_KEYS_DIR") from None
    except (OSError, ValueError, TypeError) as exc:
        raise Undecryptable(recording_sid, f"{path.name} is not a readable PEM private key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise Undecryptable(recording_sid, f"{path.name} is not an RSA private key")
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    try:
        cek = key.decrypt(details.encrypted_cek, oaep)
    except ValueError:
        raise Undecryptable(recording_sid, f"key {details.public_key_sid} does not unwrap its content key") from None
    if len(cek) != 32:
        raise Undecryptable(recording_sid, "the content key is not an AES-256 key")
    return cek


def decrypt_chunks(chunks: Iterable[bytes], cek: bytes, iv: bytes, recording_sid: str) -> Iterator[bytes]:
    """The plaintext of an AES-256-GCM body (ciphertext + tag), chunk by chunk;
    IncompleteMedia at the end when the tag does not verify (tampered or cut)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(cek), modes.GCM(iv)).decryptor()
    held = b""  # the last TAG_BYTES seen: the tag, once the body ends
    for chunk in chunks:
        data = held + chunk
        held = data[-TAG_BYTES:]
        plain = decryptor.update(data[:-TAG_BYTES])
        if plain:
            yield plain
    if len(held) < TAG_BYTES:
        raise IncompleteMedia(f"encrypted body of {recording_sid} is shorter than its GCM tag")
    try:
        tail = decryptor.finalize_with_tag(held)
    except InvalidTag:
        raise IncompleteMedia(f"encrypted body of {recording_sid} fails its GCM tag: tampered or truncated") from None
    if tail:
        yield tail
