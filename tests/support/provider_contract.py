"""The contract every calendar provider keeps, as one test class to subclass.

A provider's test module subclasses ``ProviderContract`` and supplies a ``provider`` fixture
(a fresh, empty calendar per test) and, if its cursors cannot be expired by
``provider.expire_cursors()``, an ``expire_cursor`` override; ``answers_busy = False`` for a
provider with no live free/busy (CalDAV), and an ``unreachable`` fixture (a provider of its kind
whose server refuses connections) where a third-party library stands between the provider and
its calendar. The memory, CalDAV (Radicale, Xandikos) and Google providers all pass the same
tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest

from calsync.calendars.base import CalendarItem, CalendarProvider, Cursor, Delta
from calsync.calendars.errors import Conflict, CursorExpired, NotFound, Unavailable


def make_ics(
    uid: str,
    summary: str = "Session",
    *,
    description: str | None = None,
    extra: tuple[str, ...] = (),
    start: str = "20300102T100000Z",
) -> str:
    """A one-event VCALENDAR with CRLF line ends, folded at 75 octets by icalendar."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//calsync//contract tests//EN")
    cal.add("version", "2.0")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", icalendar.vDatetime.from_ical("20300101T000000Z"))
    event.add("dtstart", icalendar.vDatetime.from_ical(start))
    event.add("dtend", icalendar.vDatetime.from_ical(start.replace("T10", "T11")))
    event.add("summary", summary)
    if description is not None:
        event.add("description", description)
    cal.add_component(event)
    text = cal.to_ical().decode("utf-8")
    for line in extra:  # raw lines, e.g. X- properties, inserted before END:VEVENT
        text = text.replace("END:VEVENT\r\n", f"{line}\r\nEND:VEVENT\r\n")
    return text


def event_of(data: str) -> icalendar.Event:
    """The single VEVENT of an item's data (servers may reformat the text)."""
    events = icalendar.Calendar.from_ical(data).walk("VEVENT")
    assert len(events) == 1, data
    return events[0]


def uid() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}@calsync.test"


def hrefs(items: list[CalendarItem]) -> set[str]:
    return {i.href for i in items}


class ProviderContract:
    """Tests every provider must pass. Subclasses provide the ``provider`` fixture."""

    answers_busy = True  # False where the server has no live free/busy (``busy()`` is None)

    @pytest.fixture
    def provider(self) -> CalendarProvider:
        raise NotImplementedError("subclasses supply a provider on a fresh, empty calendar")

    @pytest.fixture
    def unreachable(self) -> CalendarProvider | None:
        """A provider of this kind whose server refuses connections; None when no third-party
        library stands between the provider and its calendar (nothing to translate)."""
        return None

    def expire_cursor(self, provider: CalendarProvider, cursor: Cursor) -> Cursor:
        """Return a cursor the provider will reject; by default make it forget its cursors."""
        provider.expire_cursors()  # type: ignore[attr-defined]
        return cursor

    # -- helpers --------------------------------------------------------------------------------

    def sync(
        self, provider: CalendarProvider, cursor: Cursor | None, known: dict[str, str]
    ) -> Delta:
        """Poll once and apply the delta to ``known`` (href -> etag), as the poller does."""
        delta = provider.changes(cursor, known)
        assert set(delta.removed) <= set(known), "removed hrefs the caller never knew"
        for href in delta.removed:
            del known[href]
        for item in delta.upserted:
            known[item.href] = item.etag
        return delta

    # -- the rest of the interface: busy, timezone, close, errors ------------------------------

    def test_busy_is_the_servers_live_answer_or_none(self, provider: CalendarProvider) -> None:
        day = datetime(2030, 1, 2, tzinfo=UTC)
        provider.create(the_uid := uid(), make_ics(the_uid))  # 10:00-11:00 UTC that day
        busy = provider.busy(day, day.replace(day=3))
        if not self.answers_busy:
            assert busy is None
            return
        assert busy is not None
        assert [(i.start, i.end) for i in busy] == [(day.replace(hour=10), day.replace(hour=11))]
        assert provider.busy(day.replace(day=3), day.replace(day=4)) == []

    def test_timezone_is_none_or_an_iana_zone(self, provider: CalendarProvider) -> None:
        zone = provider.timezone()
        assert zone is None or ZoneInfo(zone).key == zone

    def test_close_releases_and_may_be_called_again(self, provider: CalendarProvider) -> None:
        provider.changes(None, {})
        provider.close()
        provider.close()

    def test_a_refused_connection_is_unavailable_in_plain_words(
        self, unreachable: CalendarProvider | None
    ) -> None:
        if unreachable is None:
            pytest.skip("no third-party library between this provider and its calendar")
        with pytest.raises(Unavailable) as info:
            unreachable.changes(None, {})
        message = str(info.value)
        assert "the connection was refused" in message
        # No library's repr, object address, errno or retry details: words a person can act on.
        for noise in ("0x", "<", "Errno", "HTTPConnectionPool", "Max retries", "object at"):
            assert noise not in message, message
        assert info.value.__cause__ is not None  # the library's exception, kept for debugging
        unreachable.close()

    # -- single objects -------------------------------------------------------------------------

    def test_create_then_get(self, provider: CalendarProvider) -> None:
        u = uid()
        item = provider.create(u, make_ics(u, "First"))
        assert item.href and item.etag
        got = provider.get(item.href)
        assert got.href == item.href
        assert got.etag == item.etag
        assert event_of(got.data)["UID"] == u
        assert str(event_of(got.data)["SUMMARY"]) == "First"

    def test_update_returns_new_etag(self, provider: CalendarProvider) -> None:
        u = uid()
        item = provider.create(u, make_ics(u, "Before"))
        etag = provider.update(item.href, make_ics(u, "After"), item.etag)
        assert etag != item.etag
        got = provider.get(item.href)
        assert got.etag == etag
        assert str(event_of(got.data)["SUMMARY"]) == "After"

    def test_update_with_stale_etag_conflicts(self, provider: CalendarProvider) -> None:
        u = uid()
        item = provider.create(u, make_ics(u, "v1"))
        provider.update(item.href, make_ics(u, "v2 by the owner"), item.etag)
        with pytest.raises(Conflict):
            provider.update(item.href, make_ics(u, "v2 by calsync"), item.etag)
        assert str(event_of(provider.get(item.href).data)["SUMMARY"]) == "v2 by the owner"

    def test_create_never_overwrites(self, provider: CalendarProvider) -> None:
        u = uid()
        provider.create(u, make_ics(u, "Original"))
        with pytest.raises(Conflict):
            provider.create(u, make_ics(u, "Impostor"))
        (item,) = provider.changes(None, {}).upserted
        assert str(event_of(item.data)["SUMMARY"]) == "Original"

    def test_delete(self, provider: CalendarProvider) -> None:
        u = uid()
        item = provider.create(u, make_ics(u))
        provider.delete(item.href, item.etag)
        with pytest.raises(NotFound):
            provider.get(item.href)

    def test_delete_with_stale_etag_conflicts(self, provider: CalendarProvider) -> None:
        u = uid()
        item = provider.create(u, make_ics(u, "v1"))
        provider.update(item.href, make_ics(u, "v2"), item.etag)
        with pytest.raises(Conflict):
            provider.delete(item.href, item.etag)
        provider.get(item.href)  # still there

    def test_missing_objects_are_not_found(self, provider: CalendarProvider) -> None:
        u = uid()
        item = provider.create(u, make_ics(u))
        provider.delete(item.href, item.etag)
        with pytest.raises(NotFound):
            provider.get(item.href)
        with pytest.raises(NotFound):
            provider.update(item.href, make_ics(u, "again"), item.etag)
        with pytest.raises(NotFound):
            provider.delete(item.href, item.etag)

    def test_unicode_and_long_lines_round_trip(self, provider: CalendarProvider) -> None:
        u = uid()
        summary = "Zoë’s Beratung — 会議 🎉"
        description = "Ünïcödé " * 40 + "\nline two; with, escapes\\ and 🎉 " + "x" * 200
        item = provider.create(u, make_ics(u, summary, description=description))
        for data in (provider.get(item.href).data, provider.changes(None, {}).upserted[0].data):
            event = event_of(data)
            assert str(event["SUMMARY"]) == summary
            assert str(event["DESCRIPTION"]) == description

    def test_unknown_x_properties_are_kept(self, provider: CalendarProvider) -> None:
        u = uid()
        data = make_ics(u, extra=("X-CALSYNC-BOOKING:bk_123", "X-OTHER-APP;X-PARAM=1:keep me"))
        item = provider.create(u, data)
        event = event_of(provider.get(item.href).data)
        assert str(event["X-CALSYNC-BOOKING"]) == "bk_123"
        assert str(event["X-OTHER-APP"]) == "keep me"

    def test_sequence_is_stored_as_given(self, provider: CalendarProvider) -> None:
        # calsync manages SEQUENCE for invites; a provider must not bump it on writes.
        u = uid()
        item = provider.create(u, make_ics(u, extra=("SEQUENCE:3",)))
        assert event_of(provider.get(item.href).data)["SEQUENCE"] == 3
        provider.update(item.href, make_ics(u, extra=("SEQUENCE:4",)), item.etag)
        assert event_of(provider.get(item.href).data)["SEQUENCE"] == 4

    # -- changes ------------------------------------------------------------------------------

    def test_first_changes_lists_everything(self, provider: CalendarProvider) -> None:
        created = [provider.create(u, make_ics(u)) for u in (uid(), uid(), uid())]
        delta = provider.changes(None, {})
        assert delta.full
        assert delta.removed == []
        assert {(i.href, i.etag) for i in delta.upserted} == {(i.href, i.etag) for i in created}
        assert delta.cursor is not None

    def test_empty_calendar(self, provider: CalendarProvider) -> None:
        delta = provider.changes(None, {})
        assert (delta.upserted, delta.removed, delta.full) == ([], [], True)

    def test_deleted_before_first_sync_is_not_reported(self, provider: CalendarProvider) -> None:
        u = uid()
        gone = provider.create(u, make_ics(u))
        provider.delete(gone.href, gone.etag)
        kept = provider.create(u2 := uid(), make_ics(u2))
        delta = provider.changes(None, {})
        assert hrefs(delta.upserted) == {kept.href}
        assert delta.removed == []

    def test_incremental_changes(self, provider: CalendarProvider) -> None:
        a, b, c = (provider.create(u, make_ics(u)) for u in (uid(), uid(), uid()))
        known: dict[str, str] = {}
        cursor = self.sync(provider, None, known).cursor

        new_uid = uid()
        new = provider.create(new_uid, make_ics(new_uid))
        b_etag = provider.update(b.href, make_ics(event_of(b.data)["UID"], "moved"), b.etag)
        provider.delete(c.href, c.etag)

        delta = self.sync(provider, cursor, known)
        assert not delta.full
        assert {(i.href, i.etag) for i in delta.upserted} == {
            (new.href, new.etag),
            (b.href, b_etag),
        }
        assert delta.removed == [c.href]
        assert known == {a.href: a.etag, b.href: b_etag, new.href: new.etag}

    def test_no_change_poll_is_empty(self, provider: CalendarProvider) -> None:
        provider.create(u := uid(), make_ics(u))
        known: dict[str, str] = {}
        cursor = self.sync(provider, None, known).cursor
        delta = provider.changes(cursor, known)
        assert (delta.upserted, delta.removed, delta.full) == ([], [], False)
        assert delta.cursor is not None

    def test_old_cursor_gives_the_same_changes_again(self, provider: CalendarProvider) -> None:
        # The cursor only advances when the caller stores the delta: a poll whose result was
        # lost (crash before commit) is simply repeated.
        known: dict[str, str] = {}
        cursor = self.sync(provider, None, known).cursor
        item = provider.create(u := uid(), make_ics(u))
        first = provider.changes(cursor, dict(known))
        again = provider.changes(cursor, dict(known))
        assert hrefs(first.upserted) == hrefs(again.upserted) == {item.href}

    def test_full_resync_reconciles_against_known(self, provider: CalendarProvider) -> None:
        a, b, c = (provider.create(u, make_ics(u)) for u in (uid(), uid(), uid()))
        b_etag = provider.update(b.href, make_ics(event_of(b.data)["UID"], "moved"), b.etag)
        provider.delete(c.href, c.etag)
        d = provider.create(u := uid(), make_ics(u))
        # The caller last saw a, b (old etag) and c; d is new to it.
        known = {a.href: a.etag, b.href: b.etag, c.href: c.etag}
        delta = provider.changes(None, known)
        assert delta.full
        assert {(i.href, i.etag) for i in delta.upserted} == {(b.href, b_etag), (d.href, d.etag)}
        assert delta.removed == [c.href]

    def test_expired_cursor_then_full_reconcile(self, provider: CalendarProvider) -> None:
        a, b, c = (provider.create(u, make_ics(u)) for u in (uid(), uid(), uid()))
        known: dict[str, str] = {}
        cursor = self.sync(provider, None, known).cursor
        assert cursor is not None

        b_etag = provider.update(b.href, make_ics(event_of(b.data)["UID"], "moved"), b.etag)
        provider.delete(c.href, c.etag)
        d = provider.create(u := uid(), make_ics(u))

        stale = self.expire_cursor(provider, cursor)
        with pytest.raises(CursorExpired):
            provider.changes(stale, known)
        delta = self.sync(provider, None, known)
        assert delta.full
        # Nothing duplicated, nothing lost: exactly the changes, and the map matches the calendar.
        assert sorted(i.href for i in delta.upserted) == sorted([b.href, d.href])
        assert delta.removed == [c.href]
        assert known == {a.href: a.etag, b.href: b_etag, d.href: d.etag}
        # And incremental sync works again from the new cursor.
        assert provider.changes(delta.cursor, known).upserted == []
