"""The live check asks every conflict calendar's provider through the interface (``busy()``):
a provider with a live answer adds what the mirror does not hold yet, one without (CalDAV)
adds nothing. The Google case, through the real client, is in test_google_live_check.py."""

from __future__ import annotations

from datetime import UTC

from calsync.bookings.event_types import save_event_type
from calsync.bookings.live_check import live_busy
from calsync.calendars.memory import MemoryProvider
from calsync.config import Settings
from calsync.policy.types import Slot, Span
from calsync.store.db import Database
from calsync.sync import connections as services
from calsync.sync.providers import open_provider
from tests.support.servers import ServerProcess
from tests.support.world import OWNER, at, coaching, next_monday


def test_the_live_check_adds_what_a_provider_reports_and_the_mirror_lacks(
    db: Database, settings: Settings, caldav_server: ServerProcess, caldav_calendar: str
) -> None:
    services.add_owner(db, name="Coach", email=OWNER, timezone="Europe/Berlin")
    username, password = caldav_server.auth or (None, None)
    services.add_caldav_calendar(
        db, settings, services.CalDAVRequest(OWNER, caldav_calendar, username, password)
    )
    event_type = save_event_type(db, coaching())
    monday = next_monday()
    slot = Slot(at(monday, 10).astimezone(UTC), at(monday, 11).astimezone(UTC))
    dentist = (at(monday, 10, 30).astimezone(UTC), at(monday, 11, 30).astimezone(UTC))
    live = MemoryProvider(timezone="Europe/Berlin")
    live.create(
        "dentist",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:dentist\r\n"
        f"DTSTAMP:20260101T000000Z\r\nDTSTART:{dentist[0]:%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{dentist[1]:%Y%m%dT%H%M%SZ}\r\nSUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
    )

    # Nothing was polled: the mirror knows nothing, the calendar's live answer has the event.
    assert live_busy(db, event_type, [slot], lambda connection: live) == [Span(*dentist)]
    # The real CalDAV provider has no live answer: the fresh poll is all there is.
    assert live_busy(db, event_type, [slot], open_provider(settings)) == []
