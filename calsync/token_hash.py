"""The hash under which secret tokens are stored: manage links, console sign-in links and
console sessions. Only the hash is kept, so a copy of the database opens nothing; the tokens
are long random strings, so a plain SHA-256 (no salt, no slow hash) is enough."""

from __future__ import annotations

import hashlib


def hash_token(token: str) -> str:
    """The token's SHA-256 as hex; "surrogatepass" so any string a URL decodes to hashes."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
