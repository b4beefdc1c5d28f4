"""One way to hash the secret tokens in links and cookies, shared by everything that stores
them (console sign-in links, console sessions, manage links), so a change to it cannot leave
one kind of token hashed differently from what its lookup expects."""

from __future__ import annotations

import hashlib

from calsync import token_hash
from calsync.access import sessions, sign_in
from calsync.bookings import links


def test_tokens_are_stored_as_their_sha256() -> None:
    assert token_hash.hash_token("abc") == hashlib.sha256(b"abc").hexdigest()
    assert len(token_hash.hash_token("x" * 500)) == 64


def test_every_kind_of_token_uses_the_one_hash() -> None:
    assert sessions.hash_token is token_hash.hash_token
    assert sign_in.hash_token is token_hash.hash_token
    assert links.hash_token is token_hash.hash_token
