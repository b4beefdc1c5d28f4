"""The booking page's offer set from the command line (issue 15 item 1): packages with their
prices, the spacing rule, stakeholders, the page's switch, and its URL in `event-type show`.

Real ``calsync`` processes on both databases."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import Cli

OWNER = "Coach.Carter@example.org"


def test_packages_spacing_and_the_page_switch_are_set_shown_and_checked(
    tmp_path: Path, database_url: str
) -> None:
    cli = Cli(tmp_path, database_url)
    cli.ok("init")
    added = cli.ok(
        "owner", "add", "--name", "Coach", "--email", OWNER, "--timezone", "Europe/Berlin"
    )
    assert "booking page http://127.0.0.1:8000/b/coach-carter" in " ".join(added.split())
    # The owner's slug, in the list and its JSON.
    (listed,) = json.loads(cli.ok("owner", "list", "--json"))
    assert (listed["slug"], listed["page_url"]) == (
        "coach-carter",
        "http://127.0.0.1:8000/b/coach-carter",
    )
    assert "coach-carter" in cli.ok("owner", "list")
    cli.ok(
        "event-type", "add", "--owner", OWNER, "--slug", "coaching", "--duration", "60",
        "--package", "3=250", "--package", "1=90", "--min-days-apart", "2",
    )  # fmt: skip
    shown = json.loads(cli.ok("event-type", "show", "coaching", "--json"))
    assert shown["booking_page"] == {
        "public": False,
        "packages": [{"sessions": 1, "price": "90"}, {"sessions": 3, "price": "250"}],
        "min_days_apart": 2,
        "one_per_day": False,
        "max_stakeholders": 0,
    }
    # The owner's slug is the email's local part, made fit for a URL.
    assert shown["page_url"] == "http://127.0.0.1:8000/b/coach-carter/coaching"

    cli.ok("event-type", "edit", "coaching", "--page", "--one-per-day", "--max-stakeholders", "2")
    shown = json.loads(cli.ok("event-type", "show", "coaching", "--json"))
    page = shown["booking_page"]
    assert page["public"] and page["one_per_day"] and page["max_stakeholders"] == 2
    assert page["packages"] == [{"sessions": 1, "price": "90"}, {"sessions": 3, "price": "250"}]
    text = " ".join(cli.ok("event-type", "show", "coaching").split())
    assert "booking page: on: http://127.0.0.1:8000/b/coach-carter/coaching" in text
    assert "packages: 1 session for 90 EUR, 3 sessions for 250 EUR" in text
    assert "spacing: at least 2 days apart, at most one a day" in text

    assert "is not SESSIONS=PRICE" in cli.fails("event-type", "edit", "coaching", "--package", "3")
    too_many = cli.fails("event-type", "edit", "coaching", "--package", "30=1")
    assert "--package (booking_page.packages)" in " ".join(too_many.split())
    cli.ok("event-type", "edit", "coaching", "--no-page")
    assert not json.loads(cli.ok("event-type", "show", "coaching", "--json"))["booking_page"][
        "public"
    ]
