"""Real CalDAV servers on loopback, as pytest fixtures.

Radicale and Xandikos run as child processes on free ports, one of each per test session
(started on first use), with their storage in a temporary directory. Each test that asks for a
calendar gets a fresh, empty collection made with MKCALENDAR, so tests never see each other's
events and the servers need not restart between tests.

A server object can be stopped and started again on the same port and storage to simulate an
outage. Children are killed when the session ends, whether the tests passed or not (and, on
Linux, by the kernel if pytest itself dies).

The ``put_event``/``delete_event`` helpers write with plain HTTP, the way the owner's own
calendar app would, so a test can change a calendar behind calsync's back.

Fixtures: ``radicale_server``, ``xandikos_server``, ``radicale_auth_server`` (htpasswd, for
wrong-password tests), ``radicale_calendar``, ``xandikos_calendar`` and ``caldav_calendar``
(parametrized over both servers); each ``*_calendar`` is the URL of a new empty calendar.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from xml.sax.saxutils import escape as xml_escape

import pytest

#: Every test principal is this user; Radicale creates /alice/ on the first authenticated request.
USER = "alice"
#: The password of ``USER`` on ``radicale_auth_server`` (any password works on the others).
PASSWORD = "correct horse"

_STARTUP_TIMEOUT = 15.0
_running: set[ServerProcess] = set()


def free_port() -> int:
    """A TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL the child when pytest dies, even by SIGKILL (no atexit then).

    The signal fires when the *thread* that started the child ends; fixtures run on the main
    thread, so that is when pytest ends.
    """
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass(eq=False)
class ServerProcess:
    """A server child process on a fixed port and storage directory.

    ``stop()`` and ``start()`` can be called repeatedly: the server comes back on the same port
    with the same data, which is how tests simulate an outage.
    """

    name: str
    argv: list[str]
    port: int
    workdir: Path
    username: str | None = None
    password: str | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:5232/``."""
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        # The log goes to a file, not the test output: both servers chat on stderr.
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        _running.add(self)
        self._wait_until_answering()

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        _running.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while True:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._proc.returncode} while starting; "
                    f"log:\n{self.log_path.read_text(errors='replace')}"
                )
            try:
                request("OPTIONS", self.url, timeout=1)
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"{self.name} did not answer on {self.url} within {_STARTUP_TIMEOUT} s; "
                        f"log:\n{self.log_path.read_text(errors='replace')}"
                    ) from None
                time.sleep(0.02)

    # -- calendars ------------------------------------------------------------------------------

    calendar_home: str = "/"

    def new_calendar(
        self,
        name: str | None = None,
        *,
        display_name: str | None = None,
        timezone_ics: str | None = None,
        components: tuple[str, ...] | None = None,
    ) -> str:
        """Create an empty calendar collection and return its URL (ending in ``/``).

        ``timezone_ics``: a VCALENDAR holding one VTIMEZONE, stored as ``calendar-timezone``;
        ``components``: e.g. ``("VTODO",)`` for a task list.
        """
        name = name or f"cal-{uuid.uuid4().hex[:12]}"
        url = f"http://127.0.0.1:{self.port}{self.calendar_home}{name}/"
        props = ""
        if display_name is not None:
            props += f"<D:displayname>{xml_escape(display_name)}</D:displayname>"
        if timezone_ics is not None:
            props += f"<C:calendar-timezone>{xml_escape(timezone_ics)}</C:calendar-timezone>"
        if components is not None:
            comps = "".join(f'<C:comp name="{c}"/>' for c in components)
            props += (
                f"<C:supported-calendar-component-set>{comps}</C:supported-calendar-component-set>"
            )
        body = b""
        if props:
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                f"<D:set><D:prop>{props}</D:prop></D:set></C:mkcalendar>"
            ).encode()
        headers = {"Content-Type": "application/xml; charset=utf-8"} if body else {}
        status, _ = request("MKCALENDAR", url, body, headers, auth=self.auth)
        assert status == 201, f"MKCALENDAR {url} answered {status}"
        return url

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.username, self.password or "") if self.username else None


def _stop_all() -> None:
    for server in list(_running):
        server.stop()


# Backstop for an interrupted session; the fixtures stop their servers themselves.
atexit.register(_stop_all)


# -- plain HTTP, as the owner's own client would do it --------------------------------------------


def request(
    method: str,
    url: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    *,
    auth: tuple[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str]]:
    """One HTTP request; returns (status, headers). HTTP error statuses are returned, not raised;
    connection failures raise OSError."""
    req = urllib.request.Request(url, data=body or None, method=method, headers=headers or {})
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            resp.read()
            return resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        with exc:
            exc.read()
            return exc.code, dict(exc.headers)


class Written(NamedTuple):
    """Where ``put_event`` stored an object: full URL, URL path (calsync's href) and ETag."""

    url: str
    href: str
    etag: str | None


_UID_RE = re.compile(r"^UID:(.+?)\r?$", re.MULTILINE)


def put_event(
    url: str,
    ics: str,
    *,
    etag: str | None = None,
    auth: tuple[str, str] | None = None,
) -> Written:
    """Store ``ics`` behind calsync's back, the way the owner's calendar app would.

    ``url`` is an object URL, or a calendar URL (ending in ``/``) to which ``<uid>.ics`` is
    appended. With ``etag`` the write is conditional (If-Match), else unconditional.
    """
    if url.endswith("/"):
        match = _UID_RE.search(ics)
        assert match, "put_event needs a UID in the ICS to name the object"
        url = url + urllib.request.quote(match.group(1).strip(), safe="") + ".ics"
    headers = {"Content-Type": "text/calendar; charset=utf-8"}
    if etag is not None:
        headers["If-Match"] = etag
    status, resp_headers = request("PUT", url, ics.encode("utf-8"), headers, auth=auth)
    assert status in (201, 204), f"PUT {url} answered {status}"
    href = urllib.request.urlparse(url).path
    return Written(url, href, resp_headers.get("ETag"))


def delete_event(url: str, *, auth: tuple[str, str] | None = None) -> None:
    """Delete the object at ``url`` unconditionally, as the owner's calendar app would."""
    status, _ = request("DELETE", url, auth=auth)
    assert status in (200, 204), f"DELETE {url} answered {status}"


# -- server factories -----------------------------------------------------------------------------


def _radicale(workdir: Path, *, htpasswd: bool = False) -> ServerProcess:
    port = free_port()
    storage = workdir / "storage"
    lines = [
        "[server]",
        f"hosts = 127.0.0.1:{port}",
        "[storage]",
        f"filesystem_folder = {storage}",
        "[logging]",
        "level = warning",
        "[auth]",
    ]
    if htpasswd:
        users = workdir / "users"
        users.write_text(f"{USER}:{PASSWORD}\n")
        lines += [
            "type = htpasswd",
            f"htpasswd_filename = {users}",
            "htpasswd_encryption = plain",
        ]
    else:
        lines += ["type = none"]
    # Radicale otherwise sleeps about a second before every 401 and 403 (including its answer
    # to an unknown sync token).
    lines += ["delay = 0"]
    config = workdir / "radicale.conf"
    config.write_text("\n".join(lines) + "\n")
    # -C with our own file only, so a config in /etc or ~/.config cannot change the tests.
    argv = [sys.executable, "-m", "radicale", "-C", str(config)]
    server = ServerProcess("radicale", argv, port, workdir, USER, PASSWORD)
    server.calendar_home = f"/{USER}/"
    return server


def _xandikos(workdir: Path) -> ServerProcess:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "xandikos",
        "serve",
        "-d",
        str(workdir / "storage"),
        "--state-dir",
        str(workdir / "state"),
        "--defaults",
        "-l",
        "127.0.0.1",
        "-p",
        str(port),
        "--current-user-principal",
        f"/{USER}/",
        "--no-detect-systemd",
    ]
    # Xandikos refuses Basic auth without TLS, so it runs without auth; it ignores credentials.
    server = ServerProcess("xandikos", argv, port, workdir)
    server.calendar_home = f"/{USER}/calendars/"
    return server


def _serve(make: Callable[[], ServerProcess]) -> Iterator[ServerProcess]:
    server = make()
    server.start()
    try:
        if server.username:
            # Radicale creates the principal collection /alice/ on an authenticated request;
            # after that anonymous requests (auth type none) may use it too.
            request("PROPFIND", server.url + f"{USER}/", headers={"Depth": "0"}, auth=server.auth)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def radicale_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Radicale without authentication (any username is accepted as that user)."""
    workdir = tmp_path_factory.mktemp("radicale")
    yield from _serve(lambda: _radicale(workdir))


@pytest.fixture(scope="session")
def radicale_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Radicale with htpasswd authentication: only ``USER``/``PASSWORD`` get in."""
    workdir = tmp_path_factory.mktemp("radicale-auth")
    yield from _serve(lambda: _radicale(workdir, htpasswd=True))


@pytest.fixture(scope="session")
def xandikos_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Xandikos with the default calendar at /alice/calendars/calendar/."""
    workdir = tmp_path_factory.mktemp("xandikos")
    yield from _serve(lambda: _xandikos(workdir))


def _ensure_running(server: ServerProcess) -> ServerProcess:
    # A test that simulated an outage and failed before restarting must not break the next one.
    server.start()
    return server


@pytest.fixture
def radicale_calendar(radicale_server: ServerProcess) -> str:
    """URL of a new, empty Radicale calendar."""
    return _ensure_running(radicale_server).new_calendar()


@pytest.fixture
def xandikos_calendar(xandikos_server: ServerProcess) -> str:
    """URL of a new, empty Xandikos calendar."""
    return _ensure_running(xandikos_server).new_calendar()


@pytest.fixture(params=["radicale", "xandikos"])
def caldav_server(request: pytest.FixtureRequest) -> ServerProcess:
    """Each CalDAV server in turn."""
    server: ServerProcess = request.getfixturevalue(f"{request.param}_server")
    return _ensure_running(server)


@pytest.fixture
def caldav_calendar(caldav_server: ServerProcess) -> str:
    """URL of a new, empty calendar, on each CalDAV server in turn."""
    return caldav_server.new_calendar()
