"""The CalDAV provider: one calendar collection on any CalDAV server, through ``caldav`` 3.x.

Polling is built for few requests: an incremental poll is one ``sync-collection`` REPORT
(RFC 6578) asking only for ETags, plus one ``calendar-multiget`` REPORT for the objects whose
ETag the caller does not know yet. A server without sync support is polled by ETag listing
(PROPFIND Depth 1) instead, with the same multiget.

Writes are conditional PUT/DELETE requests sent through the ``DAVClient``'s low-level
``request`` method, so the bytes calsync built are stored as they are: caldav's ``save()`` would
bump SEQUENCE and may search by UID first (calsync manages SEQUENCE itself).

hrefs are URL paths, percent-encoded one canonical way (``/alice/cal/a%40b.ics``), whichever
spelling the server used in a given answer.

Every exception from caldav, niquests and lxml is translated here into the ``ProviderError``
tree, with the original chained and a message that tells a person what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit
from xml.sax.saxutils import escape

import icalendar
from caldav import DAVClient
from caldav.lib import error as dav_error
from caldav.lib.http_sync import requests as http
from lxml import etree

from calsync.calendars.base import (
    UID,
    CalendarInfo,
    CalendarItem,
    CalendarProvider,
    Cursor,
    Delta,
    ETag,
    Href,
)
from calsync.calendars.errors import (
    AuthFailed,
    Conflict,
    CursorExpired,
    NotACalendar,
    NotFound,
    ProviderError,
    Unavailable,
)

log = logging.getLogger(__name__)

_VALID_SYNC_TOKEN = "{DAV:}valid-sync-token"
_CALDAV = "urn:ietf:params:xml:ns:caldav"
_UID_CONFLICT = {f"{{{_CALDAV}}}no-uid-conflict", f"{{{_CALDAV}}}unique-scheduling-object-resource"}
_BAD_DATA = {
    f"{{{_CALDAV}}}valid-calendar-data",
    f"{{{_CALDAV}}}valid-calendar-object-resource",
    f"{{{_CALDAV}}}supported-calendar-data",
    f"{{{_CALDAV}}}supported-calendar-component",
}
_CALENDAR_TYPE = f"{{{_CALDAV}}}calendar"
_COMPONENTS = f"{{{_CALDAV}}}supported-calendar-component-set"
_TIMEZONE = f"{{{_CALDAV}}}calendar-timezone"
_HOME_SET = f"{{{_CALDAV}}}calendar-home-set"

#: Objects per calendar-multiget REPORT: one request for any usual poll, bounded bodies for a
#: first sync of a very large calendar.
_MULTIGET_BATCH = 1000
#: Truncated sync-collection rounds followed by this module (caldav follows up to 100 pages
#: inside each round) before giving up on sync and listing ETags instead.
_MAX_SYNC_ROUNDS = 10

_XML_HEAD = '<?xml version="1.0" encoding="utf-8"?>'
_PROPFIND_ETAGS = (
    f'{_XML_HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/><D:resourcetype/></D:prop>'
    "</D:propfind>"
)
_PROPFIND_TIMEZONE = (
    f'{_XML_HEAD}<D:propfind xmlns:D="DAV:" xmlns:C="{_CALDAV}"><D:prop>'
    "<C:calendar-timezone/></D:prop></D:propfind>"
)
_PROPFIND_DISCOVERY = (
    f'{_XML_HEAD}<D:propfind xmlns:D="DAV:" xmlns:C="{_CALDAV}"><D:prop>'
    "<D:resourcetype/><D:displayname/><C:calendar-home-set/>"
    "<C:supported-calendar-component-set/><C:calendar-timezone/></D:prop></D:propfind>"
)
_PROPFIND_PRINCIPAL = (
    f'{_XML_HEAD}<D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop>'
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
class _Reply:
    """What a low-level request answered."""

    status: int
    headers: Mapping[str, str]
    text: str
    preconditions: list[str] = field(default_factory=list)


class _SyncUnusable(Exception):
    """sync-collection cannot be used here (unsupported, or a truncation that never ends)."""


def _without_credentials(
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


def _new_client(url: str, username: str | None, password: str | None, timeout: float) -> DAVClient:
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


class _Boundary:
    """Translates third-party exceptions into ProviderError for one server URL."""

    def __init__(self, url: str, timeout: float, username: str | None) -> None:
        self.url = url
        self.timeout = timeout
        self.username = username

    @contextlib.contextmanager
    def __call__(self, doing: str, url: str | None = None) -> Iterator[None]:
        try:
            yield
        except (ProviderError, _SyncUnusable):
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
                f"Could not reach the CalDAV server at {url} while {doing} ({exc}). "
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


class CalDAVProvider(CalendarProvider):
    """One CalDAV calendar collection, given by its URL.

    ``use_sync_collection=False`` polls by ETag listing only; with True (the default) calsync
    uses sync-collection and switches to ETag listing by itself if the server cannot sync.
    ``request_count`` counts the HTTP requests made (for benchmarks and tests).
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        use_sync_collection: bool = True,
    ) -> None:
        url, username, password = _without_credentials(url, username, password)
        self.url = url if url.endswith("/") else url + "/"
        self._path = href_of(self.url)
        self._origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.url))
        self._use_sync = use_sync_collection
        self._timezone: str | None = None
        self._timezone_read = False
        self._boundary = _Boundary(self.url, timeout, username)
        self._request_count = 0
        with self._boundary("connecting"):
            self._client = _new_client(self.url, username, password, timeout)
            self._calendar = self._client.calendar(url=self.url)
        # Count at the session, below caldav: that also sees its internal auth retries.
        session_request = self._client.session.request

        def counted(*args: Any, **kwargs: Any) -> Any:
            self._request_count += 1
            return session_request(*args, **kwargs)

        self._client.session.request = counted  # type: ignore[method-assign]

    @property
    def request_count(self) -> int:
        """HTTP requests this provider has sent so far."""
        return self._request_count

    @property
    def uses_sync_collection(self) -> bool:
        """False when polling by ETag listing (asked for, or the server cannot sync)."""
        return self._use_sync

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    # -- polling ------------------------------------------------------------------------------

    def changes(self, cursor: Cursor | None, known: Mapping[Href, ETag]) -> Delta:
        if not self._use_sync:
            return self._listing_delta(known)
        try:
            listed, deleted, token = self._sync(cursor)
        except _SyncUnusable:
            delta = self._listing_delta(known)
            # Only now that listing worked: a 403 on both is an access problem, raised above.
            log.info("%s: sync-collection unusable, polling by ETag listing", self.url)
            self._use_sync = False
            return delta
        full = cursor is None
        # A removal of something the caller never had (Radicale reports old tombstones even
        # on a first sync) is no news.
        removed = [h for h in known if h not in listed] if full else sorted(deleted & known.keys())
        wanted = [h for h, etag in listed.items() if etag is None or known.get(h) != etag]
        items, gone = self._multiget(wanted)
        removed += [h for h in gone if h in known and h not in removed]
        upserted = [item for item in items if known.get(item.href) != item.etag]
        return Delta(upserted=upserted, removed=removed, cursor=token, full=full)

    def _sync(self, cursor: Cursor | None) -> tuple[dict[Href, ETag | None], set[Href], Cursor]:
        """The sync-collection listing since ``cursor``: changed hrefs with their ETags, removed
        hrefs, and the new token. Follows truncated (507) replies until complete."""
        listed: dict[Href, ETag | None] = {}
        deleted: set[Href] = set()
        token = cursor
        for _round in range(_MAX_SYNC_ROUNDS):
            with self._boundary("asking for changes (sync-collection)"):
                try:
                    # disable_fallback: otherwise caldav hides a rejected token behind a full
                    # listing with a fake token that later returns everything again.
                    result = self._calendar.get_objects_by_sync_token(
                        token, load_objects=False, disable_fallback=True
                    )
                except dav_error.RateLimitError:
                    raise
                except dav_error.DAVError as exc:
                    raise self._sync_refused(exc, token) from exc
                except (OSError, NotImplementedError):
                    raise  # network and login problems: translated by the boundary
                except Exception as exc:
                    # caldav could not make sense of the answer (e.g. an HTML page that
                    # happens to be well-formed XML). The ETag listing either works, then
                    # it is the safer way to poll this server, or raises the real problem.
                    log.warning(
                        "%s: unreadable sync-collection answer: %r",
                        self.url,
                        exc,
                        exc_info=log.isEnabledFor(logging.DEBUG),
                    )
                    raise _SyncUnusable from exc
                for obj in result:
                    href = href_of(str(obj.url))
                    if href == self._path or href.endswith("/"):
                        continue  # the collection itself (iCloud) or a sub-collection
                    if obj.url.canonical() in result.deleted_urls:
                        deleted.add(href)
                        listed.pop(href, None)
                    else:
                        listed[href] = obj.props.get("{DAV:}getetag")
                        deleted.discard(href)
            new_token = result.sync_token
            if not new_token:
                # A 2xx without a token: not a real sync-collection answer (a plain web
                # server, or a proxy answering for it). The listing will tell.
                raise _SyncUnusable
            if not result.truncated:
                return listed, deleted, new_token
            # caldav already followed the 507 pages it could; go on while the token moves.
            if new_token == token:
                break
            token = new_token
        log.warning("%s: sync-collection stays truncated, listing ETags instead", self.url)
        raise _SyncUnusable

    def _sync_refused(self, exc: dav_error.DAVError, token: Cursor | None) -> Exception:
        """CursorExpired for a rejected token, _SyncUnusable when the server cannot sync, else
        the translated error."""
        status = exc.status
        # Radicale answers a bad token with 403, Xandikos 412, others 409; not all of them
        # name the precondition. (Without a token there is nothing to expire.)
        if token is not None and (
            _VALID_SYNC_TOKEN in exc.preconditions or status in (403, 409, 412)
        ):
            return CursorExpired(
                f"The CalDAV server at {self.url} no longer accepts calsync's sync token; "
                "calsync will re-read the whole calendar.",
                url=self.url,
            )
        if status in (401, 404) or (status is not None and status >= 500 and status != 501):
            return self._boundary.translate(exc, "asking for changes", self.url)
        # 400/403/405/501... or no status (caldav's own "not supported"). A 403 may also mean
        # missing rights: the ETag listing that follows raises AuthFailed in that case.
        return _SyncUnusable()

    def _listing_delta(self, known: Mapping[Href, ETag]) -> Delta:
        """A full delta from an ETag listing (PROPFIND Depth 1), for servers without sync."""
        reply = self._propfind(self.url, _PROPFIND_ETAGS, 1, "listing the calendar's events")
        listed: dict[Href, ETag | None] = {}
        for result in reply:
            href = href_of(result.href)
            types = result.properties.get("{DAV:}resourcetype") or []
            if href == self._path or href.endswith("/") or "{DAV:}collection" in types:
                continue
            listed[href] = result.properties.get("{DAV:}getetag")
        wanted = [h for h, etag in listed.items() if etag is None or known.get(h) != etag]
        items, gone = self._multiget(wanted)
        removed = [h for h in known if h not in listed or h in gone]
        upserted = [item for item in items if known.get(item.href) != item.etag]
        return Delta(upserted=upserted, removed=removed, cursor=None, full=True)

    def _multiget(self, hrefs: list[Href]) -> tuple[list[CalendarItem], list[Href]]:
        """Data and ETags of ``hrefs`` in calendar-multiget REPORTs; also the hrefs now gone.

        Built here rather than with ``Calendar.multiget``: caldav 3.6 fails with a TypeError
        when one href of the batch was deleted meanwhile (a 404 inside the 207).
        """
        items: list[CalendarItem] = []
        gone: list[Href] = []
        for start in range(0, len(hrefs), _MULTIGET_BATCH):
            batch = hrefs[start : start + _MULTIGET_BATCH]
            body = (
                f'{_XML_HEAD}<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{_CALDAV}">'
                "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
                + "".join(f"<D:href>{escape(h)}</D:href>" for h in batch)
                + "</C:calendar-multiget>"
            )
            doing = "reading changed events (calendar-multiget)"
            with self._boundary(doing):
                # No Depth header: RFC 4791 section 7.9 says not to send one with multiget.
                response = self._client.report(self.url, body, depth=None)
                if response.status != 207:
                    raise self._boundary.status_error(response.status, doing, self.url)
                results = response.parse_calendar_query()
            returned = set()
            for result in results:
                href = href_of(result.href)
                returned.add(href)
                if result.status == 404 or result.calendar_data is None:
                    gone.append(href)
                elif result.etag is None:
                    items.append(self.get(href))  # a server without getetag in REPORTs
                else:
                    items.append(CalendarItem(href, result.etag, result.calendar_data))
            gone += [h for h in batch if h not in returned]
        return items, gone

    # -- single objects -----------------------------------------------------------------------

    def get(self, href: Href) -> CalendarItem:
        reply = self._send("GET", href, doing=f"reading {href}")
        if reply.status in (404, 410):
            raise NotFound(f"The event {href} is no longer in {self.url}.", url=self._abs(href))
        if reply.status != 200:
            self._fail(reply, f"reading {href}", href)
        etag = reply.headers.get("ETag")
        if etag is None:
            items, _gone = self._multiget([href])
            if not items:
                raise NotFound(f"The event {href} is no longer in {self.url}.", url=self._abs(href))
            return items[0]
        return CalendarItem(href_of(href), etag, reply.text)

    def create(self, uid: UID, data: str) -> CalendarItem:
        href = self._path + quote(object_name(uid), safe="")
        doing = f"creating the event {uid}"
        reply = self._send("PUT", href, data, {"If-None-Match": "*"}, doing=doing)
        if reply.status in (200, 201, 204):
            etag = reply.headers.get("ETag")
            # No ETag means the server changed what we sent: read back what it stored.
            return CalendarItem(href, etag, data) if etag else self.get(href)
        self._refuse_data(reply, doing, href)
        if reply.status == 412 or set(reply.preconditions) & _UID_CONFLICT:
            raise Conflict(
                f"An event with UID {uid} already exists in {self.url}; calsync did not "
                "overwrite it.",
                url=self._abs(href),
            )
        self._fail(reply, doing, href)

    def update(self, href: Href, data: str, etag: ETag) -> ETag:
        doing = f"updating {href}"
        reply = self._send("PUT", href, data, {"If-Match": etag}, doing=doing)
        if reply.status in (200, 201, 204):
            new_etag = reply.headers.get("ETag")
            return new_etag if new_etag else self.get(href).etag
        self._refuse_data(reply, doing, href)
        if set(reply.preconditions) & _UID_CONFLICT:
            raise Conflict(
                f"Another event in {self.url} already has the UID calsync wrote to {href}.",
                url=self._abs(href),
            )
        if reply.status in (404, 410):
            raise NotFound(f"The event {href} was deleted from {self.url}.", url=self._abs(href))
        if reply.status == 412:
            # RFC 7232: If-Match on a missing resource also fails with 412; tell them apart.
            self._raise_conflict_or_gone(href, doing)
        self._fail(reply, doing, href)

    def delete(self, href: Href, etag: ETag) -> None:
        doing = f"deleting {href}"
        reply = self._send("DELETE", href, headers={"If-Match": etag}, doing=doing)
        if reply.status in (200, 202, 204):
            return
        if reply.status in (404, 410):
            raise NotFound(
                f"The event {href} was already deleted from {self.url}.", url=self._abs(href)
            )
        if reply.status == 412:
            self._raise_conflict_or_gone(href, doing)
        self._fail(reply, doing, href)

    def timezone(self) -> str | None:
        """TZID of the calendar's ``calendar-timezone`` (RFC 4791 5.2.2), if it has one."""
        if not self._timezone_read:
            results = self._propfind(self.url, _PROPFIND_TIMEZONE, 0, "reading the time zone")
            self._timezone = _tzid(results[0].properties.get(_TIMEZONE))
            self._timezone_read = True
        return self._timezone

    # -- plumbing -----------------------------------------------------------------------------

    def _abs(self, href: Href) -> str:
        return self._origin + href

    def _send(
        self,
        method: str,
        href: Href,
        body: str = "",
        headers: dict[str, str] | None = None,
        *,
        doing: str,
    ) -> _Reply:
        url = self._abs(href_of(href))
        all_headers = dict(headers or {})
        if body:
            all_headers["Content-Type"] = "text/calendar; charset=utf-8"
        with self._boundary(doing):
            try:
                response = self._client.request(url, method, body, all_headers)
            except dav_error.AuthorizationError as exc:
                if exc.status != 403:
                    raise
                # caldav raises on every 403; some 403s explain a refused write (Cyrus: UID).
                raw = exc.body or b""
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
                return _Reply(403, {}, text, exc.preconditions)
            text = response.raw
            preconditions = (
                dav_error.parse_preconditions(text) if response.status >= 400 and text else []
            )
            return _Reply(response.status, response.headers, text, preconditions)

    def _propfind(self, url: str, body: str, depth: int, doing: str) -> list[Any]:
        return _propfind(self._client, self._boundary, url, body, depth, doing)

    def _raise_conflict_or_gone(self, href: Href, doing: str) -> NoReturn:
        # GET, not HEAD: Xandikos 0.4.10 sends a body with its 404 to HEAD, which then poisons
        # the kept-alive connection for the next request ("illegal status line").
        if self._send("GET", href, doing=doing).status in (404, 410):
            raise NotFound(f"The event {href} was deleted from {self.url}.", url=self._abs(href))
        raise Conflict(
            f"The event {href} in {self.url} was changed by someone else since calsync read "
            "it; calsync will re-read it and apply its change again.",
            url=self._abs(href),
        )

    def _refuse_data(self, reply: _Reply, doing: str, href: Href) -> None:
        if reply.status in (400, 415) or set(reply.preconditions) & _BAD_DATA:
            raise ProviderError(
                f"The CalDAV server at {self.url} refused the event data while {doing} "
                f"(HTTP {reply.status}: {reply.text.strip()[:200]}).",
                url=self._abs(href),
            )

    def _fail(self, reply: _Reply, doing: str, href: Href) -> NoReturn:
        raise self._boundary.status_error(reply.status, doing, self._abs(href))


def _propfind(
    client: DAVClient, boundary: _Boundary, url: str, body: str, depth: int, doing: str
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


def _tzid(calendar_timezone: Any) -> str | None:
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
    url, username, password = _without_credentials(url, username, password)
    boundary = _Boundary(url, timeout, username)
    with boundary("connecting"):
        client = _new_client(url, username, password, timeout)
    try:
        return _discover(client, boundary, url)
    finally:
        with contextlib.suppress(Exception):
            client.close()


def _discover(client: DAVClient, boundary: _Boundary, url: str) -> list[CalendarInfo]:
    doing = "looking for calendars"

    def propfind(target: str, body: str, depth: int) -> dict[str, dict[str, Any]]:
        results = _propfind(client, boundary, target, body, depth, doing)
        return {urljoin(target, href_of(r.href)): r.properties for r in results if r.status < 300}

    def own_props(target: str, body: str) -> dict[str, Any]:
        found = propfind(target, body, 0)
        return found.get(target) or next(iter(found.values()), {})

    def info(cal_url: str, props: dict[str, Any]) -> CalendarInfo | None:
        if _CALENDAR_TYPE not in (props.get("{DAV:}resourcetype") or []):
            return None
        components = props.get(_COMPONENTS)
        if components and "VEVENT" not in components:  # absent means "any" (RFC 4791 5.2.3)
            return None
        name = props.get("{DAV:}displayname")
        fallback = unquote(urlsplit(cal_url).path.rstrip("/").rsplit("/", 1)[-1])
        name = name if isinstance(name, str) and name else fallback
        return CalendarInfo(cal_url, name, _tzid(props.get(_TIMEZONE)))

    props = own_props(url, _PROPFIND_DISCOVERY)
    if _CALENDAR_TYPE in (props.get("{DAV:}resourcetype") or []):
        found = info(url, props)
        if found is not None:
            return [found]
        raise NotACalendar(
            f"The calendar at {url} cannot hold events (it is a task list or similar): "
            "choose another calendar.",
            url=url,
        )
    home = props.get(_HOME_SET)
    if not home:
        # Asked only now: Radicale answers 401 to any anonymous PROPFIND naming this property.
        principal = own_props(url, _PROPFIND_PRINCIPAL).get("{DAV:}current-user-principal")
        if not isinstance(principal, str):
            raise NotACalendar(
                f"The server at {url} did not say whose calendars to list: give a "
                "--username, or the URL of the principal or of the calendar itself.",
                url=url,
            )
        home = own_props(urljoin(url, principal), _PROPFIND_DISCOVERY).get(_HOME_SET)
        if not home:
            raise NotACalendar(
                f"The CalDAV server at {url} names no calendar home for {principal}: give the "
                "URL of the calendar itself.",
                url=url,
            )
    homes = [home] if isinstance(home, str) else list(home)
    calendars: list[CalendarInfo] = []
    for home_url in (urljoin(url, h) for h in homes):
        for cal_url, cal_props in propfind(home_url, _PROPFIND_DISCOVERY, 1).items():
            if (cal := info(cal_url, cal_props)) is not None:
                calendars.append(cal)
    if not calendars:
        raise NotACalendar(
            f"Found no calendar for events at {url}: create one in your calendar app first, "
            "or give the URL of the calendar itself.",
            url=url,
        )
    return calendars
