"""``calsync owner invite`` and the admin API's invitation: the owner gets a one-time console
link by email (queued in the outbox); the operator sees where it went, never the link."""

from __future__ import annotations

import json

from calsync.config import Settings
from calsync.store.db import Database
from tests.cli.test_cli import Cli, cli  # noqa: F401  (the fixture)
from tests.conftest import SECRET_KEY, make_settings
from tests.support.console import add_owner, console_client, emailed_link, sign_in


def test_the_operator_invites_an_owner_from_the_command_line(
    cli: Cli,  # noqa: F811
    database_url: str,
) -> None:
    said = cli.ok("owner", "invite", "ada@example.org")
    assert "ada@example.org" in said and "15" in said and "/console/link/" not in said
    answer = json.loads(cli.ok("owner", "invite", "ada@example.org", "--json"))
    assert answer["email"] == "ada@example.org" and "expires_at" in answer

    settings = make_settings(database_url)
    assert settings.secret_key == SECRET_KEY
    db = Database(database_url)
    try:
        with console_client(settings, db) as browser:
            sign_in(browser, emailed_link(db, settings, "ada@example.org"), settings)
            assert browser.get("/console/calendars").status_code == 200
    finally:
        db.dispose()


def test_inviting_an_unknown_address_says_so(cli: Cli) -> None:  # noqa: F811
    said = cli.fails("owner", "invite", "nobody@example.org")
    assert "no owner with email nobody@example.org" in said


def test_the_admin_api_invites_an_owner(settings: Settings, db: Database) -> None:
    settings = settings.model_copy(update={"admin_api_key": "k" * 32})
    owner = add_owner(db, "ada@example.org")
    with console_client(settings, db) as api:
        headers = {"Authorization": "Bearer " + "k" * 32}
        answer = api.post(f"/api/owners/{owner.id}/console-invite", headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["email"] == "ada@example.org"
        assert "/console/link/" not in answer.text
        assert api.post("/api/owners/9999/console-invite", headers=headers).status_code == 404
        sign_in(api, emailed_link(db, settings, "ada@example.org"), settings)
