"""Messages that used to mislead (issue 12, item 8): each names what to change and the command
to run next. Real ``calsync`` processes; a plain web server stands in for a non-CalDAV URL."""

from __future__ import annotations

from tests.cli.test_cli import Cli, cli, web_page  # noqa: F401 - fixtures are used by name
from tests.support.servers import free_port

OWNER = "ada@example.org"


def test_calendar_add_errors_say_nothing_was_saved_and_what_to_give(
    cli: Cli,  # noqa: F811
    web_page: str,  # noqa: F811
) -> None:
    not_caldav = cli.fails("calendar", "add", "--owner", OWNER, "--caldav", web_page)
    assert "does not look like a CalDAV server" in not_caldav
    assert "Nothing was saved" in not_caldav and "run `calsync calendar add` again" not in (
        not_caldav
    )
    gone = cli.fails(
        "calendar", "add", "--owner", OWNER, "--caldav", f"http://127.0.0.1:{free_port()}/"
    )
    assert "the connection was refused" in gone and "Nothing was saved" in gone
    assert "try again later" not in gone and "HTTPConnection" not in gone
    bare = cli.fails("calendar", "add", "--owner", OWNER, "--caldav", "cloud.example.org/dav")
    assert "give --caldav with http:// or https://" in bare
    assert "No connection adapters" not in bare


def test_config_errors_name_the_variable_or_the_place_of_the_key(cli: Cli) -> None:  # noqa: F811
    config = cli.cwd / "calsync.toml"
    good = config.read_text()
    wrong_env = cli.fails("owner", "list", env={"CALSYNC_SYNC__HORIZON_DAYS": "abc"})
    assert "the environment variable CALSYNC_SYNC__HORIZON_DAYS" in wrong_env
    assert "calsync.toml" not in wrong_env

    typo = cli.run("owner", "list", env={"CALSYNC_SECRETKEY": "x"})
    assert typo.returncode == 0
    assert "CALSYNC_SECRETKEY is not one calsync reads; did you mean CALSYNC_SECRET_KEY?" in (
        " ".join(typo.stderr.split())
    )

    lines = good.splitlines()
    config.write_text("\n".join([lines[0], "[google]", *lines[1:]]) + "\n")
    misplaced = cli.fails("owner", "list")
    assert "google.secret_key: unknown key; secret_key is a top-level key" in misplaced
    assert "above the first [section]" in misplaced


def test_policy_and_hours_errors_name_the_option(cli: Cli) -> None:  # noqa: F811
    add = ["event-type", "add", "--owner", OWNER, "--slug", "s", "--duration", "60"]
    assert "--cancel-notice (policy.cancel.notice)" in cli.fails(*add, "--cancel", "until")
    overnight = cli.fails(*add, "--hours", "mon 22:00-02:00")
    assert "time(0)" not in overnight and "end it at 24:00" in overnight


def test_adopt_with_adoption_off_says_how_to_turn_it_on(
    cli: Cli,  # noqa: F811
    radicale_calendar: str,
) -> None:
    cli.ok("calendar", "add", "--owner", OWNER, "--caldav", radicale_calendar)
    off = cli.fails("adopt", "--calendar", "1", "--dry-run")
    assert "adoption is off for calendar 1" in off
    assert "calsync calendar adoption 1 --rule" in off
