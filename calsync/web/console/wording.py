"""The console's words: calendar states and their remedies, roles, and errors from the layers
below turned into what an owner can do about them. One place for the console's face, as
``web/manage/wording.py`` is for the customer's and ``web/errors.py`` for the API's."""

from __future__ import annotations

from dataclasses import dataclass

from calsync.calendars.errors import (
    AuthFailed,
    NotACalendar,
    ProviderError,
    Unavailable,
)
from calsync.store.models import (
    AdoptionRule,
    CalendarConnection,
    CalendarRole,
    CancelMode,
    ConnectionStatus,
)

ROLES = {
    CalendarRole.CONFLICTS: "Busy time only",
    CalendarRole.BOOKINGS: "Bookings only",
    CalendarRole.BOTH: "Busy time and bookings",
}
ROLE_HINT = (
    "Busy time: events in it keep bookings away. Bookings: booked sessions are written into "
    "it (calsync needs permission to edit it)."
)
CANCEL_MODES = {
    CancelMode.MARK: "Keep the event, marked cancelled and free",
    CancelMode.DELETE: "Delete the event",
}
ADOPTION_RULES = {
    AdoptionRule.OFF: "Off: calsync only manages bookings made through it",
    AdoptionRule.ALL: "Every event in this calendar is a booking",
    AdoptionRule.ATTENDEES: "Events with a guest other than you are bookings",
    AdoptionRule.CATEGORY: "Events with a category you name are bookings",
}


@dataclass(frozen=True, slots=True)
class SyncState:
    """A calendar's state in words: ``label``, and what to do about it (None when nothing)."""

    label: str
    problem: bool
    todo: str | None


def sync_state(calendar: CalendarConnection) -> SyncState:
    status = calendar.status
    if status is ConnectionStatus.NEW:
        return SyncState(
            "Not read yet",
            False,
            "calsync reads it within a few minutes; press “Sync now” to read it right away.",
        )
    if status is ConnectionStatus.OK:
        return SyncState("Up to date", False, None)
    if status is ConnectionStatus.AUTH_FAILED:
        return SyncState(
            "The server refused the username or password",
            True,
            "If the password changed, disconnect this calendar and connect it again with the "
            "new password. calsync tries again now and then, but will not succeed until then.",
        )
    if status is ConnectionStatus.NEEDS_RECONNECT:
        return SyncState(
            "Google access ended",
            True,
            "Google no longer lets calsync read this calendar. Connect Google again "
            "(Connect a calendar → Connect Google); waiting changes are made after that.",
        )
    return SyncState(
        "Cannot be read at the moment",
        True,
        "calsync keeps trying on its own. If this lasts, check that the calendar server is "
        "running and its address is still right; “Sync now” tries at once.",
    )


def provider_problem(exc: ProviderError) -> str:
    """What a calendar server's failure means for someone connecting a calendar."""
    if isinstance(exc, AuthFailed):
        return (
            "The server did not accept this username and password. Check them (some servers "
            "need an app password) and try again."
        )
    if isinstance(exc, NotACalendar):
        return (
            "No calendars were found at this address. Give the address of your CalDAV server "
            "or of one calendar (your calendar app's account settings show it), e.g. "
            "https://cloud.example.org/remote.php/dav/."
        )
    if isinstance(exc, Unavailable):
        return (
            "The server could not be reached. Check the address, and that the server is "
            "running, then try again. Nothing was saved."
        )
    return f"The calendar server answered with a problem: {exc}. Nothing was saved."


PRIVATE_ADDRESS = (
    "calsync does not connect to addresses on its own network (such as 127.0.0.1, 10.x.x.x "
    "or 192.168.x.x) from the console. Give your calendar server's public address, or ask "
    "the operator to connect it for you."
)
