"""Twilio Voice Recording Encryption, Twilio's side: a recording's media is
AES-256-GCM under a content key (CEK) of its own, and the CEK is wrapped with
RSA-OAEP-SHA256 under a public key the account registered (``POST /_sim/keys``).
The body Twilio serves is the ciphertext followed by the 16-byte tag."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TAG_BYTES = 16


@dataclass(frozen=True)
class Sealed:
    """One recording's encryption: its CEK and IV, and the CEK as wrapped for the account's key."""

    public_key_sid: str
    cek: bytes
    iv: bytes
    encrypted_cek: bytes

    def details(self) -> dict[str, str]:
        """The resource's ``encryption_details`` (and, as JSON, the callback's EncryptionDetails)."""
        return {
            "type": "rsa-aes",
            "public_key_sid": self.public_key_sid,
            "encrypted_cek": base64.b64encode(self.encrypted_cek).decode(),
            "iv": base64.b64encode(self.iv).decode(),
        }


def load_public_key(pem: str) -> rsa.RSAPublicKey:
    """An RSA public key from PEM text; ValueError for anything else."""
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("public_key_pem must be an RSA public key")
    return key


def seal(public_key_sid: str, public_key: rsa.RSAPublicKey) -> Sealed:
    """A new CEK and IV for one recording, the CEK wrapped for ``public_key``."""
    cek, iv = os.urandom(32), os.urandom(12)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    return Sealed(public_key_sid, cek, iv, public_key.encrypt(cek, oaep))


def encrypt_chunks(chunks: Iterable[bytes], sealed: Sealed) -> Iterator[bytes]:
    """The ciphertext of a plaintext stream, then its GCM tag."""
    encryptor = Cipher(algorithms.AES(sealed.cek), modes.GCM(sealed.iv)).encryptor()
    for chunk in chunks:
        yield encryptor.update(chunk)
    yield encryptor.finalize() + encryptor.tag
