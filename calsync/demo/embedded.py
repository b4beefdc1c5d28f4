"""An embedded Radicale CalDAV server on loopback, for ``calsync demo``.

Radicale runs as a child process (it is a dependency of calsync) with its storage in a
folder of the demo, so events survive restarts of the demo.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

MKCALENDAR_BODY = b"""<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop>
    <D:displayname>%s</D:displayname>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRadicale:
    """A Radicale child process without authentication, listening on 127.0.0.1 only."""

    def __init__(self, storage: Path, port: int | None = None) -> None:
        self.storage = storage
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> None:
        self.storage.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "radicale",
                "--hosts",
                f"127.0.0.1:{self.port}",
                "--auth-type",
                "none",
                "--rights-type",
                "owner_only",
                "--storage-filesystem-folder",
                str(self.storage),
                "--logging-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"Radicale exited at start (code {self._process.returncode})")
            try:
                urllib.request.urlopen(f"{self.url}/.web/", timeout=1).close()
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        raise RuntimeError(f"Radicale did not answer on {self.url} within {timeout} s")

    def ensure_calendar(self, user: str, name: str, display_name: str) -> str:
        """Create /<user>/<name>/ if missing; returns its URL."""
        url = f"{self.url}/{user}/{name}/"
        request = urllib.request.Request(
            url,
            method="MKCALENDAR",
            data=MKCALENDAR_BODY % display_name.encode(),
            headers={"Content-Type": "application/xml; charset=utf-8"},
        )
        request.add_header("Authorization", "Basic " + _basic(user))
        try:
            urllib.request.urlopen(request, timeout=10).close()
        except urllib.error.HTTPError as exc:
            if exc.code not in (405, 409):  # 405/409: it exists already
                raise
        return url

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


def _basic(user: str) -> str:
    import base64

    return base64.b64encode(f"{user}:demo".encode()).decode()
