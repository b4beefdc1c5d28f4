"""Encryption of secrets at rest (CalDAV passwords, OAuth tokens, emails waiting to be sent).

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
    """Encrypts under a key derived for one ``purpose``: values sealed for one purpose (e.g.
    the OAuth state a browser carries) cannot be passed off as another's (a stored secret)."""

    def __init__(self, secret_key: str, purpose: str = "secrets at rest v1") -> None:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"calsync {purpose}".encode()
        ).derive(secret_key.encode())
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def encrypt_bytes(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def decrypt_bytes(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken:
            raise SecretKeyMismatch(
                "a stored value cannot be decrypted: secret_key changed since it was saved"
            ) from None

    def open_recent(self, token: str, max_age_seconds: int) -> str | None:
        """The plaintext of ``token`` if this box sealed it at most ``max_age_seconds`` ago;
        None for anything else (forged, altered, expired, another purpose's)."""
        try:
            return self._fernet.decrypt(token.encode("ascii"), ttl=max_age_seconds).decode()
        except (InvalidToken, UnicodeEncodeError):
            return None

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyMismatch(
                "a stored password cannot be decrypted: secret_key changed since it was saved. "
                "Restore the old secret_key, or add the calendar again with its password."
            ) from None
