"""Encryption of secrets at rest (CalDAV passwords, OAuth tokens).

Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from ``secret_key`` with HKDF, so the
configured key can be any long random string. Decrypting with the wrong key raises
:class:`SecretKeyMismatch` instead of returning garbage.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class SecretKeyMismatch(Exception):
    """A stored secret was encrypted under another secret_key."""


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"calsync secrets at rest v1"
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyMismatch(
                "a stored password cannot be decrypted: secret_key changed since it was saved. "
                "Restore the old secret_key, or add the calendar again with its password."
            ) from None
