"""JSON logs from a real ``calsync web`` process: every line is one JSON object with time,
level, logger and message; a request id is answered in X-Request-ID and carried by the log
lines of the work the request caused; no manage token and no password reaches the log.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from calsync.observe.logs import ContextFilter, json_formatter, log_context
from tests.support.servers import PASSWORD, USER, ServerProcess, put_event
from tests.support.web_process import ADMIN_KEY, WebProcess, process_env

WRONG_PASSWORD = "wrong battery staple"


@pytest.fixture
def web(tmp_path: Path) -> Iterator[WebProcess]:
    env = process_env(tmp_path, CALSYNC_LOGGING__FORMAT="json", CALSYNC_LOG_LEVEL="INFO")
    process = WebProcess.start(env, tmp_path)
    yield process
    process.kill()


def json_lines(web: WebProcess) -> list[dict[str, Any]]:
    """Stops the process and returns its log, each line parsed as JSON (or failing)."""
    parsed = []
    for line in web.stop().splitlines():
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a log line is not JSON: {line!r}")
    return parsed


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

    lines = json_lines(web)
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
