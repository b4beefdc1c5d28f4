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
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import icalendar
from caldav.davclient import DAVClient
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
#: Truncated sync-collection pages followed (while the token moves on) before giving up on
#: sync and listing ETags instead.
MAX_SYNC_PAGES = 1000
#: Idle clients (each with its kept-alive connection) a ``ClientPool`` keeps at most.
POOL_IDLE = 32

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


class CountedClient:
    """A DAVClient and the HTTP requests its session has sent: counted at the session, below
    caldav, so that caldav's internal auth retries are seen too."""

    def __init__(self, client: DAVClient) -> None:
        self.client = client
        self.requests = 0
        session_request = client.session.request

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.requests += 1
            return session_request(*args, **kwargs)

        client.session.request = counted  # type: ignore[method-assign]


ClientKey = tuple[str, str | None, str | None, float]


class ClientPool:
    """Clients given back by closed providers, for the next provider of the same server and
    login: a poll then reuses the client and its kept-alive connection instead of building
    both anew. A client serves one provider at a time. Keyed by origin *and* login, and its
    cookies are cleared when it comes back, so nothing of one account reaches another or a
    later poll. At most ``max_idle`` clients wait; the longest idle is closed first."""

    def __init__(self, max_idle: int = POOL_IDLE) -> None:
        self._max_idle = max_idle
        self._idle: OrderedDict[ClientKey, list[CountedClient]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(url: str, username: str | None, password: str | None, timeout: float) -> ClientKey:
        return ("{0.scheme}://{0.netloc}".format(urlsplit(url)), username, password, timeout)

    def take(self, key: ClientKey) -> CountedClient | None:
        """An idle client for ``key``, or None (the caller makes one)."""
        with self._lock:
            idle = self._idle.get(key)
            if not idle:
                return None
            client = idle.pop()
            if not idle:
                del self._idle[key]
            self._count -= 1
            return client

    def give_back(self, key: ClientKey, client: CountedClient) -> None:
        client.client.session.cookies.clear()
        evicted: list[CountedClient] = []
        with self._lock:
            self._idle.setdefault(key, []).append(client)
            self._idle.move_to_end(key)
            self._count += 1
            while self._count > self._max_idle:
                oldest_key, oldest = next(iter(self._idle.items()))
                evicted.append(oldest.pop(0))
                if not oldest:
                    del self._idle[oldest_key]
                self._count -= 1
        for stale in evicted:
            with contextlib.suppress(Exception):
                stale.client.close()

    def close(self) -> None:
        """Close every idle client (and its connections)."""
        with self._lock:
            idle = [client for clients in self._idle.values() for client in clients]
            self._idle.clear()
            self._count = 0
        for client in idle:
            with contextlib.suppress(Exception):
                client.client.close()


class Boundary:
    """Translates third-party exceptions into ProviderError for one server URL. ``failed``
    tells whether it translated any (the connection may then be in a bad state)."""

    def __init__(self, url: str, timeout: float, username: str | None) -> None:
        self.url = url
        self.timeout = timeout
        self.username = username
        self.failed = False

    @contextlib.contextmanager
    def __call__(self, doing: str, url: str | None = None) -> Iterator[None]:
        try:
            yield
        except (ProviderError, SyncUnusable):
            raise
        except Exception as exc:
            self.failed = True
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
