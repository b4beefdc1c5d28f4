"""The ``calsync`` command as a user runs it: a real process, a config file, a real server.

Bad input must end in one clear line and exit code 1, never a traceback.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import calsync
from calsync.secretbox import SecretBox
from calsync.store.db import Database
from calsync.store.models import CalendarConnection
from tests.conftest import SECRET_KEY
from tests.support.servers import PASSWORD, USER, ServerProcess, put_event

NEW_YORK = ZoneInfo("America/New_York")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A bare environment for a `python -m calsync` child, running this tree's calsync (not
    whatever the virtualenv installed, which may be another checkout)."""
    tree = str(Path(calsync.__file__).resolve().parents[1])
    return {"PATH": "/usr/bin:/bin", "COLUMNS": "200", "PYTHONPATH": tree, **(extra or {})}


class Cli:
    def __init__(self, tmp_path: Path, database_url: str) -> None:
        self.cwd = tmp_path
        self.database_url = database_url
        (tmp_path / "calsync.toml").write_text(
            f'database_url = "{database_url}"\nsecret_key = "{SECRET_KEY}"\n'
        )

    def run(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "calsync", *args],
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(env),
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.run(*args, env=env)
        assert result.returncode == 0, result.stderr
        return result.stdout

    def coach(
        self, owner: str, calendar_url: str, *event_type_options: str, name: str = "Coach"
    ) -> None:
        """``init``; ``owner`` (Europe/Berlin) with ``calendar_url`` as calendar 1 for conflicts
        and bookings; the event type ``coaching``, 60 minutes booked into it, plus
        ``event_type_options``: the set-up every booking test from the command line starts with."""
        self.ok("init")
        self.ok("owner", "add", "--name", name, "--email", owner, "--timezone", "Europe/Berlin")
        self.ok("calendar", "add", "--owner", owner, "--caldav", calendar_url, "--role", "both")
        self.ok(
            "event-type",
            "add",
            "--owner",
            owner,
            "--slug",
            "coaching",
            "--duration",
            "60",
            "--booking-calendar",
            "1",
            *event_type_options,
        )

    def fails(self, *args: str, env: dict[str, str] | None = None) -> str:
        result = self.run(*args, env=env)
        assert result.returncode == 1, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout
        return " ".join(result.stderr.split())


@pytest.fixture
def cli(tmp_path: Path, database_url: str) -> Cli:
    runner = Cli(tmp_path, database_url)
    runner.ok("init")
    runner.ok("owner", "add", "--name", "Ada", "--email", "ada@example.org", "--timezone", "UTC")
    return runner


def vevent(uid: str, start: datetime) -> str:
    end = start + timedelta(hours=1)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:x\r\n"
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def test_connect_sync_and_read_busy_time(cli: Cli, radicale_auth_server: ServerProcess) -> None:
    url = radicale_auth_server.new_calendar()
    # Noon UTC: the same calendar date in UTC and in New York, whatever the time of day now.
    start = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) + timedelta(
        days=2
    )
    put_event(url, vevent("meeting", start), auth=radicale_auth_server.auth)
    env = {"CAL_PW": PASSWORD}
    added = json.loads(
        cli.ok(
            "calendar",
            "add",
            "--owner",
            "ada@example.org",
            "--caldav",
            url,
            "--username",
            USER,
            "--password-env",
            "CAL_PW",
            "--json",
            env=env,
        )
    )
    (calendar_id,) = [entry["id"] for entry in added]
    assert "1 changed" in cli.ok("sync", "--once")
    busy = json.loads(
        cli.ok(
            "busy",
            "--calendar",
            str(calendar_id),
            "--from",
            f"{start:%Y-%m-%d}",
            "--to",
            f"{start + timedelta(days=1):%Y-%m-%d}",
            "--tz",
            "America/New_York",
            "--json",
        )
    )
    assert busy == [
        {
            "start": start.astimezone(NEW_YORK).isoformat(),
            "end": (start + timedelta(hours=1)).astimezone(NEW_YORK).isoformat(),
        }
    ]
    (listed,) = json.loads(cli.ok("calendar", "list", "--json"))
    assert (listed["status"], listed["events"], listed["error"]) == ("ok", 1, None)
    # The password is stored encrypted, never in clear (read back on either database).
    db = Database(cli.database_url)
    with db.reading() as session:
        stored = session.scalars(select(CalendarConnection.secret_encrypted)).one()
    db.dispose()
    assert stored and PASSWORD not in stored
    assert SecretBox(SECRET_KEY).decrypt(stored) == PASSWORD


def test_wrong_password_is_refused_with_a_clear_message(
    cli: Cli, radicale_auth_server: ServerProcess
) -> None:
    url = radicale_auth_server.new_calendar()
    message = cli.fails(
        "calendar",
        "add",
        "--owner",
        "ada@example.org",
        "--caldav",
        url,
        "--username",
        USER,
        "--password-env",
        "CAL_PW",
        env={"CAL_PW": "wrong"},
    )
    assert "password" in message.lower()
    assert "wrong" not in message, "the password must never be echoed"
    assert json.loads(cli.ok("calendar", "list", "--json")) == []


@pytest.fixture(scope="module")
def web_page() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_a_url_that_is_not_caldav_is_explained(cli: Cli, web_page: str) -> None:
    message = cli.fails("calendar", "add", "--owner", "ada@example.org", "--caldav", web_page)
    assert "CalDAV" in message


def test_an_unreachable_calendar_is_reported_and_others_still_sync(
    cli: Cli, radicale_server: ServerProcess, tmp_path: Path
) -> None:
    from tests.support.servers import free_port

    good = radicale_server.new_calendar()
    cli.ok("calendar", "add", "--owner", "ada@example.org", "--caldav", good)
    # A second server that is reachable when connected, and then goes away for good.
    from tests.support.servers import _radicale

    (tmp_path / "doomed").mkdir()
    doomed = _radicale(tmp_path / "doomed")
    doomed.start()
    try:
        cli.ok("calendar", "add", "--owner", "ada@example.org", "--caldav", doomed.new_calendar())
    finally:
        doomed.stop()
    assert free_port()  # the machine is fine; only that server is gone
    result = cli.run("sync", "--once")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    listed = {entry["url"]: entry for entry in json.loads(cli.ok("calendar", "list", "--json"))}
    assert listed[good]["status"] == "ok"
    failing = next(entry for url, entry in listed.items() if url != good)
    assert failing["status"] == "failing"
    assert "reach" in failing["error"].lower() or "connect" in failing["error"].lower()


def test_bad_arguments_and_broken_config_give_one_clear_line(cli: Cli) -> None:
    assert "unknown time zone 'Mars/Base'" in cli.fails(
        "owner", "add", "--name", "B", "--email", "b@example.org", "--timezone", "Mars/Base"
    )
    assert "unknown time zone 'Europe'" in cli.fails(
        "owner", "add", "--name", "B", "--email", "b@example.org", "--timezone", "Europe"
    )
    assert "--password-env" in cli.fails(
        "calendar", "add", "--owner", "ada@example.org", "--caldav", "http://ada:pw@127.0.0.1:9/"
    )
    assert "exists already" in cli.fails(
        "owner", "add", "--name", "A", "--email", "ada@example.org", "--timezone", "UTC"
    )
    assert "no owner with email nobody@example.org" in cli.fails(
        "calendar", "add", "--owner", "nobody@example.org", "--caldav", "http://127.0.0.1:9/"
    )
    assert "no calendar with id 99" in cli.fails(
        "busy", "--calendar", "99", "--from", "2026-12-01", "--to", "2026-12-02"
    )
    (cli.cwd / "calsync.toml").write_text("[sync]\nhorizon_days = -3\n")
    assert "sync.horizon_days" in cli.fails("calendar", "list")


def test_commands_before_init_say_to_run_init_and_create_no_database(tmp_path: Path) -> None:
    fresh = Cli(tmp_path, f"sqlite:///{tmp_path}/fresh.db")
    assert "run `calsync init` to create it" in fresh.fails("calendar", "list")
    assert "run `calsync init` to create it" in fresh.fails("serve", "--port", "1")
    # An empty file left behind would look like a database to the next command.
    assert not (tmp_path / "fresh.db").exists()
    fresh.ok("init")
    assert "[]" in fresh.ok("owner", "list", "--json")


@pytest.mark.slow
def test_demo_once_seeds_syncs_and_prints_busy_time(tmp_path: Path) -> None:
    cli = Cli(tmp_path, "sqlite:///unused.db")
    output = cli.ok("demo", "--once", "--data-dir", str(tmp_path / "demo"))
    assert "full sync: 5 event(s) new or changed" in output
    assert "09:00" in output and "09:15" in output  # the daily stand-up
    assert "Coaching session: free times in America/New_York" in output
    assert "Booked 3 sessions for Grace Hopper" in output
    assert "Her manage link: http://127.0.0.1:8000/m/" in output
    assert "The booking page: http://127.0.0.1:8000/b/ada/coaching" in output
    mails = sorted((tmp_path / "demo" / "mail").glob("*.eml"))
    assert len(mails) == 3  # the customer, the owner and the stakeholder
    assert any(b"Your 3 sessions are confirmed" in m.read_bytes() for m in mails)
    again = cli.ok("demo", "--once", "--data-dir", str(tmp_path / "demo"))
    # The second run continues: the three booked events (written after the first run's sync)
    # arrive incrementally, and the same booking is shown, not a new one.
    assert "incremental poll: 3 event(s) new or changed, 0 removed" in again
    link = re.search(r"Her manage link: (\S+)", output)
    assert link and link.group(1) in again
