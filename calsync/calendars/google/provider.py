"""The Google Calendar provider: one Google calendar, through ``google-api-python-client``.

Items follow the CalDAV model so the rest of calsync cannot tell the difference: one item is
a *group*, a master event plus its exceptions (moved/edited/cancelled instances of a series),
keyed by the master's event id and rendered as one VCALENDAR by ``google_ics``. Events are
listed with ``singleEvents=false`` (no horizon needed, and the same expansion in
``busy.busy_intervals`` as for CalDAV). A group's etag is the master's Google etag while it
has no exceptions (what calsync writes), otherwise a digest of all its members' etags.

Sync: a full listing pages through ``events.list`` and keeps ``nextSyncToken`` of the last
page; an incremental poll follows ``pageToken`` with the same ``syncToken`` and never combines
it with a filter. Google answers 410 for an expired token: ``CursorExpired``. When an instance
of a series changes, its group is re-read (``events.get`` of the master plus ``events.list``
by ``iCalUID``).

Writes: ``events.insert`` with ``iCalUID``; ``events.patch``/``events.delete`` carry
``If-Match`` set by hand on the request; every write says ``sendUpdates="none"`` because
calsync sends the invites itself. Rate limits (403 rateLimitExceeded/userRateLimitExceeded,
429) and 5xx are retried with exponential backoff and jitter; ``quotaExceeded`` and other
4xx are not. Every googleapiclient, httplib2 and google.auth exception is translated into
the ``ProviderError`` tree here, with the original chained.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import google.auth.exceptions
import google_auth_httplib2
import httplib2
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from googleapiclient.http import HttpRequest

from calsync.calendars.base import (
    UID,
    CalendarItem,
    CalendarProvider,
    Cursor,
    Delta,
    ETag,
    Href,
    Interval,
)
from calsync.calendars.errors import (
    AuthFailed,
    Conflict,
    CursorExpired,
    GrantRevoked,
    NotFound,
    ProviderError,
    Unavailable,
    network_reason,
)
from calsync.calendars.google.ics import BOOKING_KEY, Event, group_to_ics, ics_to_event

log = logging.getLogger(__name__)

PAGE_SIZE = 250
FREEBUSY_MAX_CALENDARS = 50
FREEBUSY_MAX_WINDOW = timedelta(days=90)
RATE_LIMIT_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
# The fields calsync changes on an event it wrote (DESIGN.md §5.3): everything else is the
# owner's and stays as it is.
PATCHED_FIELDS = (
    "start",
    "end",
    "summary",
    "description",
    "status",
    "transparency",
    "sequence",
    "extendedProperties",
)
RECONNECT = (
    "Google refused calsync's access to the calendar; reconnect it: run "
    "`calsync calendar add --google` again"
)
# Private extended property that says "calsync marked this event cancelled" (see ``update``).
MARKED_CANCELLED_KEY = "calsyncStatus"
MARKED_CANCELLED = "cancelled"


def reasons_of(exc: HttpError) -> list[str]:
    """The ``reason`` values of a Google error answer (e.g. ``fullSyncRequired``)."""
    try:
        data = json.loads(exc.content.decode("utf-8"))
        return [e.get("reason", "") for e in data["error"].get("errors", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        return []


class Caller:
    """Executes requests with bounded retries and translates every error at the boundary.

    ``max_tries`` counts attempts (1 = no retry); the n-th retry waits about
    ``backoff_base * 2**n`` seconds, jittered by ±50 %, capped at ``backoff_max``.
    """

    def __init__(
        self,
        label: str,
        *,
        max_tries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.label = label
        self.max_tries = max(1, max_tries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.sleep = sleep

    def __call__(self, request: HttpRequest, what: str, *, if_match: ETag | None = None) -> Any:
        """Execute ``request`` ("what" names it in messages). Raises only ProviderError."""
        if if_match is not None:
            request.headers["If-Match"] = if_match
        for attempt in range(self.max_tries):
            last = attempt == self.max_tries - 1
            try:
                return request.execute(num_retries=0)
            except HttpError as exc:
                error = self._translate(exc, what)
                if error is None and not last:
                    self._wait(attempt, f"{what}: HTTP {exc.status_code}")
                    continue
                raise (error or self._exhausted(exc, what)) from exc
            except google.auth.exceptions.RefreshError as exc:
                raise _refresh_failed(exc, self.label) from exc
            except (google.auth.exceptions.TransportError, httplib2.HttpLib2Error, OSError) as exc:
                if not last:
                    self._wait(attempt, f"{what}: {exc}")
                    continue
                raise Unavailable(
                    f"Google Calendar unreachable ({what}): {network_reason(exc)}", url=self.label
                ) from exc
            except google.auth.exceptions.GoogleAuthError as exc:
                raise AuthFailed(f"{RECONNECT}: {exc}", url=self.label) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, why: str) -> None:
        delay = min(self.backoff_max, self.backoff_base * 2**attempt)
        delay *= random.uniform(0.5, 1.5)
        log.info("Retrying Google request in %.2fs (%s)", delay, why)
        self.sleep(delay)

    def _exhausted(self, exc: HttpError, what: str) -> ProviderError:
        status = exc.status_code
        if status >= 500:
            return Unavailable(f"Google Calendar failed ({what}): HTTP {status}", url=self.label)
        return Unavailable(
            f"Google Calendar rate limit still exceeded after {self.max_tries} tries ({what})",
            url=self.label,
        )

    def _translate(self, exc: HttpError, what: str) -> ProviderError | None:
        """The error to raise, or None when the request should be retried."""
        status, reasons = exc.status_code, reasons_of(exc)
        url = self.label
        if status == 429 or (status == 403 and RATE_LIMIT_REASONS & set(reasons)):
            return None
        if status >= 500:
            return None
        if status == 401:
            return AuthFailed(f"{RECONNECT} (HTTP 401 on {what})", url=url)
        if status == 403 and "quotaExceeded" in reasons:
            return ProviderError(
                f"Google Calendar quota exceeded ({what}): calsync must send fewer requests for "
                "this project; raise the quota in the Google Cloud console or poll less often",
                url=url,
            )
        if status == 410 and "fullSyncRequired" in reasons:
            return CursorExpired(f"Google sync token expired ({what})", url=url)
        if status in (404, 410):
            return NotFound(f"Google event not found ({what})", url=url)
        if status in (409, 412):
            return Conflict(f"Google event changed or exists ({what}): HTTP {status}", url=url)
        detail = exc.reason if hasattr(exc, "reason") else ""
        return ProviderError(
            f"Google Calendar refused {what}: HTTP {status} {', '.join(reasons)} {detail}".strip(),
            url=url,
        )


def _refresh_failed(exc: google.auth.exceptions.RefreshError, label: str) -> ProviderError:
    """What a failed access-token refresh means.

    google-auth has already retried the token endpoint's 5xx/"temporarily unavailable"
    answers (and marks them ``retryable``): not retried again here. ``invalid_grant`` is a
    grant the owner must renew; another answer (``invalid_client``: a changed client secret)
    is for the operator to fix, and not a reason to ask every owner to reconnect.
    """
    if getattr(exc, "retryable", False):
        return Unavailable(f"Google sign-in unavailable, try again later: {exc}", url=label)
    answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
    if answer.get("error") == "invalid_grant":
        return GrantRevoked(f"{RECONNECT}: {exc}", url=label)
    if not answer:  # no token endpoint answer: these credentials cannot be refreshed at all
        return AuthFailed(f"{RECONNECT}: {exc}", url=label)
    return AuthFailed(
        f"Google refused calsync's OAuth client ({exc}): check google.client_id and "
        "google.client_secret",
        url=label,
    )


def new_service(credentials: Any, *, api_endpoint: str | None = None, timeout: float = 30.0) -> Any:
    """A Calendar v3 service object, offline (static discovery, no discovery cache)."""
    http = google_auth_httplib2.AuthorizedHttp(credentials, http=httplib2.Http(timeout=timeout))
    options = {"api_endpoint": api_endpoint} if api_endpoint else None
    return build(
        "calendar",
        "v3",
        http=http,
        static_discovery=True,
        cache_discovery=False,
        client_options=options,
    )


class GoogleProvider(CalendarProvider):
    """One Google calendar, by id (``primary`` or an address).

    ``credentials`` is a google.auth credentials object (refreshed automatically when it has a
    refresh token). ``api_endpoint`` points the client elsewhere (tests, proxies); it must end in
    ``calendar/v3/``. ``quota_user`` is sent with every request (Google's per-user quota key).
    """

    def __init__(
        self,
        calendar_id: str,
        *,
        credentials: Any,
        api_endpoint: str | None = None,
        quota_user: str | None = None,
        timeout: float = 30.0,
        max_tries: int = 5,
        backoff_base: float = 0.5,
    ) -> None:
        self.calendar_id = calendar_id
        self.quota_user = quota_user
        self.call = Caller(f"google:{calendar_id}", max_tries=max_tries, backoff_base=backoff_base)
        try:
            self._service = new_service(credentials, api_endpoint=api_endpoint, timeout=timeout)
        except Exception as exc:  # discovery/build problems are configuration errors
            raise ProviderError(f"Cannot set up the Google client: {exc}") from exc
        self._events = self._service.events()

    @property
    def service(self) -> Any:
        return self._service

    def _q(self, **params: Any) -> dict[str, Any]:
        params["calendarId"] = self.calendar_id
        if self.quota_user:
            params["quotaUser"] = self.quota_user
        return params

    # -- reading ------------------------------------------------------------------------------

    def _pages(self, what: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every page of one events.list, each request with the same parameters."""
        page_token: str | None = None
        while True:
            extra = {"pageToken": page_token} if page_token else {}
            page = self.call(self._events.list(**self._q(**params, **extra)), what)
            yield page
            page_token = page.get("nextPageToken")
            if not page_token:
                return

    def changes(self, cursor: Cursor | None, known: Mapping[Href, ETag]) -> Delta:
        if cursor is None:
            return self._full(known)
        events: list[Event] = []
        next_cursor: str | None = None
        for page in self._pages(
            "incremental sync",
            syncToken=cursor,
            singleEvents=False,
            showDeleted=True,
            maxResults=PAGE_SIZE,
        ):
            events.extend(page.get("items", []))
            next_cursor = page.get("nextSyncToken") or next_cursor
        removed: list[Href] = []
        dirty: dict[Href, Event | None] = {}
        for event in events:
            key = event.get("recurringEventId") or event["id"]
            if key == event["id"] and event.get("status") == "cancelled":
                dirty[key] = None  # the event (or whole series) is gone
            elif key in dirty and dirty[key] is None:
                continue
            elif key == event["id"] and "recurrence" not in event:
                dirty[key] = event  # a single event: the delta holds all of it
            else:
                dirty[key] = {"id": key, "refetch": True}
        upserted: list[CalendarItem] = []
        for key, latest in dirty.items():
            item = None
            if latest is not None:
                item = self._group_item(key) if latest.get("refetch") else _item(latest, [])
            if item is None:
                if key in known:
                    removed.append(key)
            elif known.get(key) != item.etag:
                upserted.append(item)
        return Delta(upserted=upserted, removed=removed, cursor=next_cursor, full=False)

    def _full(self, known: Mapping[Href, ETag]) -> Delta:
        events: list[Event] = []
        cursor: str | None = None
        for page in self._pages(
            "full sync", singleEvents=False, showDeleted=False, maxResults=PAGE_SIZE
        ):
            events.extend(page.get("items", []))
            cursor = page.get("nextSyncToken") or cursor
        items = _groups(events)
        listed = {item.href for item in items}
        upserted = [i for i in items if known.get(i.href) != i.etag]
        removed = [href for href in known if href not in listed]
        return Delta(upserted=upserted, removed=removed, cursor=cursor, full=True)

    def _group_item(self, href: Href) -> CalendarItem | None:
        """The group keyed by ``href`` as it is now, or None when it is gone."""
        try:
            master = self.call(self._events.get(**self._q(eventId=href)), f"get {href}")
        except NotFound:
            return None
        if master.get("status") == "cancelled":
            return None
        exceptions: list[Event] = []
        if master.get("recurrence") and master.get("iCalUID"):
            for page in self._pages(
                f"instances of {href}",
                iCalUID=master["iCalUID"],
                singleEvents=False,
                showDeleted=False,
                maxResults=PAGE_SIZE,
            ):
                exceptions += [
                    e for e in page.get("items", []) if e.get("recurringEventId") == href
                ]
        return _item(master, exceptions)

    def get(self, href: Href) -> CalendarItem:
        item = self._group_item(href)
        if item is None:
            raise NotFound(f"Google event {href} is gone", url=href)
        return item

    # -- writing ------------------------------------------------------------------------------

    def create(self, uid: UID, data: str) -> CalendarItem:
        body = ics_to_event(data)
        body["iCalUID"] = uid
        request = self._events.insert(**self._q(body=body, sendUpdates="none"))
        try:
            return _item(self.call(request, f"create {uid}"), [])
        except Conflict:
            # A retried insert meets the event its first try made when only Google's answer
            # was lost (a timeout, a 5xx after saving): that event is ours, not a clash.
            ours = self._ours(uid, body)
            if ours is None:
                raise
            return _item(ours, [])

    def _ours(self, uid: UID, body: Event) -> Event | None:
        """The live event with ``uid`` carrying exactly the booking properties we sent."""
        mine = body.get("extendedProperties", {}).get("private", {})
        if BOOKING_KEY not in mine:  # only bookings are created; anything else is a clash
            return None
        for page in self._pages(f"find {uid}", iCalUID=uid, showDeleted=False):
            for event in page.get("items", []):
                theirs = event.get("extendedProperties", {}).get("private")
                if event.get("status") != "cancelled" and theirs == mine:
                    return dict(event)
        return None

    def _master_etag(self, href: Href, etag: ETag) -> ETag:
        """The Google etag to send for a group etag; raises Conflict/NotFound as a write would."""
        if not etag.startswith('"g-'):
            return etag
        current = self.get(href)
        if current.etag != etag:
            raise Conflict(f"Google event {href} changed", url=href)
        fresh: ETag = self.call(self._events.get(**self._q(eventId=href)), f"get {href}")["etag"]
        return fresh

    def update(self, href: Href, data: str, etag: ETag) -> ETag:
        full = ics_to_event(data)
        body = {k: full[k] for k in PATCHED_FIELDS if k in full}
        if body.get("status") == "cancelled":
            # Patching status "cancelled" onto a Google event deletes it (it comes back only as
            # a tombstone), but calsync's "mark" cancel mode keeps the event, marked and free.
            # So it stays confirmed on Google (summary prefix, transparent, higher sequence),
            # and a private property carries the mark; ``_item`` renders it as STATUS:CANCELLED
            # again, so calsync reads back what it wrote.
            body["status"] = "confirmed"
            private = body.setdefault("extendedProperties", {}).setdefault("private", {})
            private[MARKED_CANCELLED_KEY] = MARKED_CANCELLED
        if_match = self._master_etag(href, etag)
        request = self._events.patch(**self._q(eventId=href, body=body, sendUpdates="none"))
        event = self.call(request, f"update {href}", if_match=if_match)
        if etag.startswith('"g-'):
            return self.get(href).etag
        return str(event["etag"])

    def delete(self, href: Href, etag: ETag) -> None:
        if_match = self._master_etag(href, etag)
        request = self._events.delete(**self._q(eventId=href, sendUpdates="none"))
        self.call(request, f"delete {href}", if_match=if_match)

    # -- live free/busy -----------------------------------------------------------------------

    def busy(self, start: datetime, end: datetime) -> list[Interval]:
        """This calendar's busy intervals from Google's freebusy.query."""
        return self.busy_by_calendar(start, end, [self.calendar_id])[self.calendar_id]

    def busy_by_calendar(
        self, start: datetime, end: datetime, calendar_ids: Sequence[str]
    ) -> dict[str, list[Interval]]:
        """Busy intervals per calendar id, in as few freebusy.query requests as Google allows."""
        ids = list(calendar_ids)
        return freebusy(self._service, ids, start, end, call=self.call, quota_user=self.quota_user)

    def close(self) -> None:
        self._service.close()


def freebusy(
    service: Any,
    calendar_ids: Sequence[str],
    start: datetime,
    end: datetime,
    *,
    call: Caller | None = None,
    quota_user: str | None = None,
) -> dict[str, list[Interval]]:
    """Busy intervals per calendar id over ``[start, end)``, via ``freebusy.query``.

    Requests hold at most 50 calendars and 90 days each. Raises Unavailable naming the
    calendar when Google reports an error for one (its busy time is unknown, not free), and
    the usual ProviderError subclasses for failed requests. ValueError for a naive window.
    """
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("freebusy needs an aware start and end")
    call = call or Caller("google:freebusy")
    result: dict[str, list[Interval]] = {cid: [] for cid in calendar_ids}
    ids = list(dict.fromkeys(calendar_ids))
    for i in range(0, len(ids), FREEBUSY_MAX_CALENDARS):
        chunk = ids[i : i + FREEBUSY_MAX_CALENDARS]
        low = start
        while low < end:
            high = min(end, low + FREEBUSY_MAX_WINDOW)
            body = {
                "timeMin": _iso(low),
                "timeMax": _iso(high),
                "items": [{"id": cid} for cid in chunk],
            }
            extra = {"quotaUser": quota_user} if quota_user else {}
            answer = call(service.freebusy().query(body=body, **extra), "freebusy")
            for cid in chunk:
                result[cid] += _busy_of(answer, cid)
            low = high
    for spans in result.values():
        spans.sort(key=lambda s: (s.start, s.end))
    return result


def _busy_of(answer: Any, cid: str) -> list[Interval]:
    """One calendar's busy intervals in a freeBusy answer. Raises Unavailable when Google
    reports an error for it, or the answer cannot be read: unknown is not free."""
    try:
        entry = answer["calendars"].get(cid)
        errors = [] if entry is None else entry.get("errors") or []
        if entry is None or errors:
            why = ", ".join(str(e.get("reason", "?")) for e in errors) or "missing"
            raise Unavailable(f"Google free/busy unknown for calendar {cid}: {why}", url=cid)
        return [
            Interval(_parse(span["start"]), _parse(span["end"])) for span in entry.get("busy") or []
        ]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Unavailable(
            f"Google free/busy answer for calendar {cid} cannot be read ({exc!r})", url=cid
        ) from exc


def _groups(events: list[Event]) -> list[CalendarItem]:
    masters: dict[str, Event] = {}
    exceptions: dict[str, list[Event]] = {}
    for event in events:
        parent = event.get("recurringEventId")
        if parent:
            exceptions.setdefault(parent, []).append(event)
        elif event.get("status") != "cancelled":
            masters[event["id"]] = event
    items = [_item(m, exceptions.get(key, [])) for key, m in masters.items()]
    # An instance whose series is not on this calendar (an invitation to one occurrence)
    # is an item of its own.
    for key, orphans in exceptions.items():
        if key not in masters:
            items += [_item(e, []) for e in orphans if e.get("status") != "cancelled"]
    return items


def _item(master: Event, exceptions: list[Event]) -> CalendarItem:
    exceptions = sorted(exceptions, key=lambda e: json.dumps(e.get("originalStartTime", {})))
    etag = str(master["etag"])
    if exceptions:
        digest = hashlib.sha256(
            "\n".join([etag, *(f"{e['id']}={e['etag']}" for e in exceptions)]).encode()
        ).hexdigest()[:24]
        etag = f'"g-{digest}"'
    private = master.get("extendedProperties", {}).get("private", {})
    if (
        private.get(MARKED_CANCELLED_KEY) == MARKED_CANCELLED
        and master.get("status") != "cancelled"
    ):
        master = {**master, "status": "cancelled"}  # marked by calsync (see ``update``)
    return CalendarItem(href=master["id"], etag=etag, data=group_to_ics(master, exceptions))


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
