"""JSON logs from a real ``calsync web`` process: every line is one JSON object with time,
level, logger and message; a request id is answered in X-Request-ID and carried by the log
lines of the work the request caused; no manage token and no password reaches the log.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.observe.logs import ContextFilter, json_formatter, log_context
from tests.conftest import SECRET_KEY
from tests.support.servers import PASSWORD, USER, ServerProcess, free_port, put_event

ADMIN_KEY = "admin-key-for-the-log-test-0123456789"
WRONG_PASSWORD = "wrong battery staple"


@dataclass
class WebProcess:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    def lines(self) -> list[dict[str, Any]]:
        """Stops the process and returns its log, each line parsed as JSON (or failing)."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        text = self.log.read_text(encoding="utf-8")
        parsed = []
        for line in text.splitlines():
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"a log line is not JSON: {line!r}")
        return parsed


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebProcess]:
    env = os.environ | {
        "CALSYNC_DATABASE_URL": f"sqlite:///{tmp_path}/calsync.db",
        "CALSYNC_SECRET_KEY": SECRET_KEY,
        "CALSYNC_ADMIN_API_KEY": ADMIN_KEY,
        "CALSYNC_LOGGING__FORMAT": "json",
        "CALSYNC_LOG_LEVEL": "INFO",
    }
    subprocess.run(
        [sys.executable, "-m", "calsync", "init"],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = tmp_path / "web.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "calsync", "web", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"calsync web did not start: {log.read_text()}")
    yield WebProcess(base, process, log)
    if process.poll() is None:
        process.kill()
        process.wait()


def test_json_logs_carry_the_request_id_and_never_a_token_or_a_password(
    web: WebProcess, radicale_auth_server: ServerProcess
) -> None:
    api = httpx.Client(base_url=web.base, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    owner = {"name": "Coach", "email": "coach@example.org", "timezone": "UTC"}
    assert api.post("/api/owners", json=owner).status_code == 201
    url = radicale_auth_server.new_calendar()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    put_event(url, _event(start), auth=(USER, PASSWORD))

    body = {"owner_email": "coach@example.org", "url": url, "username": USER}
    refused = api.post("/api/calendars", json=body | {"password": WRONG_PASSWORD})
    assert refused.status_code == 400
    added = api.post(
        "/api/calendars",
        json=body | {"password": PASSWORD},
        headers={"X-Request-ID": "calendar-add-0001"},
    )
    assert added.status_code == 201, added.text
    assert added.headers["x-request-id"] == "calendar-add-0001"
    calendar_id = added.json()[0]["id"]
    synced = api.post(
        f"/api/calendars/{calendar_id}/sync", headers={"X-Request-ID": "sync-request-0001"}
    )
    assert synced.json()["outcome"] == "ok", synced.text

    token = secrets.token_urlsafe(32)
    page = httpx.get(f"{web.base}/m/{token}", headers={"X-Request-ID": "bad id <script>"})
    assert page.status_code == 404
    made = page.headers["x-request-id"]
    assert made != "bad id <script>" and len(made) == 32  # an insane id is replaced

    lines = web.lines()
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys(), line
        text = json.dumps(line)
        assert token not in text and PASSWORD not in text and WRONG_PASSWORD not in text, line
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert {"calendar-add-0001", "sync-request-0001", made} <= {
        line.get("request_id") for line in access
    }
    page_line = next(line for line in access if line.get("request_id") == made)
    assert "/m/#" in page_line["message"]  # the token's short hash, as in text mode
    # The work the sync request caused logs with the request's id and the calendar's.
    polled = [
        line
        for line in lines
        if line["logger"] == "calsync.sync.poller" and line.get("request_id") == "sync-request-0001"
    ]
    assert polled and all(line["calendar_id"] == calendar_id for line in polled), lines


def test_the_context_is_in_each_json_line_and_only_inside_its_block() -> None:
    stream = _Lines()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(json_formatter())
    handler.addFilter(ContextFilter())
    logger = logging.getLogger("calsync.test_logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        with log_context(booking_id="b1", change_id=7):
            logger.info("inside %s", "the block")
        logger.info("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.lines)
    assert inside["message"] == "inside the block"
    assert (inside["booking_id"], inside["change_id"], inside["level"]) == ("b1", 7, "INFO")
    assert inside["logger"] == "calsync.test_logs" and "T" in inside["time"]
    assert "booking_id" not in outside


class _Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines += [line for line in text.splitlines() if line]

    def flush(self) -> None:
        pass


def _event(start: datetime) -> str:
    end = start + timedelta(hours=1)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:log-test\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
