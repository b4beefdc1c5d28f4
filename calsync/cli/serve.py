"""``calsync serve``, ``web`` and ``demo``: the long-running processes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from calsync.cli.common import app, out, state


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


Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Everything in one process: the web tier, the poller (and later the outbox)."""
    from calsync.web.server import run_server

    run_server(state.settings, host=host, port=port, run_poller=True)


@app.command()
def web(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """The web tier alone (stateless; run `calsync worker` processes beside it)."""
    from calsync.web.server import run_server

    run_server(state.settings, host=host, port=port, run_poller=False)
