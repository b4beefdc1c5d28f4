"""Finding the calendars of a CalDAV account, for ``calsync calendar add``."""

from __future__ import annotations

import contextlib
import logging
from typing import Any
from urllib.parse import unquote, urljoin, urlsplit

from caldav.davclient import DAVClient

from calsync.calendars.base import CalendarInfo
from calsync.calendars.caldav.wire import (
    CALENDAR_TYPE,
    COMPONENTS,
    HOME_SET,
    PROPFIND_DISCOVERY,
    PROPFIND_PRINCIPAL,
    TIMEZONE,
    Boundary,
    href_of,
    new_client,
    propfind_results,
    tzid,
    without_credentials,
)
from calsync.calendars.errors import NotACalendar

log = logging.getLogger(__name__)


def discover_calendars(
    url: str,
    *,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 30.0,
) -> list[CalendarInfo]:
    """The calendars that can hold events, at a server, principal or calendar URL.

    A calendar URL gives just that calendar. A server or principal URL gives the principal's
    calendars that accept VEVENTs (task lists are left out). Raises NotACalendar when the URL
    is not a CalDAV server or has no calendars, AuthFailed, Unavailable.
    """
    url, username, password = without_credentials(url, username, password)
    boundary = Boundary(url, timeout, username)
    with boundary("connecting"):
        client = new_client(url, username, password, timeout)
    try:
        return _discover(client, boundary, url)
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _discover(client: DAVClient, boundary: Boundary, url: str) -> list[CalendarInfo]:
    doing = "looking for calendars"

    def propfind(target: str, body: str, depth: int) -> dict[str, dict[str, Any]]:
        results = propfind_results(client, boundary, target, body, depth, doing)
        return {urljoin(target, href_of(r.href)): r.properties for r in results if r.status < 300}

    def own_props(target: str, body: str) -> dict[str, Any]:
        found = propfind(target, body, 0)
        return found.get(target) or next(iter(found.values()), {})

    def info(cal_url: str, props: dict[str, Any]) -> CalendarInfo | None:
        if CALENDAR_TYPE not in (props.get("{DAV:}resourcetype") or []):
            return None
        components = props.get(COMPONENTS)
        if components and "VEVENT" not in components:  # absent means "any" (RFC 4791 5.2.3)
            return None
        name = props.get("{DAV:}displayname")
        fallback = unquote(urlsplit(cal_url).path.rstrip("/").rsplit("/", 1)[-1])
        name = name if isinstance(name, str) and name else fallback
        return CalendarInfo(cal_url, name, tzid(props.get(TIMEZONE)))

    props = own_props(url, PROPFIND_DISCOVERY)
    if CALENDAR_TYPE in (props.get("{DAV:}resourcetype") or []):
        found = info(url, props)
        if found is not None:
            return [found]
        raise NotACalendar(
            f"The calendar at {url} cannot hold events (it is a task list or similar): "
            "choose another calendar.",
            url=url,
        )
    home = props.get(HOME_SET)
    if not home:
        # Asked only now: Radicale answers 401 to any anonymous PROPFIND naming this property.
        principal = own_props(url, PROPFIND_PRINCIPAL).get("{DAV:}current-user-principal")
        if not isinstance(principal, str):
            raise NotACalendar(
                f"The server at {url} did not say whose calendars to list: give a "
                "--username, or the URL of the principal or of the calendar itself.",
                url=url,
            )
        home = own_props(urljoin(url, principal), PROPFIND_DISCOVERY).get(HOME_SET)
        if not home:
            raise NotACalendar(
                f"The CalDAV server at {url} names no calendar home for {principal}: give the "
                "URL of the calendar itself.",
                url=url,
            )
    homes = [home] if isinstance(home, str) else list(home)
    calendars: list[CalendarInfo] = []
    for home_url in (urljoin(url, h) for h in homes):
        for cal_url, cal_props in propfind(home_url, PROPFIND_DISCOVERY, 1).items():
            if (cal := info(cal_url, cal_props)) is not None:
                calendars.append(cal)
    if not calendars:
        raise NotACalendar(
            f"Found no calendar for events at {url}: create one in your calendar app first, "
            "or give the URL of the calendar itself.",
            url=url,
        )
    return calendars
