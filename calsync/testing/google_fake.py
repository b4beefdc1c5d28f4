"""A local fake of the Google Calendar v3 endpoints calsync uses, for tests and the demo.

``FakeGoogle`` runs a threaded ``http.server`` on a free loopback port; point the real client
at ``fake.endpoint`` (``client_options={"api_endpoint": ...}``). It keeps Google's documented
semantics where calsync depends on them:

- events.list: ``pageToken`` paging (keyset, so changes between pages lose nothing),
  ``nextSyncToken`` only on the last page, ``syncToken`` deltas with cancelled items as
  minimal bodies, 400 when syncToken is combined with a forbidden parameter, 410
  ``fullSyncRequired`` for an expired token (``expire_sync_tokens()``).
- showDeleted=false still lists cancelled instances of a live recurring series.
- etags change on every write; ``If-Match`` with a stale etag → 412; a deleted event → 410
  on writes and ``status: cancelled`` on get; an unknown id → 404.
- iCalUID is unique per calendar (409 ``duplicate``).
- Event and FreeBusyRequest bodies are validated against the discovery document that
  googleapiclient ships: an unknown property → 400, so the fake follows the real shapes.
- freeBusy.query: per-calendar ``notFound`` errors inside the response (the account's
  address is the primary calendar, as everywhere); more than 50 calendars or a window over
  90 days → 400 (limits calsync must split around). Busy time is Google's: recurring series
  expanded from their ``recurrence`` lines (RRULE/EXRULE/RDATE/EXDATE, with python-dateutil,
  not calsync's code) in the series' ``start.timeZone``, wall times kept across DST; an
  exception instance replaces its occurrence (cancelled: removes it); all-day events busy
  midnight to midnight in the calendar's ``time_zone``; cancelled, transparent and
  owner-declined (attendee ``self`` or with the calendar's address) events free; periods
  merged when they overlap or touch, clipped to the window, sorted, in UTC
  (``google_fake_busy``).
- ``inject(status, reason)`` queues faults answered to the next API requests; bearer tokens
  in ``revoked``, issued for a refresh token in ``revoked``, or never issued (other than
  ``static_tokens``) get 401; POST /token
  refreshes (counted in ``token_refreshes``), answering ``invalid_grant`` for a refresh token
  in ``revoked``, ``invalid_client`` for a client in ``refused_clients``, and 503
  ``temporarily_unavailable`` while ``token_outages`` lasts.
- Every method checks that the access token's scopes cover it (403 insufficientPermissions),
  as the discovery document lists them; a refresh may ask for fewer scopes, never more.
- calendarList.list/get and calendars.get: the account's calendars with ``accessRole``
  (``add_calendar``); the primary calendar's id is the account's address, as at Google.
- OAuth: ``/o/oauth2/auth`` is a consent screen that answers at once (``consent`` says
  whether the owner allows) by redirecting back with a one-time code; POST /token exchanges
  it (checking client, redirect URI and the PKCE verifier) for a new refresh token.
- ``owner_insert/owner_patch/owner_delete`` change events behind calsync's back.
- ``requests`` logs every API request (method, path, query, headers, body).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import googleapiclient

from calsync.testing.google_fake_busy import Event, busy_spans, merged, rfc3339

PREFIX = "/calendar/v3"
PAGE_SIZE = 250
SYNC_FORBIDDEN = (
    "iCalUID",
    "orderBy",
    "privateExtendedProperty",
    "q",
    "sharedExtendedProperty",
    "timeMin",
    "timeMax",
    "updatedMin",
)
STANDARD_PARAMS = {"alt", "fields", "key", "oauth_token", "prettyPrint", "quotaUser", "userIp"}
DISCOVERY = json.loads(
    (
        Path(googleapiclient.__file__).parent / "discovery_cache/documents/calendar.v3.json"
    ).read_text()
)


class ApiError(Exception):
    """An error answer: status, reason, message (Google's JSON error shape)."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(message or reason)
        self.status = status
        self.reason = reason
        self.message = message or reason
        self.after = False  # an injected fault answered after the request was carried out

    def body(self) -> dict[str, Any]:
        err = {"domain": "global", "reason": self.reason, "message": self.message}
        return {"error": {"code": self.status, "message": self.message, "errors": [err]}}


def validate(value: Any, schema: dict[str, Any], where: str) -> None:
    """Check ``value`` against a discovery schema; unknown properties raise ApiError 400."""
    if "$ref" in schema:
        schema = DISCOVERY["schemas"][schema["$ref"]]
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            raise ApiError(400, "invalid", f"Invalid value for {where}: expected an object")
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if props is not None and key in props:
                validate(item, props[key], f"{where}.{key}")
            elif extra is not None:
                validate(item, extra, f"{where}.{key}")
            else:
                raise ApiError(400, "invalid", f"Invalid JSON payload: unknown name {where}.{key}")
    elif kind == "array":
        if not isinstance(value, list):
            raise ApiError(400, "invalid", f"Invalid value for {where}: expected a list")
        for i, item in enumerate(value):
            validate(item, schema["items"], f"{where}[{i}]")
    elif kind == "string" and not isinstance(value, str):
        raise ApiError(400, "invalid", f"Invalid value for {where}: expected a string")
    elif kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        raise ApiError(400, "invalid", f"Invalid value for {where}: expected an integer")
    elif kind == "boolean" and not isinstance(value, bool):
        raise ApiError(400, "invalid", f"Invalid value for {where}: expected a boolean")


@dataclass
class _Stored:
    event: Event
    changed: int  # change sequence number of the last write
    order: int  # creation order, the listing key


@dataclass
class _Calendar:
    summary: str = "Calendar"
    time_zone: str = "UTC"
    access_role: str = "owner"  # owner, writer, reader or freeBusyReader
    events: dict[str, _Stored] = field(default_factory=dict)


@dataclass
class _Grant:
    """An authorization code handed out by the consent screen, until it is exchanged."""

    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None


@dataclass
class LoggedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class FakeGoogle:
    """The fake server. Use as a context manager, or call ``start()``/``stop()``."""

    def __init__(self, calendars: tuple[str, ...] = ("primary",), page_size: int = PAGE_SIZE):
        self.page_size = page_size
        self.account = (
            "owner@example.org"  # the signed-in Google account; "primary" is its calendar
        )
        self.calendars: dict[str, _Calendar] = {c: _Calendar(summary=c) for c in calendars}
        if "primary" in self.calendars:
            self.calendars["primary"].summary = self.account
        self.requests: list[LoggedRequest] = []
        self.revoked: set[str] = set()
        self.faults: list[ApiError] = []
        self._lock = threading.RLock()
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._epoch = uuid.uuid4().hex[:8]
        self._instance = uuid.uuid4().hex[:8]
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._token_counter = itertools.count(1)
        self._codes: dict[str, _Grant] = {}
        # How many of the next refreshes the token endpoint answers 503 (Google's sign-in down).
        self.token_outages = 0
        self.token_refreshes = 0  # access tokens handed out for refresh tokens
        self.refused_clients: set[str] = set()  # OAuth clients whose secret no longer works
        self.withheld_scopes: set[str] = set()  # permissions the owner unticks at consent
        # freeBusy answers these calendars with this error inside the response (as Google
        # does for, e.g., "backendError"), while the request itself succeeds.
        self.freebusy_errors: dict[str, str] = {}
        # Bearer tokens accepted without coming from /token (what tests give the client).
        self.static_tokens: set[str] = {"t", "test-token"}
        self._granted: dict[str, str] = {}  # access token → the refresh token it came from
        # The scopes of refresh and access tokens (None or absent: any scope).
        self._refresh_scopes: dict[str, frozenset[str]] = {}
        self._token_scopes: dict[str, frozenset[str] | None] = {}
        self._request_scopes: frozenset[str] | None = None  # of the request being answered
        # The consent screen's answer: True allows, False is the owner pressing "Cancel".
        self.consent = True
        # Called with the request before a page after the first is served (tests use it to
        # change events between pages).
        self.before_page: Any = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    @property
    def endpoint(self) -> str:
        """The ``api_endpoint`` for the client (it must include ``calendar/v3/``)."""
        return f"{self.base_url}{PREFIX}/"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # -- test switches ------------------------------------------------------------------------

    def inject(self, status: int, reason: str, count: int = 1, *, after: bool = False) -> None:
        """Answer the next ``count`` API requests with this error; with ``after``, each request
        is carried out first and only its answer is lost (a timeout after Google saved it)."""
        with self._lock:
            for _ in range(count):
                fault = ApiError(status, reason, f"Injected {reason}")
                fault.after = after
                self.faults.append(fault)

    def expire_sync_tokens(self) -> None:
        """Make every sync and page token issued so far answer 410 fullSyncRequired."""
        with self._lock:
            self._epoch = uuid.uuid4().hex[:8]

    def add_calendar(
        self,
        calendar_id: str,
        *,
        summary: str | None = None,
        time_zone: str = "UTC",
        access_role: str = "owner",
    ) -> None:
        """Add a calendar to the account's calendar list (``accessRole`` as Google names it)."""
        with self._lock:
            self.calendars.setdefault(
                calendar_id,
                _Calendar(
                    summary=summary or calendar_id, time_zone=time_zone, access_role=access_role
                ),
            )

    @property
    def auth_uri(self) -> str:
        """The consent screen (``google.auth_uri``); it consents at once, as ``consent`` says."""
        return f"{self.base_url}/o/oauth2/auth"

    def writes(self) -> list[LoggedRequest]:
        """Logged requests that change events."""
        return [
            r
            for r in self.requests
            if r.method in ("POST", "PATCH", "PUT", "DELETE") and "/events" in r.path
        ]

    # -- owner side (behind calsync's back) ---------------------------------------------------

    def owner_insert(self, body: Event, calendar_id: str = "primary") -> Event:
        with self._lock:
            return copy.deepcopy(self._insert(calendar_id, copy.deepcopy(body)))

    def owner_patch(self, event_id: str, body: Event, calendar_id: str = "primary") -> Event:
        with self._lock:
            return copy.deepcopy(self._patch(calendar_id, event_id, copy.deepcopy(body), None))

    def owner_delete(self, event_id: str, calendar_id: str = "primary") -> None:
        with self._lock:
            self._delete(calendar_id, event_id, None)

    def event(self, event_id: str, calendar_id: str = "primary") -> Event:
        with self._lock:
            return copy.deepcopy(self._stored(calendar_id, event_id).event)

    # -- the model ----------------------------------------------------------------------------

    def _calendar(self, calendar_id: str) -> _Calendar:
        if calendar_id == self.account:  # the primary calendar's id is the account's address
            calendar_id = "primary"
        if calendar_id not in self.calendars:
            raise ApiError(404, "notFound", "Not Found")
        return self.calendars[calendar_id]

    def _stored(self, calendar_id: str, event_id: str) -> _Stored:
        stored = self._calendar(calendar_id).events.get(event_id)
        if stored is None:
            raise ApiError(404, "notFound", "Not Found")
        return stored

    def _touch(self, stored: _Stored) -> None:
        stored.changed = self._last_seq = next(self._seq)
        stored.event["etag"] = f'"{stored.changed}{uuid.uuid4().int % 10**6:06d}"'
        stored.event["updated"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")

    def _insert(self, calendar_id: str, body: Event) -> Event:
        cal = self._calendar(calendar_id)
        master = cal.events.get(str(body.get("recurringEventId")))
        if master is not None:
            # Google keeps (and lists) an exception instance as a whole event: what it does
            # not override comes from its series (summary, transparency, attendees, …).
            for key, value in master.event.items():
                if key not in body and key not in _SERIES_ONLY:
                    body[key] = copy.deepcopy(value)
        event_id = body.get("id") or uuid.uuid4().hex
        body.setdefault("iCalUID", f"{event_id}@google.com")
        for stored in cal.events.values():
            ev = stored.event
            if ev["id"] == event_id or (
                ev.get("iCalUID") == body["iCalUID"]
                and ev.get("status") != "cancelled"
                and "recurringEventId" not in ev
                and "recurringEventId" not in body
            ):
                raise ApiError(409, "duplicate", "The requested identifier already exists.")
        for key in ("start", "end"):
            if key not in body and "recurringEventId" not in body:
                raise ApiError(400, "required", f"Missing {key} time.")
        body["id"] = event_id
        body.setdefault("status", "confirmed")
        body["kind"] = "calendar#event"
        body["created"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        stored = _Stored(body, 0, len(cal.events))
        cal.events[event_id] = stored
        self._touch(stored)
        return body

    def _check_write(self, stored: _Stored, if_match: str | None) -> None:
        if stored.event.get("status") == "cancelled":
            raise ApiError(410, "deleted", "Resource has been deleted")
        if if_match is not None and if_match != stored.event["etag"]:
            raise ApiError(412, "conditionNotMet", "Precondition Failed")

    def _patch(self, calendar_id: str, event_id: str, body: Event, if_match: str | None) -> Event:
        stored = self._stored(calendar_id, event_id)
        self._check_write(stored, if_match)
        _merge(stored.event, body)
        if stored.event.get("status") == "cancelled":
            self._cancel(calendar_id, stored)
        else:
            self._touch(stored)
        return stored.event

    def _delete(self, calendar_id: str, event_id: str, if_match: str | None) -> None:
        stored = self._stored(calendar_id, event_id)
        self._check_write(stored, if_match)
        self._cancel(calendar_id, stored)

    def _cancel(self, calendar_id: str, stored: _Stored) -> None:
        stored.event["status"] = "cancelled"
        self._touch(stored)
        if "recurrence" in stored.event:  # deleting a series deletes its exceptions
            for other in self._calendar(calendar_id).events.values():
                if other.event.get("recurringEventId") == stored.event["id"]:
                    if other.event.get("status") != "cancelled":
                        other.event["status"] = "cancelled"
                    self._touch(other)

    def _visible(self, cal: _Calendar, event: Event, show_deleted: bool) -> bool:
        if event.get("status") != "cancelled" or show_deleted:
            return True
        master = cal.events.get(event.get("recurringEventId", ""))
        return master is not None and master.event.get("status") != "cancelled"

    # -- events.list --------------------------------------------------------------------------

    def _token(self, kind: str, **values: Any) -> str:
        raw = json.dumps({"k": kind, "e": self._epoch, **values}).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def _untoken(self, token: str, kind: str) -> dict[str, Any]:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            values: dict[str, Any] = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, "invalid", f"Invalid {kind}") from exc
        if values.get("k") != kind:
            raise ApiError(400, "invalid", f"Invalid {kind}")
        if values.get("e") != self._epoch:
            raise ApiError(
                410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."
            )
        return values

    def _list(self, calendar_id: str, query: dict[str, str]) -> dict[str, Any]:
        cal = self._calendar(calendar_id)
        if "syncToken" in query:
            bad = [p for p in SYNC_FORBIDDEN if p in query]
            if bad:
                raise ApiError(400, "invalid", f"syncToken cannot be combined with {bad}")
        if query.get("singleEvents", "false") == "true":
            raise ApiError(400, "invalid", "The fake does not expand singleEvents")
        max_results = min(int(query.get("maxResults", self.page_size)), 2500, self.page_size)
        show_deleted = query.get("showDeleted", "false") == "true"
        if "pageToken" in query:
            if self.before_page is not None:
                hook, self.before_page = self.before_page, None
                hook()
            page = self._untoken(query["pageToken"], "page")
            since, snapshot, after = page["since"], page["snapshot"], page["after"]
        elif "syncToken" in query:
            since = self._untoken(query["syncToken"], "sync")["seq"]
            snapshot, after = self._last_seq, -1
        else:
            since, snapshot, after = None, self._last_seq, -1
        if since is None:  # full listing in creation order
            rows = sorted(cal.events.values(), key=lambda s: s.order)
            rows = [s for s in rows if self._visible(cal, s.event, show_deleted)]
            if "iCalUID" in query:
                rows = [s for s in rows if s.event.get("iCalUID") == query["iCalUID"]]
            rows = [s for s in rows if s.order > after]
            key = "order"
        else:  # delta in change order; deleted items included (minimal bodies)
            rows = sorted(
                (s for s in cal.events.values() if s.changed > since), key=lambda s: s.changed
            )
            rows = [s for s in rows if s.changed > after]
            key = "changed"
        page_rows = rows[:max_results]
        items = [_body(s.event, minimal=since is not None) for s in page_rows]
        answer: dict[str, Any] = {"kind": "calendar#events", "items": items}
        if len(rows) > max_results:
            answer["nextPageToken"] = self._token(
                "page", since=since, snapshot=snapshot, after=getattr(page_rows[-1], key)
            )
        else:
            answer["nextSyncToken"] = self._token("sync", seq=snapshot)
        return answer

    # -- the calendar list --------------------------------------------------------------------

    def _list_entry(self, calendar_id: str) -> dict[str, Any]:
        cal = self._calendar(calendar_id)
        primary = calendar_id in ("primary", self.account)
        entry: dict[str, Any] = {
            "kind": "calendar#calendarListEntry",
            "etag": f'"{abs(hash((calendar_id, cal.summary))) % 10**12}"',
            "id": self.account if primary else calendar_id,
            "summary": cal.summary,
            "timeZone": cal.time_zone,
            "accessRole": cal.access_role,
        }
        if primary:
            entry["primary"] = True
        return entry

    def _calendar_list(self, query: dict[str, str]) -> dict[str, Any]:
        rank = ["freeBusyReader", "reader", "writer", "owner"]
        least = rank.index(query.get("minAccessRole", "freeBusyReader"))
        entries = [
            self._list_entry(cid)
            for cid, cal in self.calendars.items()
            if rank.index(cal.access_role) >= least
        ]
        size = int(query.get("maxResults") or 100)
        start = int(query["pageToken"]) if query.get("pageToken") else 0
        page: dict[str, Any] = {
            "kind": "calendar#calendarList",
            "etag": '"list"',
            "items": entries[start : start + size],
        }
        if start + size < len(entries):
            page["nextPageToken"] = str(start + size)
        return page

    # -- OAuth: the consent screen and the token endpoint -------------------------------------

    def _consent(self, query: dict[str, str]) -> str:
        """Where the consent screen sends the browser: back to ``redirect_uri`` with a code."""
        redirect = query.get("redirect_uri", "")
        if not redirect or query.get("response_type") != "code" or not query.get("client_id"):
            raise ApiError(400, "invalid_request", "Missing redirect_uri, client_id or code")
        answer = {"state": query.get("state", "")}
        if self.consent:
            code = f"code-{uuid.uuid4().hex}"
            self._codes[code] = _Grant(
                client_id=query["client_id"],
                redirect_uri=redirect,
                scope=query.get("scope", ""),
                code_challenge=query.get("code_challenge"),
            )
            answer.update(code=code, scope=query.get("scope", ""))
        else:
            answer["error"] = "access_denied"
        return f"{redirect}{'&' if '?' in redirect else '?'}{urlencode(answer)}"

    def _exchange(self, form: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        """grant_type=authorization_code: a code is good once, for its client and redirect.
        The client may authenticate in the form or with HTTP Basic (RFC 6749 §2.3.1)."""
        grant = self._codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier")
        if (
            grant is None
            or grant.client_id != (form.get("client_id") or _basic_user(headers))
            or grant.redirect_uri != form.get("redirect_uri")
            or (grant.code_challenge is not None and _challenge(verifier) != grant.code_challenge)
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
        number = next(self._token_counter)
        access = f"access-{self._instance}-{number}"
        granted = [s for s in grant.scope.split() if s not in self.withheld_scopes]
        self._granted[access] = f"refresh-granted-{number}"
        self._refresh_scopes[f"refresh-granted-{number}"] = frozenset(granted)
        self._token_scopes[access] = frozenset(granted)
        return 200, {
            "access_token": access,
            "refresh_token": f"refresh-granted-{number}",
            "expires_in": 3599,
            "scope": " ".join(granted),
            "token_type": "Bearer",
        }

    # -- freeBusy -----------------------------------------------------------------------------

    def _freebusy(self, body: dict[str, Any]) -> dict[str, Any]:
        items = body.get("items", [])
        if len(items) > 50:
            raise ApiError(400, "tooManyCalendarsRequested", "Too many calendars requested")
        start, end = rfc3339(body["timeMin"]), rfc3339(body["timeMax"])
        if end - start > timedelta(days=90):
            raise ApiError(400, "timeRangeTooLong", "The requested time range is too long.")
        calendars: dict[str, Any] = {}
        for item in items:
            cid = item["id"]  # the answer is keyed by the id as asked
            try:
                cal = self._calendar(cid)
                reason = self.freebusy_errors.get(cid)
            except ApiError:
                reason = "notFound"
            if reason is not None:
                calendars[cid] = {"busy": [], "errors": [{"domain": "global", "reason": reason}]}
                continue
            own = self.account if cid in ("primary", self.account) else cid
            events = [s.event for s in sorted(cal.events.values(), key=lambda s: s.order)]
            try:
                found = busy_spans(events, cal.time_zone, own, start, end)
            except ValueError as exc:  # a recurrence Google would have refused on insert
                raise ApiError(400, "invalid", str(exc)) from exc
            spans = merged((max(s, start), min(e, end)) for s, e in found if s < end and e > start)
            calendars[cid] = {"busy": [{"start": _iso(s), "end": _iso(e)} for s, e in spans]}
        return {
            "kind": "calendar#freeBusy",
            "timeMin": body["timeMin"],
            "timeMax": body["timeMax"],
            "calendars": calendars,
        }

    # -- dispatch -----------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        with self._lock:
            if path == "/token":
                if (body or {}).get("grant_type") == "authorization_code":
                    return self._exchange(body, headers)
                return self._refresh(body)
            if path == "/o/oauth2/auth":
                return 302, Redirect(self._consent(query))
            self.requests.append(LoggedRequest(method, path, query, headers, body))
            auth = headers.get("authorization", "")
            bearer = auth[7:] if auth.startswith("Bearer ") else ""
            known = bearer in self.static_tokens or bearer in self._granted
            # Revoking a grant at Google ends the access tokens issued from it as well.
            if not known or bearer in self.revoked or self._granted.get(bearer) in self.revoked:
                raise ApiError(401, "authError", "Invalid Credentials")
            self._request_scopes = self._token_scopes.get(bearer)
            fault = self.faults.pop(0) if self.faults else None
            if fault is not None and not fault.after:
                raise fault
            answer = self._answer(method, path, query, headers, body)
            if fault is not None:  # carried out, but the answer is lost
                raise fault
            return answer

    def _answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any]:
        if not path.startswith(PREFIX + "/"):
            raise ApiError(404, "notFound", "Not Found")
        parts = [unquote(p) for p in path[len(PREFIX) + 1 :].split("/")]
        if parts == ["users", "me", "calendarList"] and method == "GET":
            self._check_query(query, "calendarList", "list")
            return 200, self._calendar_list(query)
        if parts[:3] == ["users", "me", "calendarList"] and len(parts) == 4 and method == "GET":
            self._check_query(query, "calendarList", "get")
            return 200, self._list_entry(parts[3])
        if len(parts) == 2 and parts[0] == "calendars" and method == "GET":
            self._check_query(query, "calendars", "get")
            entry = self._list_entry(parts[1])
            keep = ("etag", "id", "summary", "timeZone")
            return 200, {"kind": "calendar#calendar", **{k: entry[k] for k in keep}}
        if parts == ["freeBusy"] and method == "POST":
            self._check_query(query, "freebusy", "query")
            validate(body, {"$ref": "FreeBusyRequest"}, "body")
            return 200, self._freebusy(body)
        if len(parts) < 3 or parts[0] != "calendars" or parts[2] != "events":
            raise ApiError(404, "notFound", "Not Found")
        cid = parts[1]
        rest = parts[3:]
        if_match = headers.get("if-match")
        if not rest and method == "GET":
            self._check_query(query, "events", "list")
            return 200, self._list(cid, query)
        if not rest and method == "POST":
            self._check_query(query, "events", "insert")
            validate(body, {"$ref": "Event"}, "body")
            return 200, _body(self._insert(cid, copy.deepcopy(body)))
        if rest == ["import"] and method == "POST":
            self._check_query(query, "events", "import")
            validate(body, {"$ref": "Event"}, "body")
            if "iCalUID" not in body:
                raise ApiError(400, "required", "Missing iCalUID.")
            return 200, _body(self._insert(cid, copy.deepcopy(body)))
        if len(rest) == 1:
            eid = rest[0]
            if method == "GET":
                self._check_query(query, "events", "get")
                return 200, _body(self._stored(cid, eid).event)
            if method == "PATCH":
                self._check_query(query, "events", "patch")
                validate(body, {"$ref": "Event"}, "body")
                return 200, _body(self._patch(cid, eid, copy.deepcopy(body), if_match))
            if method == "DELETE":
                self._check_query(query, "events", "delete")
                self._delete(cid, eid, if_match)
                return 204, None
        raise ApiError(404, "notFound", "Not Found")

    def _check_query(self, query: dict[str, str], resource: str, method: str) -> None:
        """The method's parameters and the token's scopes, as the discovery document has them."""
        described = DISCOVERY["resources"][resource]["methods"][method]
        if self._request_scopes is not None and not self._request_scopes & set(described["scopes"]):
            raise ApiError(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )
        known = described.get("parameters", {})
        for name in query:
            if name not in known and name not in STANDARD_PARAMS:
                raise ApiError(400, "invalidParameter", f"Unknown parameter {name}")

    def _refresh(self, form: Any) -> tuple[int, Any]:
        if self.token_outages:
            self.token_outages -= 1
            return 503, {"error": "temporarily_unavailable", "error_description": "Try later."}
        client = (form or {}).get("client_id", "")
        if client in self.refused_clients:
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        refresh = (form or {}).get("refresh_token", "")
        if not refresh or refresh in self.revoked:
            return 400, {
                "error": "invalid_grant",
                "error_description": "Token has been expired or revoked.",
            }
        # An access token covers the scopes asked for, or all the grant has; never more.
        asked = frozenset((form or {}).get("scope", "").split())
        granted = self._refresh_scopes.get(refresh)  # None: a grant a test made up (any scope)
        if asked and granted is not None and not asked <= granted:
            return 400, {"error": "invalid_scope", "error_description": "Bad scope."}
        # Unique across fakes: a token kept from another test's fake is unknown here.
        token = f"access-{self._instance}-{next(self._token_counter)}"
        self._granted[token] = refresh
        self._token_scopes[token] = asked or granted
        self.token_refreshes += 1
        return 200, {"access_token": token, "expires_in": 3600, "token_type": "Bearer"}


# Fields of a series that its instances do not take over.
_SERIES_ONLY = frozenset({"id", "recurrence", "etag", "created", "updated", "kind", "status"})


@dataclass(frozen=True)
class Redirect:
    """A 302 answer to the browser."""

    location: str


def _basic_user(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if not auth.lower().startswith("basic "):
        return None
    decoded = base64.b64decode(auth[6:]).decode("utf-8", "replace")
    return unquote(decoded.partition(":")[0])


def _challenge(verifier: str | None) -> str:
    """PKCE S256: base64url(sha256(verifier)) without padding."""
    digest = hashlib.sha256((verifier or "").encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    """Patch semantics: objects merge, everything else (lists too) is replaced."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def _body(event: Event, *, minimal: bool = False) -> Event:
    if minimal and event.get("status") == "cancelled":
        keep = ("kind", "etag", "id", "status", "recurringEventId", "originalStartTime")
        return {k: copy.deepcopy(event[k]) for k in keep if k in event}
    return copy.deepcopy(event)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGoogle
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two sends: with Nagle's algorithm each answer would wait for
    # the client's delayed ACK (~40 ms on Linux), a stall Google's servers don't have.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        body: Any = None
        try:
            if url.path == "/token":
                body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            elif raw:
                try:
                    body = json.loads(raw)
                except ValueError as exc:
                    raise ApiError(400, "parseError", "Parse Error") from exc
            status, answer = self.fake.handle(self.command, url.path, query, headers, body)
        except ApiError as exc:
            status, answer = exc.status, exc.body()
        if isinstance(answer, Redirect):
            self.send_response(302)
            self.send_header("Location", answer.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json; charset=UTF-8")
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve
