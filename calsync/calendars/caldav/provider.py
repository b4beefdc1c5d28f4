"""The CalDAV provider: one calendar collection on any CalDAV server, through ``caldav`` 3.x.

Polling is built for few requests: an incremental poll is one ``sync-collection`` REPORT
(RFC 6578) asking only for ETags (sent and read by hand: ``sync_report``), plus one
``calendar-multiget`` REPORT for the objects whose ETag the caller does not know yet. A
server without sync support is polled by ETag listing (PROPFIND Depth 1) instead, with the
same multiget. A full read for a caller that works on the items as they arrive
(``changes_arriving``, a first sync) asks for them 250 at a time, each REPORT sent while the
caller works on the previous one's items.

Writes are conditional PUT/DELETE requests sent through the ``DAVClient``'s low-level
``request`` method, so the bytes calsync built are stored as they are: caldav's ``save()`` would
bump SEQUENCE and may search by UID first (calsync manages SEQUENCE itself).

hrefs are URL paths, percent-encoded one canonical way (``/alice/cal/a%40b.ics``), whichever
spelling the server used in a given answer.

A provider made with a ``ClientPool`` takes its client from it and gives it back on
``close()``, so the polls of one server and login reuse one client and its connection.

Every exception from caldav, niquests and lxml is translated into the ``ProviderError`` tree
by ``caldav_wire.Boundary``; discovery of an account's calendars is in ``caldav_discovery``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NoReturn
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

from caldav.lib import error as dav_error

from calsync.calendars.base import (
    UID,
    CalendarItem,
    CalendarProvider,
    Cursor,
    Delta,
    ETag,
    Href,
)
from calsync.calendars.caldav.sync_report import (
    SYNC_HEADERS,
    SyncPage,
    SyncRefused,
    Unreadable,
    parse_sync_page,
    sync_body,
)
from calsync.calendars.caldav.wire import (
    ARRIVING_BATCH,
    BAD_DATA,
    CALDAV,
    MAX_SYNC_PAGES,
    MULTIGET_BATCH,
    PROPFIND_ETAGS,
    PROPFIND_TIMEZONE,
    TIMEZONE,
    UID_CONFLICT,
    VALID_SYNC_TOKEN,
    XML_HEAD,
    Boundary,
    ClientPool,
    CountedClient,
    Reply,
    SyncUnusable,
    href_of,
    new_client,
    object_name,
    propfind_results,
    tzid,
    without_credentials,
)
from calsync.calendars.errors import (
    Conflict,
    CursorExpired,
    NotFound,
    ProviderError,
)

log = logging.getLogger(__name__)

#: Where ``changes_arriving`` hands each REPORT's items over, None for ``changes``.
Arrived = Callable[[Sequence[CalendarItem]], None] | None


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
        pool: ClientPool | None = None,
    ) -> None:
        url, username, password = without_credentials(url, username, password)
        self.url = url if url.endswith("/") else url + "/"
        self._path = href_of(self.url)
        self._origin = "{0.scheme}://{0.netloc}".format(urlsplit(self.url))
        self._use_sync = use_sync_collection
        self._timezone: str | None = None
        self._timezone_read = False
        self._boundary = Boundary(self.url, timeout, username)
        self._pool = pool
        self._closed = False
        self._key = ClientPool.key(self.url, username, password, timeout)
        counted = pool.take(self._key) if pool is not None else None
        if counted is None:
            with self._boundary("connecting"):
                counted = CountedClient(new_client(self.url, username, password, timeout))
        self._counted = counted
        self._client = counted.client
        self._requests_before = counted.requests

    @property
    def request_count(self) -> int:
        """HTTP requests this provider has sent so far."""
        return self._counted.requests - self._requests_before

    @property
    def uses_sync_collection(self) -> bool:
        """False when polling by ETag listing (asked for, or the server cannot sync)."""
        return self._use_sync

    def close(self) -> None:
        if self._closed:
            return  # (a pooled client may be another provider's by now)
        self._closed = True
        if self._pool is not None and not self._boundary.failed:
            self._pool.give_back(self._key, self._counted)
            return
        with contextlib.suppress(Exception):
            self._client.close()

    # -- polling ------------------------------------------------------------------------------

    def changes(self, cursor: Cursor | None, known: Mapping[Href, ETag]) -> Delta:
        return self._changes(cursor, known, None)

    def changes_arriving(
        self,
        cursor: Cursor | None,
        known: Mapping[Href, ETag],
        arrived: Callable[[Sequence[CalendarItem]], None],
    ) -> Delta:
        """``changes``, handing over the items of each calendar-multiget REPORT while the
        next one is on its way (a large delta is read in ``ARRIVING_BATCH`` parts)."""

        def new_ones(items: Sequence[CalendarItem]) -> None:
            arrived([item for item in items if known.get(item.href) != item.etag])

        return self._changes(cursor, known, new_ones)

    def _changes(
        self, cursor: Cursor | None, known: Mapping[Href, ETag], arrived: Arrived
    ) -> Delta:
        if not self._use_sync:
            return self._listing_delta(known, arrived)
        try:
            listed, deleted, token = self._sync(cursor)
        except SyncUnusable:
            delta = self._listing_delta(known, arrived)
            # Only now that listing worked: a 403 on both is an access problem, raised above.
            log.info("%s: sync-collection unusable, polling by ETag listing", self.url)
            self._use_sync = False
            return delta
        full = cursor is None
        # A removal of something the caller never had (Radicale reports old tombstones even
        # on a first sync) is no news.
        # (An unchanged calendar lists and deletes nothing: ``known`` is then never read, and the
        # poller's lazy mapping never queries it.)
        removed = (
            [h for h in known if h not in listed]
            if full
            else sorted(h for h in deleted if h in known)
        )
        wanted = [h for h, etag in listed.items() if etag is None or known.get(h) != etag]
        items, gone = self._multiget(wanted, arrived)
        removed += [h for h in gone if h in known and h not in removed]
        upserted = [item for item in items if known.get(item.href) != item.etag]
        return Delta(upserted=upserted, removed=removed, cursor=token, full=full)

    def _sync(self, cursor: Cursor | None) -> tuple[dict[Href, ETag | None], set[Href], Cursor]:
        """The sync-collection listing since ``cursor``: changed hrefs with their ETags, removed
        hrefs, and the new token. Follows truncated (507) replies while the token moves on.

        Each REPORT is sent and read by ``_sync_page`` (caldav's ``get_objects_by_sync_token``
        made an object and several URL objects per member: ~0.3 s of CPU for a 2,000-event
        first sync, and most of an unchanged poll's)."""
        listed: dict[Href, ETag | None] = {}
        deleted: set[Href] = set()
        token = cursor
        for _page in range(MAX_SYNC_PAGES):
            page = self._sync_page(token)
            for href, etag in page.listed.items():  # a later page wins
                listed[href] = etag
                deleted.discard(href)
            for href in page.deleted:
                deleted.add(href)
                listed.pop(href, None)
            if not page.token:
                # A 2xx without a token: not a real sync-collection answer (a plain web
                # server, or a proxy answering for it). The listing will tell.
                raise SyncUnusable
            if not page.truncated:
                return listed, deleted, page.token
            if page.token == token:
                break  # truncated without moving on: following it would never end
            token = page.token
        log.warning("%s: sync-collection stays truncated, listing ETags instead", self.url)
        raise SyncUnusable

    def _sync_page(self, token: Cursor | None) -> SyncPage:
        """One sync-collection REPORT, sent and read by hand (``sync_report``): caldav's
        request and response objects cost more than the request itself on an idle poll."""
        body = sync_body(token)
        with self._boundary("asking for changes (sync-collection)"):
            response = self._report(body)
            status = response.status_code or 0
            dav_error.raise_if_rate_limited(status, self.url, response.headers.get("Retry-After"))
            content = response.content or b""
        if status not in (200, 207):
            refusal = SyncRefused(status, content)
            raise self._sync_refused(refusal, token) from refusal
        try:
            return parse_sync_page(content, self._path)
        except Unreadable as exc:
            # An answer that is no multistatus (e.g. an HTML page). The ETag listing either
            # works, then it is the safer way to poll this server, or raises the real problem.
            log.warning("%s: unreadable sync-collection answer: %s", self.url, exc)
            raise SyncUnusable from exc

    def _report(self, body: bytes) -> Any:
        """The REPORT through the client's session (its login, timeout and certificates)."""
        client = self._client
        headers: dict[Any, Any] = {**client.headers, **SYNC_HEADERS}

        # A kept-alive connection from the pool that the server closed meanwhile is noticed
        # by urllib3 before it is used (tested with a server restart): no retry needed here.
        return client.session.request(
            "REPORT",
            self.url,
            data=body,
            headers=headers,
            auth=client.auth,
            timeout=client.timeout,
            verify=client.ssl_verify_cert,
            cert=client.ssl_cert,
        )

    def _sync_refused(self, refusal: SyncRefused, token: Cursor | None) -> Exception:
        """CursorExpired for a rejected token, SyncUnusable when the server cannot sync, else
        the translated error."""
        status = refusal.status
        # Radicale answers a bad token with 403, Xandikos 412, others 409; not all of them
        # name the precondition. (Without a token there is nothing to expire.)
        if token is not None and (
            VALID_SYNC_TOKEN in refusal.preconditions or status in (403, 409, 412)
        ):
            return CursorExpired(
                f"The CalDAV server at {self.url} no longer accepts calsync's sync token; "
                "calsync will re-read the whole calendar.",
                url=self.url,
            )
        if status in (401, 404) or (status >= 500 and status != 501):
            return self._boundary.status_error(status, "asking for changes", self.url)
        # 400/403/405/501... A 403 may also mean missing rights: the ETag listing that follows
        # raises AuthFailed in that case.
        return SyncUnusable()

    def _listing_delta(self, known: Mapping[Href, ETag], arrived: Arrived = None) -> Delta:
        """A full delta from an ETag listing (PROPFIND Depth 1), for servers without sync."""
        reply = self._propfind(self.url, PROPFIND_ETAGS, 1, "listing the calendar's events")
        listed: dict[Href, ETag | None] = {}
        for result in reply:
            href = href_of(result.href)
            types = result.properties.get("{DAV:}resourcetype") or []
            if href == self._path or href.endswith("/") or "{DAV:}collection" in types:
                continue
            listed[href] = result.properties.get("{DAV:}getetag")
        wanted = [h for h, etag in listed.items() if etag is None or known.get(h) != etag]
        items, gone = self._multiget(wanted, arrived)
        removed = [h for h in known if h not in listed or h in gone]
        upserted = [item for item in items if known.get(item.href) != item.etag]
        return Delta(upserted=upserted, removed=removed, cursor=None, full=True)

    def _multiget(
        self, hrefs: list[Href], arrived: Arrived = None
    ) -> tuple[list[CalendarItem], list[Href]]:
        """Data and ETags of ``hrefs`` in calendar-multiget REPORTs; also the hrefs now gone.
        With ``arrived``, each REPORT's items are handed to it while the next REPORT is sent
        and answered on a helper thread (the server works while the caller does).

        Built here rather than with ``Calendar.multiget``: caldav 3.6 fails with a TypeError
        when one href of the batch was deleted meanwhile (a 404 inside the 207).
        """
        size = MULTIGET_BATCH if arrived is None else ARRIVING_BATCH
        batches = [hrefs[start : start + size] for start in range(0, len(hrefs), size)]
        items: list[CalendarItem] = []
        gone: list[Href] = []
        doing = "reading changed events (calendar-multiget)"
        with ThreadPoolExecutor(1, thread_name_prefix="multiget") as helper:
            pending: Future[list[Any]] | None = None
            for number, batch in enumerate(batches):
                with self._boundary(doing):
                    if pending is None:
                        results = self._multiget_report(batch, doing)
                    else:
                        results = pending.result()
                pending = None
                batch_items: list[CalendarItem] = []
                returned = set()
                for result in results:
                    href = href_of(result.href)
                    returned.add(href)
                    if result.status == 404 or result.calendar_data is None:
                        gone.append(href)
                    elif result.etag is None:
                        batch_items.append(self.get(href))  # a server without getetag in REPORTs
                    else:
                        batch_items.append(CalendarItem(href, result.etag, result.calendar_data))
                gone += [h for h in batch if h not in returned]
                items += batch_items
                if arrived is not None:
                    # Only now: this thread's own requests (the GETs above) are done.
                    if number + 1 < len(batches):
                        pending = helper.submit(self._multiget_report, batches[number + 1], doing)
                    arrived(batch_items)
        return items, gone

    def _multiget_report(self, batch: list[Href], doing: str) -> list[Any]:
        """One calendar-multiget REPORT, read (caldav's CalendarQueryResult each)."""
        body = (
            f'{XML_HEAD}<C:calendar-multiget xmlns:D="DAV:" xmlns:C="{CALDAV}">'
            "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
            + "".join(f"<D:href>{escape(h)}</D:href>" for h in batch)
            + "</C:calendar-multiget>"
        )
        # No Depth header: RFC 4791 section 7.9 says not to send one with multiget.
        response = self._client.report(self.url, body, depth=None)
        if response.status != 207:
            raise self._boundary.status_error(response.status, doing, self.url)
        return list(response.parse_calendar_query())

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
        if reply.status == 412 or set(reply.preconditions) & UID_CONFLICT:
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
        if set(reply.preconditions) & UID_CONFLICT:
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
            results = self._propfind(self.url, PROPFIND_TIMEZONE, 0, "reading the time zone")
            self._timezone = tzid(results[0].properties.get(TIMEZONE))
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
    ) -> Reply:
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
                return Reply(403, {}, text, exc.preconditions)
            text = response.raw
            preconditions = (
                dav_error.parse_preconditions(text) if response.status >= 400 and text else []
            )
            return Reply(response.status, response.headers, text, preconditions)

    def _propfind(self, url: str, body: str, depth: int, doing: str) -> list[Any]:
        return propfind_results(self._client, self._boundary, url, body, depth, doing)

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

    def _refuse_data(self, reply: Reply, doing: str, href: Href) -> None:
        if reply.status in (400, 415) or set(reply.preconditions) & BAD_DATA:
            raise ProviderError(
                f"The CalDAV server at {self.url} refused the event data while {doing} "
                f"(HTTP {reply.status}: {reply.text.strip()[:200]}).",
                url=self._abs(href),
            )

    def _fail(self, reply: Reply, doing: str, href: Href) -> NoReturn:
        raise self._boundary.status_error(reply.status, doing, self._abs(href))
