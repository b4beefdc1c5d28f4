"""``calsync init``, ``secret`` and ``owner …``."""

from __future__ import annotations

import secrets as random_secrets
from typing import Annotated

import typer
from rich.table import Table

from calsync.cli.common import JsonOption, app, out, owner_app, print_json, state


@app.command()
def init() -> None:
    """Create the database, or upgrade it to this version of calsync."""
    db = state.db(migrated=False)
    revision = db.migrate()
    out.print(f"Database {db.safe_url} is ready (schema {revision}).")


@app.command()
def secret() -> None:
    """Print a new random secret_key for calsync.toml."""
    out.print(random_secrets.token_urlsafe(32))


@owner_app.command("add")
def owner_add(
    name: Annotated[str, typer.Option(help="The owner's name, as customers see it.")],
    email: Annotated[str, typer.Option(help="The owner's email address.")],
    timezone: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Berlin.")],
    as_json: JsonOption = False,
) -> None:
    """Add an owner."""
    from calsync.store.models import owner_page_url
    from calsync.sync import connections as services

    owner = services.add_owner(state.db(), name=name, email=email, timezone=timezone)
    url = owner_page_url(state.settings.base_url, owner)
    if as_json:
        print_json(
            {
                "id": owner.id,
                "name": owner.name,
                "email": owner.email,
                "slug": owner.slug,
                "page_url": url,
            }
        )
    else:
        out.print(
            f"Added owner {owner.name} <{owner.email}> (id {owner.id}), booking page {url} "
            "(it lists the event types whose page is on)."
        )


@owner_app.command("list")
def owner_list(as_json: JsonOption = False) -> None:
    """List owners."""
    from calsync.store.models import owner_page_url
    from calsync.sync import connections as services

    owners = services.list_owners(state.db())
    rows = [
        {
            "id": o.id,
            "name": o.name,
            "email": o.email,
            "timezone": o.timezone,
            "slug": o.slug,
            "page_url": owner_page_url(state.settings.base_url, o),
        }
        for o in owners
    ]
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "email", "timezone", "slug", "booking page")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    out.print(table)


@owner_app.command("invite")
def owner_invite(
    email: Annotated[str, typer.Argument(help="The owner's email address.")],
    as_json: JsonOption = False,
) -> None:
    """Email an owner a one-time sign-in link to their web console (/console)."""
    from calsync.access import sign_in as console_links

    sent = console_links.invite(state.db(), state.settings, email)
    if as_json:
        print_json(
            {
                "owner_id": sent.owner_id,
                "email": sent.email,
                "expires_at": sent.expires_at.isoformat(),
            }
        )
        return
    minutes = console_links.LINK_MINUTES
    out.print(
        f"Sign-in link for {sent.email} queued in the outbox; it works once, for {minutes} "
        "minutes. `calsync serve` (or `calsync worker`) sends it; later the owner asks for a new "
        "link on /console/sign-in."
    )
