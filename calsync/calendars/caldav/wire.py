"""The CalDAV wire: request bodies, href spelling, client set-up and error translation.

Shared by the provider (``caldav.py``) and discovery (``caldav_discovery.py``). Every exception
from caldav, niquests and lxml is translated here (``Boundary``) into the ``ProviderError``
tree, with the original chained and a message that tells a person what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

import icalendar
from caldav.davclient import DAVClient
from caldav.elements import cdav, dav
from caldav.lib import error as dav_error
from caldav.lib.http_sync import requests as http
from lxml import etree

from calsync.calendars.base import (
    UID,
    Href,
)
from calsync.calendars.errors import (
    AuthFailed,
    NotACalendar,
    ProviderError,
    Unavailable,
    network_reason,
)

log = logging.getLogger(__name__)

VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"
CALDAV = "urn:ietf:params:xml:ns:caldav"
UID_CONFLICT = {f"{{{CALDAV}}}no-uid-conflict", f"{{{CALDAV}}}unique-scheduling-object-resource"}
BAD_DATA = {
    f"{{{CALDAV}}}valid-calendar-data",
    f"{{{CALDAV}}}valid-calendar-object-resource",
    f"{{{CALDAV}}}supported-calendar-data",
    f"{{{CALDAV}}}supported-calendar-component",
}
CALENDAR_TYPE = f"{{{CALDAV}}}calendar"
COMPONENTS = f"{{{CALDAV}}}supported-calendar-component-set"
TIMEZONE = f"{{{CALDAV}}}calendar-timezone"
HOME_SET = f"{{{CALDAV}}}calendar-home-set"

#: Objects per calendar-multiget REPORT: one request for any usual poll, bounded bodies for a
#: first sync of a very large calendar.
MULTIGET_BATCH = 1000
#: Objects per calendar-multiget REPORT when the caller works on each part as it arrives
#: (``changes_arriving``): small enough that little of the server's time is left unshared.
ARRIVING_BATCH = 250
#: Truncated (507) sync-collection pages followed before giving up on sync and listing ETags
#: instead: the 10 rounds of caldav's 100 pages each that calsync followed when caldav read them.
MAX_SYNC_PAGES = 1000

XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>'
PROPFIND_ETAGS = (
    f'{XML_HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop>'
    "</D:propfind>"
)
PROPFIND_TIMEZONE = (
    f'{XML_HEAD}<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV}"><D:prop>'
    "<C:calendar-timezone/></D:prop></D:propfind>"
)
PROPFIND_DISCOVERY = (
    f'{XML_HEAD}<D:propfind xmlns:D="DAV:" xmlns:C="{CALDAV}"><D:prop>'
    "<D:resourcetype/><D:displayname/><C:calendar-home-set/>"
    "<C:supported-calendar-component-set/><C:calendar-timezone/></D:prop></D:propfind>"
)
PROPFIND_PRINCIPAL = (
    f'{XML_HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop>'
    "</D:propfind>"
)


def href_of(path_or_url: str) -> Href:
    """The canonical href of a URL or URL path: its path, percent-encoded one fixed way."""
    return quote(unquote(urlsplit(path_or_url).path), safe="/")


def object_name(uid: UID) -> str:
    """A file name for a new object: the UID when it is URL-safe, else a readable part of it
    plus a hash (so two UIDs never share a name and a retry finds its own object)."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", uid):
        return f"{uid}.ics"
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", uid).strip(".-")[:60]
    digest = hashlib.sha256(uid.encode("utf-8")).hexdigest()[:16]
    return f"{readable}-{digest}.ics" if readable else f"{digest}.ics"


@dataclass(slots=True)
class Reply:
    """What a low-level request answered."""

    status: int
    headers: Mapping[str, str]
    text: str
    preconditions: list[str] = field(default_factory=list)


class SyncUnusable(Exception):
    """sync-collection cannot be used here (unsupported, or a truncation that never ends)."""


def without_credentials(
    url: str, username: str | None, password: str | None
) -> tuple[str, str | None, str | None]:
    """Move ``user:password@`` out of the URL (explicit arguments win): the URL ends up in
    messages and logs, the password must not."""
    parts = urlsplit(url)
    if parts.username is None:
        return url, username, password
    if username is None:
        username = unquote(parts.username)
        if password is None and parts.password is not None:
            password = unquote(parts.password)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])), username, password


def new_client(url: str, username: str | None, password: str | None, timeout: float) -> DAVClient:
    # auth_type="basic" sends the credentials up front: no 401 round trip on every connection
    # (Radicale closes each connection, so that would double every request).
    return DAVClient(
        url=url,
        username=username,
        password=password,
        auth_type="basic" if username is not None else None,
        timeout=timeout,  # type: ignore[arg-type]  # caldav annotates int; niquests takes float
        enable_rfc6764=False,
    )


class Boundary:
    """Translates third-party exceptions into ProviderError for one server URL."""

    def __init__(self, url: str, timeout: float, username: str | None) -> None:
        self.url = url
        self.timeout = timeout
        self.username = username

    @contextlib.contextmanager
    def __call__(self, doing: str, url: str | None = None) -> Iterator[None]:
        try:
            yield
        except (ProviderError, SyncUnusable):
            raise
        except Exception as exc:
            raise self.translate(exc, doing, url or self.url) from exc

    def translate(self, exc: Exception, doing: str, url: str) -> ProviderError:
        status = getattr(exc, "status", None)
        if isinstance(exc, dav_error.RateLimitError):
            return Unavailable(
                f"The CalDAV server at {url} is busy or rate-limiting calsync ({exc.reason}) "
                f"while {doing}; calsync will try again later.",
                url=url,
            )
        if isinstance(exc, dav_error.AuthorizationError):
            return self.refused(url, status or 401)
        if isinstance(exc, http.exceptions.Timeout):
            return Unavailable(
                f"The CalDAV server at {url} did not answer within {self.timeout:g} s while "
                f"{doing}; calsync will try again later. If this persists, check the server.",
                url=url,
            )
        if isinstance(exc, OSError):  # niquests' RequestException is an OSError too
            return Unavailable(
                f"Could not reach the CalDAV server at {url} while {doing}: {network_reason(exc)}. "
                "calsync will try again later; if this persists, check that the server is "
                "running and the URL is right.",
                url=url,
            )
        if isinstance(exc, dav_error.DAVError) and status is not None:
            return self.status_error(status, doing, url)
        if isinstance(exc, etree.Error):
            return NotACalendar(
                f"{url} answered with XML calsync cannot read while {doing}: it does not look "
                "like a CalDAV server. Check the URL and run `calsync calendar add` again.",
                url=url,
            )
        if isinstance(exc, NotImplementedError):  # caldav: no supported auth scheme offered
            return AuthFailed(
                f"The CalDAV server at {url} asks for a login method calsync does not support "
                f"({exc}). Use an app password with Basic or Digest authentication.",
                url=url,
            )
        log.warning(
            "unexpected error from caldav while %s at %s: %r",
            doing,
            url,
            exc,
            exc_info=log.isEnabledFor(logging.DEBUG),
        )
        return ProviderError(
            f"The CalDAV server at {url} gave an answer calsync does not understand while "
            f"{doing} ({type(exc).__name__}: {exc}). calsync will try again later.",
            url=url,
        )

    def refused(self, url: str, status: int) -> AuthFailed:
        if status == 403:
            who = f"the user {self.username!r}" if self.username else "calsync (no username)"
            return AuthFailed(
                f"The CalDAV server at {url} refused access for {who} (403 Forbidden): check "
                "that this account may read and write the calendar, then run "
                "`calsync calendar add` again.",
                url=url,
            )
        if self.username is None:
            return AuthFailed(
                f"The CalDAV server at {url} requires a login (401): run `calsync calendar "
                "add` again with --username and --password-env.",
                url=url,
            )
        return AuthFailed(
            f"The CalDAV server at {url} refused the username/password for "
            f"{self.username!r} (401): check them and run `calsync calendar add` again.",
            url=url,
        )

    def status_error(self, status: int, doing: str, url: str) -> ProviderError:
        if status in (401, 403):
            return self.refused(url, status)
        if status >= 500 and status != 501:  # 501: the method itself is unknown there
            return Unavailable(
                f"The CalDAV server at {url} failed with HTTP {status} while {doing}; calsync "
                "will try again later. If this persists, check the server's logs.",
                url=url,
            )
        return NotACalendar(
            f"{url} answered HTTP {status} while {doing}: it is not a CalDAV calendar calsync "
            "can use. Check the URL (e.g. with `calsync calendar add`, which lists the "
            "calendars a server offers).",
            url=url,
        )


def propfind_results(
    client: DAVClient, boundary: Boundary, url: str, body: str, depth: int, doing: str
) -> list[Any]:
    """PROPFIND results (caldav's PropfindResult: href, properties, status) for ``url``."""
    with boundary(doing, url):
        response = client.propfind(url, props=body, depth=depth)
        if response.status not in (200, 207):
            raise boundary.status_error(response.status, doing, url)
        results = list(response.results or [])
    if not results:
        # Any WebDAV collection lists itself; nothing at all means a plain web server.
        raise NotACalendar(
            f"{url} answered PROPFIND without WebDAV properties: it is not a CalDAV server. "
            "Check the URL and run `calsync calendar add` again.",
            url=url,
        )
    return results


def sync_body(token: str | None) -> str:
    """A sync-collection REPORT (RFC 6578) asking for the ETags changed since ``token`` (all
    members without one); the body caldav's ``get_objects_by_sync_token`` sends."""
    return (
        f'{XML_HEAD}<D:sync-collection xmlns:D="DAV:" xmlns:C="{CALDAV}">'
        f"<D:sync-token>{escape(token or '')}</D:sync-token><D:sync-level>1</D:sync-level>"
        "<D:prop><D:getetag/></D:prop></D:sync-collection>"
    )


@dataclass(frozen=True, slots=True)
class SyncPage:
    """One sync-collection answer: each member's href (``href_of`` spelling) with its ETag,
    None for a removed member; the new token; whether the server truncated the answer."""

    members: list[tuple[Href, str | None, bool]]  # href, ETag, removed
    token: str | None
    truncated: bool


# The properties caldav reads from a sync-collection answer (it checks all three).
_SYNC_PROPS = [dav.GetEtag(), cdav.CalendarData(), cdav.ScheduleTag()]


def sync_page(response: Any, collection: Href) -> SyncPage:
    """Read one sync-collection answer (caldav's ``DAVResponse`` of the REPORT to
    ``collection``) as caldav's ``get_objects_by_sync_token`` did, without building a caldav
    object and URLs per member (~0.3 s of CPU for 2,000 members).

    caldav still parses and checks the XML (``expand_simple_props``: a failed propstat or an
    unexpected status raises its ``ResponseError``). A member is removed when its response has a
    404 status and no ETag (RFC 6578 3.2; Cyrus lists a member both ways, with an ETag when it
    changed). A 507 marker for another href than ``collection`` raises ``SyncUnusable``.
    """
    found = response.expand_simple_props(_SYNC_PROPS)
    statuses: dict[str, str | None] = response.statuses
    members = []
    for raw_href, props in found.items():
        etag = props.get(dav.GetEtag.tag)
        status = statuses.get(raw_href)
        removed = etag is None and status is not None and _status_code(status) == 404
        members.append((_member_href(raw_href, collection), etag, removed))
    marker = response.sync_truncated_href
    if marker is not None and unquote(_member_href(marker, collection)).rstrip("/") != unquote(
        collection
    ).rstrip("/"):
        # RFC 6578 3.6 marks truncation with a 507 for the request URL; one for another href
        # is a failure caldav raised on.
        raise SyncUnusable(f"sync-collection: 507 Insufficient Storage for {marker}")
    return SyncPage(members, response.sync_token, marker is not None)


def _member_href(raw_href: str, collection: Href) -> Href:
    """The ``href_of`` spelling of an href caldav's parser returned (decoded), spelled again
    the way caldav's objects had it: quoted, and joined to the collection when relative."""
    path = quote(raw_href)
    if not path.startswith("/"):
        path = collection + path
    return href_of(path)


def _status_code(status: str) -> int:
    """The code of a status line ("HTTP/1.1 404 Not Found"); 200 when there is none, as caldav."""
    parts = status.split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return 200


def tzid(calendar_timezone: Any) -> str | None:
    """The TZID of the first VTIMEZONE in a ``calendar-timezone`` property value."""
    if not isinstance(calendar_timezone, str) or "VTIMEZONE" not in calendar_timezone:
        return None
    try:
        parsed = icalendar.Calendar.from_ical(calendar_timezone)
    except ValueError:
        return None
    for component in parsed.walk("VTIMEZONE"):
        tzid = component.get("TZID")
        if tzid:
            return str(tzid)
    return None


# -- discovery ----------------------------------------------------------------------------------
