"""The CalDAV provider against real Radicale and Xandikos servers on loopback.

The provider contract runs on both servers. The CalDAV-only tests cover discovery, the ETag
listing mode, request counts, objects the owner's own app named oddly, outages, and the
translation of every failure into the ProviderError tree.

Two faults no real server here produces on demand, a truncated (507) sync-collection reply and
a server without sync-collection, come from ``ScriptedCalDAV``: a fake, named as such.
"""

from __future__ import annotations

import http.server
import re
import socket
import threading
from collections.abc import Iterator
from typing import ClassVar
from urllib.parse import unquote

import pytest

from calsync.calendars.base import Cursor, Delta
from calsync.calendars.caldav import provider as caldav_provider
from calsync.calendars.caldav.discovery import discover_calendars
from calsync.calendars.caldav.provider import CalDAVProvider
from calsync.calendars.caldav.wire import ClientPool
from calsync.calendars.errors import (
    AuthFailed,
    Conflict,
    CursorExpired,
    NotACalendar,
    ProviderError,
    Unavailable,
)
from tests.support.provider_contract import ProviderContract, event_of, make_ics, uid
from tests.support.servers import PASSWORD, USER, ServerProcess, delete_event, free_port, put_event

BERLIN = """BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//calsync//tests//EN\r
BEGIN:VTIMEZONE\r
TZID:Europe/Berlin\r
BEGIN:STANDARD\r
DTSTART:19701025T030000\r
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r
TZOFFSETFROM:+0200\r
TZOFFSETTO:+0100\r
END:STANDARD\r
BEGIN:DAYLIGHT\r
DTSTART:19700329T020000\r
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r
TZOFFSETFROM:+0100\r
TZOFFSETTO:+0200\r
END:DAYLIGHT\r
END:VTIMEZONE\r
END:VCALENDAR\r
"""


@pytest.fixture
def provider_on(request: pytest.FixtureRequest) -> Iterator[type[CalDAVProvider]]:
    """Closes every provider a test made."""
    made: list[CalDAVProvider] = []

    class Tracked(CalDAVProvider):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for provider in made:
        provider.close()


class TestRadicale(ProviderContract):
    answers_busy = False

    @pytest.fixture
    def unreachable(self, provider_on: type[CalDAVProvider]) -> CalDAVProvider:
        return provider_on(f"http://127.0.0.1:{free_port()}/alice/cal/", timeout=5)

    @pytest.fixture
    def provider(self, radicale_calendar: str, provider_on: type[CalDAVProvider]) -> CalDAVProvider:
        return provider_on(radicale_calendar)

    def expire_cursor(self, provider: object, cursor: Cursor) -> Cursor:
        # Radicale's tokens are "http://radicale.org/ns/sync/<sha256>"; an unknown one is
        # what a token looks like after Radicale forgot it (max_sync_token_age).
        return "http://radicale.org/ns/sync/" + "0" * 64


class TestXandikos(ProviderContract):
    answers_busy = False

    @pytest.fixture
    def provider(self, xandikos_calendar: str, provider_on: type[CalDAVProvider]) -> CalDAVProvider:
        return provider_on(xandikos_calendar)

    def expire_cursor(self, provider: object, cursor: Cursor) -> Cursor:
        # Xandikos's tokens are git tree ids (40 hex digits), not integers.
        return "0" * 40


# -- discovery ------------------------------------------------------------------------------------


def test_discover_from_server_principal_and_calendar(caldav_server: ServerProcess) -> None:
    events = caldav_server.new_calendar(display_name="Bookings ✓", timezone_ics=BERLIN)
    tasks = caldav_server.new_calendar(components=("VTODO",))
    principal = caldav_server.url + f"{USER}/"
    # Radicale needs a login to say whose calendars to list; Xandikos has a fixed principal.
    for start in (caldav_server.url, principal):
        found = {c.url: c for c in discover_calendars(start, username=USER, password=PASSWORD)}
        assert events in found
        assert found[events].name == "Bookings ✓"
        assert found[events].timezone == "Europe/Berlin"
        assert tasks not in found
    (only,) = discover_calendars(events)
    assert (only.url, only.name) == (events, "Bookings ✓")
    with pytest.raises(NotACalendar, match="task list"):
        discover_calendars(tasks)


def test_timezone(caldav_server: ServerProcess) -> None:
    assert CalDAVProvider(caldav_server.new_calendar(timezone_ics=BERLIN)).timezone() == (
        "Europe/Berlin"
    )
    assert CalDAVProvider(caldav_server.new_calendar()).timezone() is None


# -- polling --------------------------------------------------------------------------------------


def test_request_counts(caldav_calendar: str) -> None:
    provider = CalDAVProvider(caldav_calendar)
    items = [provider.create(u, make_ics(u)) for u in (uid(), uid(), uid())]
    assert provider.request_count == 3  # one conditional PUT each

    before = provider.request_count
    first = provider.changes(None, {})
    assert provider.request_count - before == 2  # sync-collection + one multiget for all
    known = {i.href: i.etag for i in first.upserted}

    before = provider.request_count
    idle = provider.changes(first.cursor, known)
    assert (idle.upserted, idle.removed) == ([], [])
    assert provider.request_count - before == 1

    before = provider.request_count
    etag = provider.update(
        items[0].href, make_ics(event_of(items[0].data)["UID"], "x"), items[0].etag
    )
    assert provider.request_count - before == 1
    known[items[0].href] = etag

    put_event(caldav_calendar, make_ics(uid()))  # the owner adds one
    before = provider.request_count
    one = provider.changes(idle.cursor, known)
    assert len(one.upserted) == 1
    assert provider.request_count - before == 2


def test_etag_listing_matches_sync_collection(caldav_calendar: str) -> None:
    syncing = CalDAVProvider(caldav_calendar)
    listing = CalDAVProvider(caldav_calendar, use_sync_collection=False)
    a, b, c = (syncing.create(u, make_ics(u)) for u in (uid(), uid(), uid()))

    def same(left: Delta, right: Delta) -> None:
        assert {(i.href, i.etag, i.data) for i in left.upserted} == {
            (i.href, i.etag, i.data) for i in right.upserted
        }
        assert sorted(left.removed) == sorted(right.removed)

    first_sync, first_list = syncing.changes(None, {}), listing.changes(None, {})
    same(first_sync, first_list)
    assert first_list.cursor is None and first_list.full
    known = {i.href: i.etag for i in first_sync.upserted}

    syncing.update(b.href, make_ics(event_of(b.data)["UID"], "moved"), b.etag)
    syncing.delete(c.href, c.etag)
    put_event(caldav_calendar, make_ics(uid()))
    before = listing.request_count
    same(syncing.changes(first_sync.cursor, known), listing.changes(first_list.cursor, known))
    assert listing.request_count - before == 2  # PROPFIND + multiget of the two changed
    assert not listing.uses_sync_collection
    assert a.href in known


def test_objects_named_by_the_owners_app(caldav_calendar: str) -> None:
    """Hrefs come back in one form, whatever the server's spelling, and work for writes."""
    provider = CalDAVProvider(caldav_calendar)
    odd = "meeting@example.com with spaces+plus"
    written = put_event(caldav_calendar, make_ics(odd, "by the owner"))
    first = provider.changes(None, {})
    (item,) = first.upserted
    assert item.href == written.href  # the path as the owner's app wrote it
    assert provider.get(item.href).etag == item.etag
    etag = provider.update(item.href, make_ics(odd, "moved by calsync"), item.etag)
    provider.delete(item.href, etag)
    gone = provider.changes(first.cursor, {item.href: etag})
    assert (gone.upserted, gone.removed) == ([], [item.href])


def test_owner_edit_makes_calsync_write_conflict(caldav_calendar: str) -> None:
    provider = CalDAVProvider(caldav_calendar)
    item = provider.create(u := uid(), make_ics(u, "booked"))
    put_event(caldav_calendar + item.href.rsplit("/", 1)[1], make_ics(u, "owner's edit"))
    with pytest.raises(Conflict):
        provider.update(item.href, make_ics(u, "calsync's move"), item.etag)
    with pytest.raises(Conflict):
        provider.delete(item.href, item.etag)


def test_owner_delete_shows_as_removed(caldav_calendar: str) -> None:
    provider = CalDAVProvider(caldav_calendar)
    item = provider.create(u := uid(), make_ics(u))
    first = provider.changes(None, {})
    delete_event(caldav_calendar + item.href.rsplit("/", 1)[1])
    delta = provider.changes(first.cursor, {item.href: item.etag})
    assert delta.removed == [item.href]


def test_outage_then_recovery(caldav_server: ServerProcess) -> None:
    provider = CalDAVProvider(caldav_server.new_calendar(), timeout=5)
    item = provider.create(u := uid(), make_ics(u))
    first = provider.changes(None, {})
    caldav_server.stop()
    try:
        with pytest.raises(Unavailable, match="try again later") as info:
            provider.changes(first.cursor, {item.href: item.etag})
        assert info.value.__cause__ is not None
        with pytest.raises(Unavailable):
            provider.update(item.href, make_ics(u, "x"), item.etag)
    finally:
        caldav_server.start()
    delta = provider.changes(first.cursor, {item.href: item.etag})
    assert (delta.upserted, delta.removed, delta.full) == ([], [], False)


def test_pooled_client_is_reused_and_outlives_a_server_restart(
    caldav_server: ServerProcess,
) -> None:
    pool = ClientPool()
    url = caldav_server.new_calendar()
    first = CalDAVProvider(url, timeout=5, pool=pool)
    cursor = first.changes(None, {}).cursor
    first.close()
    second = CalDAVProvider(url, timeout=5, pool=pool)
    try:
        assert second._client is first._client  # the same client, and its connection
        assert second.request_count == 0  # counted per provider, not per client
        # The kept-alive connection dies with the server; the next poll still gets through.
        caldav_server.stop()
        caldav_server.start()
        delta = second.changes(cursor, {})
        assert (delta.upserted, delta.removed, delta.full) == ([], [], False)
        assert second.request_count == 1
    finally:
        second.close()
        pool.close()


def test_a_client_that_failed_is_not_pooled() -> None:
    pool = ClientPool()
    url = f"http://127.0.0.1:{free_port()}/alice/cal/"
    provider = CalDAVProvider(url, timeout=1, pool=pool)
    with pytest.raises(Unavailable):
        provider.changes("tok", {})
    provider.close()
    assert pool.take(ClientPool.key(url, None, None, 1)) is None


# -- failures are translated ----------------------------------------------------------------------


class _Html(http.server.BaseHTTPRequestHandler):
    """A plain web site that answers every method with a 200 HTML page."""

    def _page(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"<html><body>Welcome</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PROPFIND = do_REPORT = do_PUT = do_OPTIONS = _page

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def plain_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Non-CalDAV HTTP servers: Python's http.server (501 to PROPFIND), and an HTML site."""
    root = tmp_path_factory.mktemp("www")

    class Files(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    servers = [
        http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files),
        http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Html),
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    urls = [f"http://127.0.0.1:{s.server_address[1]}/cal/" for s in servers]
    yield {"http.server": urls[0], "html": urls[1]}
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("closed port", Unavailable),
        ("no answer", Unavailable),
        ("http.server", NotACalendar),
        ("html site", NotACalendar),
        ("missing calendar", NotACalendar),
        ("wrong password", AuthFailed),
        ("no password", AuthFailed),
    ],
)
@pytest.mark.parametrize("operation", ["changes", "create", "discover"])
def test_failures_are_translated(
    case: str,
    expected: type[ProviderError],
    operation: str,
    request: pytest.FixtureRequest,
) -> None:
    kwargs: dict[str, object] = {"timeout": 1}
    if case == "closed port":
        url = f"http://127.0.0.1:{free_port()}/alice/cal/"
    elif case == "no answer":
        url = f"http://127.0.0.1:{request.getfixturevalue('silent_port')}/alice/cal/"
        kwargs["timeout"] = 0.3
    elif case in ("http.server", "html site"):
        url = request.getfixturevalue("plain_servers")[
            "http.server" if case == "http.server" else "html"
        ]
    elif case == "missing calendar":
        url = request.getfixturevalue("radicale_server").url + f"{USER}/no-such-calendar/"
    else:
        server: ServerProcess = request.getfixturevalue("radicale_auth_server")
        url = server.url + f"{USER}/calendar/"
        if case == "wrong password":
            kwargs |= {"username": USER, "password": "wrong"}

    with pytest.raises(expected) as info:
        if operation == "discover":
            discover_calendars(url, **kwargs)  # type: ignore[arg-type]
        else:
            provider = CalDAVProvider(url, **kwargs)  # type: ignore[arg-type]
            if operation == "changes":
                provider.changes(None, {})
            else:
                provider.create("x", make_ics("x"))
    # A person can act on the message, and the library's exception is kept for debugging.
    assert url.split("/")[2] in str(info.value)
    if expected is not NotACalendar:  # (a page without WebDAV in it raises nothing to chain)
        assert info.value.__cause__ is not None


def test_right_password_works(radicale_auth_server: ServerProcess) -> None:
    url = radicale_auth_server.new_calendar()
    provider = CalDAVProvider(url, username=USER, password=PASSWORD)
    provider.create(u := uid(), make_ics(u))
    assert len(provider.changes(None, {}).upserted) == 1
    assert url in {c.url for c in discover_calendars(url, username=USER, password=PASSWORD)}


def test_credentials_in_the_url_stay_out_of_messages(radicale_auth_server: ServerProcess) -> None:
    url = radicale_auth_server.new_calendar()
    with_login = url.replace("://", f"://{USER}:{PASSWORD.replace(' ', '%20')}@")
    assert CalDAVProvider(with_login).changes(None, {}).full
    with pytest.raises(AuthFailed) as info:
        CalDAVProvider(url.replace("://", f"://{USER}:sw0rdfish@")).changes(None, {})
    assert "sw0rdfish" not in str(info.value)
    assert "sw0rdfish" not in str(info.value.url)


def test_expired_cursor_is_reported_by_the_server_kind(caldav_calendar: str) -> None:
    provider = CalDAVProvider(caldav_calendar)
    with pytest.raises(CursorExpired, match="re-read"):
        provider.changes("http://radicale.org/ns/sync/" + "0" * 64, {})
    with pytest.raises(CursorExpired):
        provider.changes("0" * 40, {})


# -- faults from a scripted fake server -----------------------------------------------------------


class ScriptedCalDAV(http.server.BaseHTTPRequestHandler):
    """A fake CalDAV calendar at /cal/, for faults the real servers here do not produce.

    ``mode = "paged"`` truncates every sync-collection reply after one change (507, RFC 6578
    3.6); ``"stuck"`` truncates without ever moving the token on; ``"no-sync"`` answers
    sync-collection with 501; ``"propstat-error"`` fails one member's propstat (500);
    ``"foreign-507"`` sends a 507 for an href that is not the calendar; ``"removals"`` answers
    any token with removed members (404), one also listed as changed; ``"failing-multiget"``
    fails every calendar-multiget after the first (500). PUT stores a rewritten copy and
    answers without an ETag, as a server that changes what it was given should (RFC 4791
    5.3.4).
    """

    mode = "paged"
    writes = 0
    multigets = 0
    events: ClassVar[dict[str, tuple[str, str]]] = {
        f"e{i}.ics": (f'"etag-{i}"', make_ics(f"e{i}")) for i in range(3)
    }

    def do_PROPFIND(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        responses = [self._response("/cal/", "<D:resourcetype><D:collection/></D:resourcetype>")]
        for name, (etag, _) in self.events.items():
            responses.append(self._response(f"/cal/{name}", f"<D:getetag>{etag}</D:getetag>"))
        self._multistatus("".join(responses))

    def do_REPORT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        if "calendar-multiget" in body and self.mode == "failing-multiget":
            type(self).multigets += 1
            if self.multigets > 1:
                self._empty(500)
                return
        if "calendar-multiget" in body:
            parts = []
            for href in re.findall(r"<(?:\w+:)?href>([^<]+)</", body):
                etag, data = self.events[unquote(href).rsplit("/", 1)[1]]
                data = data.replace("&", "&amp;").replace("<", "&lt;")
                props = f"<D:getetag>{etag}</D:getetag><C:calendar-data>{data}</C:calendar-data>"
                parts.append(self._response(href, props))
            self._multistatus("".join(parts))
        elif self.mode == "stuck":
            self._multistatus(
                "<D:response><D:href>/cal/</D:href>"
                "<D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>"
                "<D:sync-token>tok-stuck</D:sync-token>"
            )
        elif self.mode == "no-sync":
            self._empty(501)
        elif self.mode == "propstat-error":
            self._multistatus(
                self._response("/cal/e0.ics", '<D:getetag>"etag-0"</D:getetag>')
                + "<D:response><D:href>/cal/e1.ics</D:href><D:propstat><D:prop><D:getetag/>"
                "</D:prop><D:status>HTTP/1.1 500 Internal Server Error</D:status></D:propstat>"
                "</D:response><D:sync-token>tok-1</D:sync-token>"
            )
        elif self.mode == "foreign-507":
            self._multistatus(
                self._response("/cal/e0.ics", '<D:getetag>"etag-0"</D:getetag>')
                + "<D:response><D:href>/elsewhere/</D:href>"
                "<D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>"
                "<D:sync-token>tok-1</D:sync-token>"
            )
        elif self.mode == "removals" and "sync-token>tok-" in body:
            # e0 removed; e1 listed both as removed and as changed (as Cyrus does).
            self._multistatus(
                "<D:response><D:href>/cal/e0.ics</D:href>"
                "<D:status>HTTP/1.1 404 Not Found</D:status></D:response>"
                "<D:response><D:href>/cal/e1.ics</D:href>"
                "<D:status>HTTP/1.1 404 Not Found</D:status></D:response>"
                + self._response("/cal/e1.ics", '<D:getetag>"etag-1"</D:getetag>')
                + "<D:sync-token>tok-9</D:sync-token>"
            )
        else:
            match = re.search(r"sync-token>tok-(\d+)<", body)
            done = int(match.group(1)) if match else 0
            names = list(self.events)
            parts = [
                self._response(f"/cal/{name}", f"<D:getetag>{self.events[name][0]}</D:getetag>")
                for name in names[done : done + 1]
            ]
            if done + 1 < len(names):
                parts.append(
                    "<D:response><D:href>/cal/</D:href>"
                    "<D:status>HTTP/1.1 507 Insufficient Storage</D:status></D:response>"
                )
            token = f"tok-{min(done + 1, len(names))}"
            self._multistatus("".join(parts) + f"<D:sync-token>{token}</D:sync-token>")

    def do_PUT(self) -> None:
        data = self.rfile.read(int(self.headers["Content-Length"])).decode()
        name = unquote(self.path).rsplit("/", 1)[1]
        current = self.events.get(name)
        if_match = self.headers.get("If-Match")
        if (self.headers.get("If-None-Match") == "*" and current) or (
            if_match and (not current or current[0] != if_match)
        ):
            self._empty(412)
            return
        type(self).writes += 1
        rewritten = data.replace("END:VEVENT", "X-REWRITTEN-BY-SERVER:yes\r\nEND:VEVENT")
        self.events[name] = (f'"rewritten-{self.writes}"', rewritten)
        self._empty(201 if current is None else 204)

    def do_GET(self) -> None:
        name = unquote(self.path).rsplit("/", 1)[1]
        if name not in self.events:
            self._empty(404)
            return
        etag, data = self.events[name]
        body = data.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar; charset=utf-8")
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    @staticmethod
    def _response(href: str, props: str) -> str:
        return (
            f"<D:response><D:href>{href}</D:href><D:propstat><D:prop>{props}</D:prop>"
            "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
        )

    def _multistatus(self, inner: str) -> None:
        body = (
            '<?xml version="1.0" encoding="utf-8"?><D:multistatus xmlns:D="DAV:" '
            f'xmlns:C="urn:ietf:params:xml:ns:caldav">{inner}</D:multistatus>'
        ).encode()
        self.send_response(207)
        self.send_header("Content-Type", "application/xml; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[ScriptedCalDAV]]]:
    handler = type("Handler", (ScriptedCalDAV,), {"events": dict(ScriptedCalDAV.events)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/cal/", handler
    server.shutdown()
    server.server_close()


def test_truncated_sync_is_followed_to_the_end(scripted: tuple[str, type[ScriptedCalDAV]]) -> None:
    url, _handler = scripted
    provider = CalDAVProvider(url)
    delta = provider.changes(None, {})
    assert sorted(i.href for i in delta.upserted) == ["/cal/e0.ics", "/cal/e1.ics", "/cal/e2.ics"]
    assert delta.cursor == "tok-3"
    assert provider.request_count == 3 + 1  # three sync pages, one multiget
    assert provider.uses_sync_collection


def test_server_without_sync_collection_is_polled_by_etags(
    scripted: tuple[str, type[ScriptedCalDAV]],
) -> None:
    url, handler = scripted
    handler.mode = "no-sync"
    provider = CalDAVProvider(url)
    delta = provider.changes(None, {})
    assert len(delta.upserted) == 3
    assert (delta.cursor, delta.full) == (None, True)
    assert not provider.uses_sync_collection
    known = {i.href: i.etag for i in delta.upserted}
    before = provider.request_count
    again = provider.changes(None, known)
    assert (again.upserted, again.removed) == ([], [])
    assert provider.request_count - before == 1  # the ETag listing alone


def test_truncation_that_never_ends_falls_back_to_etag_listing(
    scripted: tuple[str, type[ScriptedCalDAV]],
) -> None:
    url, handler = scripted
    handler.mode = "stuck"
    delta = CalDAVProvider(url).changes(None, {})
    assert len(delta.upserted) == 3
    assert (delta.cursor, delta.full) == (None, True)


def test_put_answered_without_etag_reads_back(scripted: tuple[str, type[ScriptedCalDAV]]) -> None:
    url, handler = scripted
    provider = CalDAVProvider(url)
    item = provider.create("new", make_ics("new"))
    assert item.etag == handler.events["new.ics"][0]
    assert "X-REWRITTEN-BY-SERVER" in item.data  # what the server stored, not what we sent
    assert provider.request_count == 2  # PUT, then GET
    etag = provider.update(item.href, make_ics("new", "moved"), item.etag)
    assert etag == handler.events["new.ics"][0] != item.etag
    assert provider.request_count == 4


@pytest.mark.parametrize("mode", ["propstat-error", "foreign-507"])
def test_a_sync_answer_with_failures_falls_back_to_etag_listing(
    scripted: tuple[str, type[ScriptedCalDAV]], mode: str
) -> None:
    url, handler = scripted
    handler.mode = mode
    provider = CalDAVProvider(url)
    delta = provider.changes(None, {})
    assert sorted(i.href for i in delta.upserted) == ["/cal/e0.ics", "/cal/e1.ics", "/cal/e2.ics"]
    assert (delta.cursor, delta.full) == (None, True)
    assert not provider.uses_sync_collection


def test_removed_members_of_a_sync_answer(scripted: tuple[str, type[ScriptedCalDAV]]) -> None:
    url, handler = scripted
    handler.mode = "removals"
    known = {f"/cal/e{i}.ics": handler.events[f"e{i}.ics"][0] for i in range(3)}
    known["/cal/e1.ics"] = '"etag-before"'
    delta = CalDAVProvider(url).changes("tok-3", known)
    assert delta.removed == ["/cal/e0.ics"]
    assert [(i.href, i.etag) for i in delta.upserted] == [("/cal/e1.ics", '"etag-1"')]
    assert (delta.cursor, delta.full) == ("tok-9", False)


def test_items_arrive_in_parts(caldav_calendar: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(caldav_provider, "ARRIVING_BATCH", 2)
    provider = CalDAVProvider(caldav_calendar)
    items = [provider.create(u, make_ics(u)) for u in (uid(), uid(), uid(), uid(), uid())]
    known = {items[0].href: items[0].etag}  # already mirrored: not handed over again
    parts: list[list[str]] = []
    before = provider.request_count
    delta = provider.changes_arriving(
        None, known, lambda part: parts.append([i.href for i in part])
    )
    assert [len(part) for part in parts] == [2, 2]
    assert [href for part in parts for href in part] == [i.href for i in delta.upserted]
    assert provider.request_count - before == 1 + 2  # sync-collection, two multigets
    whole = CalDAVProvider(caldav_calendar).changes(None, known)
    assert {(i.href, i.etag, i.data) for i in whole.upserted} == {
        (i.href, i.etag, i.data) for i in delta.upserted
    }
    assert (delta.removed, delta.cursor is not None) == (whole.removed, True)


def test_a_failing_later_part_is_reported(
    scripted: tuple[str, type[ScriptedCalDAV]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(caldav_provider, "ARRIVING_BATCH", 1)
    url, handler = scripted
    handler.mode = "failing-multiget"
    parts: list[int] = []
    with pytest.raises(Unavailable, match="HTTP 500"):
        CalDAVProvider(url).changes_arriving(None, {}, lambda part: parts.append(len(part)))
    assert parts == [1]  # the first part came before the second REPORT failed
