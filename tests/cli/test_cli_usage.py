"""The ``calsync`` command as a newcomer types it: usage mistakes, --version, help, start-up,
and where ``serve``/``web`` listen.

Every usage mistake must end in click's usage message and exit code 2, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from calsync.cli.serve import listen_address
from tests.cli.test_cli import Cli, cli_env
from tests.conftest import SECRET_KEY
from tests.support.servers import ServerProcess, free_port

OWNER = "coach@example.org"
BERLIN = ZoneInfo("Europe/Berlin")


def calsync(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "calsync", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )


USAGE_MISTAKES = {
    "a misspelt command": (["calender", "list"], "Did you mean 'calendar'?"),
    "a missing option": (
        ["owner", "add", "--name", "Bob", "--email", "bob@example.org"],
        "Missing option '--timezone'",
    ),
    "a misspelt option": (["owner", "list", "--jsn"], "No such option: --jsn"),
    "a value not among the choices": (["outbox", "list", "--status", "bogus"], "'bogus'"),
    "a value after a flag": (["owner", "list", "--json", "true"], "unexpected extra argument"),
    "a word for a number": (
        ["busy", "--calendar", "x", "--from", "2026-12-01", "--to", "2026-12-02"],
        "Invalid value for '--calendar'",
    ),
}


@pytest.mark.parametrize("mistake", USAGE_MISTAKES, ids=list(USAGE_MISTAKES))
def test_a_usage_mistake_prints_the_usage_and_exits_2(mistake: str, tmp_path: Path) -> None:
    args, explanation = USAGE_MISTAKES[mistake]
    result = calsync(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "Usage: calsync" in result.stderr
    assert "Error:" in result.stderr and explanation in result.stderr
    # A usage mistake is refused before anything is opened: no database file appears.
    assert list(tmp_path.iterdir()) == []


def test_version_is_the_installed_package_version(tmp_path: Path) -> None:
    result = calsync("--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "calsync 0.1.0"


def test_help_shows_flags_as_flags(tmp_path: Path) -> None:
    help_text = calsync("owner", "list", "--help", cwd=tmp_path).stdout
    assert "--json" in help_text
    # "--json <bool>" invites "--json true", which is a usage mistake.
    assert "<bool>" not in help_text


def test_help_imports_neither_the_database_nor_providers_nor_the_web_tier() -> None:
    """Start-up: `calsync --help` (and every light command) must not pay for heavy imports."""
    script = (
        "import json, sys\n"
        "from calsync.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=cli_env()
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "calsync.cli.calendars" in loaded  # the commands were registered
    heavy = {
        "sqlalchemy.engine",
        "calsync.store.db",
        "calsync.calendars.caldav.provider",
        "calsync.calendars.google.provider",
        "caldav",
        "googleapiclient",
        "fastapi",
        "uvicorn",
        "icalendar",
        "recurring_ical_events",
        "jinja2",
        "pydantic_settings",
    }
    assert heavy & loaded == set()


def test_a_light_command_imports_no_calendar_client_nor_the_web_tier(tmp_path: Path) -> None:
    (tmp_path / "calsync.toml").write_text(f'database_url = "sqlite:///{tmp_path}/calsync.db"\n')
    assert calsync("init", cwd=tmp_path).returncode == 0
    script = (
        "import json, sys\n"
        "from calsync.cli.main import main\n"
        "try:\n"
        "    main(['owner', 'list', '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout.splitlines()[-1]))
    assert "sqlalchemy.engine" in loaded  # it did read the database
    heavy = {"caldav", "googleapiclient", "google.oauth2", "icalendar", "fastapi", "uvicorn"}
    assert heavy & loaded == set()


@pytest.mark.parametrize(
    ("base_url", "host", "port", "expected", "warns"),
    [
        ("http://127.0.0.1:8765", None, None, ("127.0.0.1", 8765), False),
        ("http://0.0.0.0:9000", None, None, ("0.0.0.0", 9000), False),
        ("http://127.0.0.1:8765", None, 8000, ("127.0.0.1", 8000), True),
        ("http://calsync.lan", "0.0.0.0", None, ("0.0.0.0", 80), True),
        # calsync speaks plain HTTP: an https base_url has a TLS proxy in front.
        ("https://book.example.org", None, None, ("127.0.0.1", 8000), False),
        ("https://book.example.org", None, 9001, ("127.0.0.1", 9001), False),
    ],
)
def test_serve_listens_where_base_url_points_unless_told(
    base_url: str, host: str | None, port: int | None, expected: tuple[str, int], warns: bool
) -> None:
    address = listen_address(base_url, host, port)
    assert (address.host, address.port) == expected
    assert (address.note is not None and address.note.startswith("warning")) == warns


def test_web_answers_at_the_port_of_base_url(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "calsync.toml").write_text(
        f'database_url = "sqlite:///{tmp_path}/calsync.db"\nsecret_key = "{SECRET_KEY}"\n'
        f'base_url = "http://127.0.0.1:{port}"\n'
    )
    assert calsync("init", cwd=tmp_path).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "calsync", "web"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "calsync web never answered at base_url"
                time.sleep(0.2)
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    assert "warning" not in stderr.lower()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_show_commands_read_as_text_and_changes_answer_json(
    tmp_path: Path, database_url: str, radicale_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("init")
    cli.ok("owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin")
    url = radicale_server.new_calendar()
    cli.ok("calendar", "add", "--owner", OWNER, "--caldav", url, "--role", "both")
    cli.ok(
        "event-type",
        "add",
        *("--owner", OWNER, "--slug", "coaching", "--duration", "60"),
        *("--booking-calendar", "1"),
    )

    shown = cli.ok("event-type", "show", "coaching")
    assert "conflict calendars: all calendars" in shown
    assert "hours: mon 09:00-17:00; tue 09:00-17:00" in shown
    assert "cancel: any time" in shown
    assert "{" not in shown and "[" not in shown  # no Python dicts or lists

    today = datetime.now(BERLIN).date()
    monday = today + timedelta(days=7 - today.weekday())
    booked = json.loads(
        cli.ok(
            "book",
            "--event-type",
            "coaching",
            "--customer-email",
            "zoe@example.org",
            "--customer-name",
            "Zoë",
            "--customer-timezone",
            "America/New_York",
            "--start",
            f"{monday}T09:00+01:00",
            "--start",
            f"{monday}T11:00+01:00",
            "--json",
        )
    )
    moved = json.loads(
        cli.ok(
            "booking",
            "reschedule",
            booked["id"],
            "--session",
            "1",
            "--to",
            f"{monday}T14:00+01:00",
            "--json",
        )
    )
    assert (moved["kind"], moved["status"]) == ("reschedule", "applied")
    cancelled = json.loads(cli.ok("booking", "cancel", booked["id"], "--session", "2", "--json"))
    assert (cancelled["kind"], cancelled["status"]) == ("cancel", "applied")
    polled = json.loads(cli.ok("sync", "--once", "--json"))
    assert [(p["calendar_id"], p["error"]) for p in polled] == [(1, None)]

    text = cli.ok("booking", "show", booked["id"])
    assert "Times in America/New_York (the customer's zone)." in text
    # 14:00 Berlin is 08:00 in New York; no UTC or other offsets are mixed in.
    assert f"{monday:%a %Y-%m-%d} 08:00" in text
    assert "+00:00" not in text and "+01:00" not in text and "-05:00" not in text

    calendar = cli.ok("calendar", "show", "1")
    assert f"url: {url}" in calendar and "error: none" in calendar


def test_calendar_list_keeps_one_line_per_calendar_at_80_columns() -> None:
    from rich.console import Console

    from calsync.cli.calendars import _calendar_table

    error = "Could not reach the CalDAV server at http://127.0.0.1:9/ " * 6
    row = {
        "id": 1,
        "owner": "ada@example.org",
        "name": "Work",
        "url": "http://127.0.0.1:9/",
        "role": "conflicts",
        "status": "failing",
        "events": 0,
        "last_success_at": None,
        "next_poll_at": None,
        "failures": 3,
        "error": error,
    }
    console = Console(width=80, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(_calendar_table([row, {**row, "id": 2, "error": None, "status": "ok"}], 80))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    assert len(lines) <= 8  # borders, the header and one line per calendar
    assert any("failing" in line and "Could not" in line and "…" in line for line in lines)


def test_a_sent_message_says_when_it_was_sent_not_tries_0() -> None:
    from calsync.cli.outbox import _when

    sent = {"status": "sent", "attempts": 0, "sent_at": "2026-12-01T09:30:12+00:00"}
    assert _when({**sent, "next_attempt_at": None}) == "sent 2026-12-01 09:30"
    waiting = {"status": "ready", "attempts": 2, "next_attempt_at": "2026-12-01T09:31:00+00:00"}
    assert _when(waiting) == "2 tries failed; next try 2026-12-01 09:31"
    assert _when({"status": "failed", "attempts": 1}) == "gave up after 1 try"


def test_the_readme_shows_the_link_block_markers_calsync_writes() -> None:
    from calsync.calendars.ical.session_event import LINK_BLOCK_END, LINK_BLOCK_START

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert f"{LINK_BLOCK_START}\nhttps://book.example.org/m/…\n{LINK_BLOCK_END}\n" in readme


def test_a_console_script_from_before_the_layout_move_still_gives_usage_errors() -> None:
    """An editable install made before the move keeps a `calsync` script that names
    calsync.sync.cli:main; a mistyped command there must still be a usage message, exit 2."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from calsync.sync.cli import main; sys.exit(main())",
            "no-such-command",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "No such command 'no-such-command'" in done.stderr
    assert "Traceback" not in done.stderr
