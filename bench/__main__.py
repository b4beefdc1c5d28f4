"""`make bench`: every benchmark's figures in one table.

Each module exposes ``run() -> list[tuple[str, str]]``; figures are printed, never asserted.
Run some alone with ``python -m bench <name> [<name> …]``, e.g. ``python -m bench sync``;
options after the names go to the benchmarks that take them (``run(argv)``), e.g.
``python -m bench scale --calendars 5000``.
"""

from __future__ import annotations

import importlib
import sys
import time

from rich.console import Console
from rich.table import Table

BENCHMARKS = (
    "availability",
    "sync",
    "first_sync",
    "api_load",
    "reschedule",
    "google_sync",
    "scale",
)


def main(argv: list[str]) -> None:
    console = Console()
    split = next((n for n, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split], argv[split:]
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        console.print(f"[bold]bench.{name}[/bold] running…", style="dim")
        started = time.perf_counter()
        rows = module.run(options) if options else module.run()
        table = Table(
            "figure", "value", title=f"bench.{name} ({time.perf_counter() - started:.0f} s)"
        )
        for label, value in rows:
            table.add_row(label, value)
        console.print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
