"""The README's setup steps, run in order as written (issue 12): the commands of its
"Using calsync", "Event types and free times" and "Bookings and the personal link" code
blocks, against a real Radicale server with a password, on a fresh database.

What the test changes, and only this: the example server URL and username become the test
server's, the password comes from the environment variable the README names, and the example
dates move forward by whole weeks (weekdays kept) so they lie ahead of today. Optional parts
(`[--json]`), commands with placeholders (`BOOKING_ID`) and `calsync worker` (it runs until
stopped) are left out.
"""

from __future__ import annotations

import re
import shlex
from datetime import date, timedelta
from pathlib import Path

import pytest

from tests.cli.test_cli import Cli
from tests.support.servers import PASSWORD, USER, ServerProcess

README = Path(__file__).resolve().parents[2] / "README.md"
SECTIONS = (
    "## Using calsync",
    "### Event types and free times",
    "### Bookings and the personal link",
)
EXAMPLE_URL = "https://cloud.example.org/remote.php/dav/"
LONG_RUNNING = {"worker", "serve", "web"}


def readme_commands() -> list[str]:
    """The shell commands of the first code block under each of SECTIONS, in order."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for heading in SECTIONS:
        start = text.index(heading + "\n")
        block = re.search(r"```sh\n(.*?)```", text[start:], re.S)
        assert block, f"no sh block under {heading}"
        joined = block.group(1).replace("\\\n", " ")
        commands += [line.strip() for line in joined.splitlines() if line.strip()]
    return commands


PLACEHOLDERS = {"ID", "BOOKING_ID", "EMAIL", "SLUG", "URL"}
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def shifted(commands: list[str], today: date) -> list[str]:
    """The example dates moved on by the same whole number of weeks (weekdays kept), so the
    earliest lies a week ahead."""
    found = [date.fromisoformat(d) for c in commands for d in DATE.findall(c)]
    weeks = max(0, -(-((today + timedelta(days=7)) - min(found)).days // 7))
    return [
        DATE.sub(lambda m: str(date.fromisoformat(m.group(0)) + timedelta(weeks=weeks)), c)
        for c in commands
    ]


def as_run(command: str, url: str) -> tuple[list[str], dict[str, str]] | None:
    words = shlex.split(re.sub(r"\s*\[[^\]]*\]", "", command), comments=True)
    if not words:
        return None  # a line that only comments on the one above
    env = {}
    while words and re.fullmatch(r"[A-Z_]+=.*", words[0]):
        env[words.pop(0).split("=", 1)[0]] = PASSWORD  # the README's "…"
    assert words[0] == "calsync", command
    args = words[1:]
    if args[0] in LONG_RUNNING or PLACEHOLDERS & set(args):
        return None
    args = [url if a == EXAMPLE_URL else a for a in args]
    if "--username" in args:
        args[args.index("--username") + 1] = USER
    return args, env


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_readme_setup_steps_run_in_order_as_written(
    tmp_path: Path, database_url: str, radicale_auth_server: ServerProcess
) -> None:
    cli = Cli(tmp_path, database_url)
    url = radicale_auth_server.new_calendar()
    today = date.today()
    ran = []
    for command in shifted(readme_commands(), today):
        step = as_run(command, url)
        if step is None:
            continue
        args, env = step
        result = cli.run(*args, env=env)
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        ran.append(args[:2])
    # The steps that matter all ran: connect, sync, define, book, list.
    for needed in (["calendar", "add"], ["event-type", "add"], ["event-type", "edit"], ["book"]):
        assert any(r[: len(needed)] == needed for r in ran), needed
