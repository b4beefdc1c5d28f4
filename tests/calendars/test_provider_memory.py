"""The in-memory provider keeps the provider contract, plus its own test switches."""

from __future__ import annotations

import threading

import pytest

from calsync.calendars.errors import AuthFailed, Conflict, CursorExpired, Unavailable
from calsync.calendars.memory import MemoryProvider
from tests.support.provider_contract import ProviderContract, make_ics


class TestMemoryProvider(ProviderContract):
    @pytest.fixture
    def provider(self) -> MemoryProvider:
        return MemoryProvider()


def test_unavailable_until_switched_back() -> None:
    provider = MemoryProvider()
    provider.available = False
    with pytest.raises(Unavailable):
        provider.changes(None, {})
    provider.available = True
    assert provider.changes(None, {}).full


def test_fail_next_fails_once_in_order() -> None:
    provider = MemoryProvider()
    provider.fail_next(AuthFailed("password changed"))
    provider.fail_next(Unavailable("down"))
    with pytest.raises(AuthFailed):
        provider.create("a", make_ics("a"))
    with pytest.raises(Unavailable):
        provider.create("a", make_ics("a"))
    provider.create("a", make_ics("a"))  # nothing happened on the failed calls
    assert len(provider.snapshot()) == 1


def test_cursor_of_another_calendar_is_rejected() -> None:
    cursor = MemoryProvider().changes(None, {}).cursor
    with pytest.raises(CursorExpired):
        MemoryProvider().changes(cursor, {})
    with pytest.raises(CursorExpired):
        MemoryProvider().changes("garbage", {})


def test_owner_edits_show_up_as_changes() -> None:
    provider = MemoryProvider()
    mine = provider.create("mine", make_ics("mine"))
    known = {mine.href: mine.etag}
    cursor = provider.changes(None, known).cursor
    theirs = provider.owner_put("theirs", make_ics("theirs"))
    provider.owner_delete(mine.href)
    delta = provider.changes(cursor, known)
    assert [i.href for i in delta.upserted] == [theirs.href]
    assert delta.removed == [mine.href]


def test_threads_sharing_one_provider() -> None:
    provider = MemoryProvider()
    items = [provider.create(f"u{i}", make_ics(f"u{i}")) for i in range(8)]
    wins: list[str] = []
    errors: list[BaseException] = []

    def bump(item_index: int) -> None:
        # Two threads per event race the same read-modify-write; conditional writes must let
        # exactly one of them win each time, and lose no update.
        item = items[item_index % 8]
        try:
            for _ in range(50):
                current = provider.get(item.href)
                try:
                    provider.update(item.href, current.data, current.etag)
                    wins.append(item.href)
                except Conflict:
                    pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=bump, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # Each etag is "m<n>" with n counting writes: 8 creates plus exactly one per win.
    etags = [item.etag for item in provider.changes(None, {}).upserted]
    assert max(int(e.strip('"')[1:]) for e in etags) == 8 + len(wins)
    assert len(wins) >= 8 * 50  # a thread only loses to a win of the other one
