"""``calsync serve``, ``web`` and ``demo``: the long-running processes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.markup import escape

from calsync.cli.common import app, out, progress_note, state


@app.command()
def demo(
    once: Annotated[bool, typer.Option("--once", help="Seed, sync, print, and exit.")] = False,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its files.")] = Path(
        "demo-data"
    ),
    port: Annotated[int, typer.Option(help="Port of the web tier.")] = 8000,
    google_fake: Annotated[
        bool,
        typer.Option(
            "--google-fake",
            help="Use a fake Google Calendar server on loopback instead of the CalDAV server "
            "(in memory: every run starts afresh, in <data-dir>/google).",
        ),
    ] = False,
) -> None:
    """Run everything embedded on this machine: a CalDAV server (or a fake Google Calendar), a
    database, the poller."""
    if google_fake:
        from calsync.demo.google import run_google_demo

        # A folder of its own: this demo's database is thrown away on every run, the CalDAV
        # demo's is kept.
        run_google_demo(data_dir / "google", once=once, console=out, port=port)
        return
    from calsync.demo.caldav import run_demo

    run_demo(data_dir, once=once, console=out, port=port)


Host = Annotated[
    str | None,
    typer.Option(help="Address to listen on [default: base_url's host; 127.0.0.1 for https]."),
]
Port = Annotated[
    int | None,
    typer.Option(help="Port to listen on [default: base_url's port; 8000 for https]."),
]


@dataclass(frozen=True)
class ListenAddress:
    host: str
    port: int
    note: str | None  # what the owner should know about this address, if anything


def listen_address(base_url: str, host: str | None, port: int | None) -> ListenAddress:
    """Where ``serve``/``web`` listen: base_url's host and port unless told otherwise.

    calsync speaks plain HTTP, so an https base_url means a TLS proxy in front: then the default
    is 127.0.0.1:8000 for the proxy to forward to. Otherwise links (built from base_url) reach
    calsync only if it listens where they point, so a different --host/--port gets a warning.
    """
    url = urlsplit(base_url)
    if url.scheme == "https":
        chosen = ListenAddress(host or "127.0.0.1", port or 8000, None)
        if host is None and port is None:
            chosen = replace(
                chosen,
                note=f"base_url is {base_url}: calsync serves plain HTTP on "
                f"{chosen.host}:{chosen.port} for the TLS proxy in front to forward to "
                "(--host/--port change this)",
            )
        return chosen
    own_host, own_port = url.hostname or "127.0.0.1", url.port or 80
    chosen = ListenAddress(host or own_host, own_port if port is None else port, None)
    if (chosen.host, chosen.port) != (own_host, own_port):
        chosen = replace(
            chosen,
            note=f"warning: links point at base_url {base_url}, but calsync listens on "
            f"{chosen.host}:{chosen.port}; they work only if a proxy forwards "
            f"{own_host}:{own_port} here (or set base_url in calsync.toml)",
        )
    return chosen


def _run(host: str | None, port: int | None, *, run_poller: bool) -> None:
    from calsync.web.server import run_server

    address = listen_address(state.settings.base_url, host, port)
    if address.note:
        progress_note(escape(address.note))
    run_server(state.settings, host=address.host, port=address.port, run_poller=run_poller)


@app.command()
def serve(host: Host = None, port: Port = None) -> None:
    """Everything in one process: the web tier, the poller and the outbox (emails)."""
    _run(host, port, run_poller=True)


@app.command()
def web(host: Host = None, port: Port = None) -> None:
    """The web tier alone (stateless; run `calsync worker` processes beside it)."""
    _run(host, port, run_poller=False)
