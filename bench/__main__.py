"""`make bench`: every benchmark's figures in one table.

Each module exposes ``run() -> list[tuple[str, str]]``; figures are printed, never asserted.
Run some alone with ``python -m bench <name> [<name> …]``, e.g. ``python -m bench sync``.
"""

from __future__ import annotations

import importlib
import sys
import time

from rich.console import Console
from rich.table import Table

BENCHMARKS = ("availability", "sync", "api_load", "reschedule", "google_sync")


def main(names: list[str]) -> None:
    console = Console()
    for name in names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        console.print(f"[bold]bench.{name}[/bold] running…", style="dim")
        started = time.perf_counter()
        rows = module.run()
        table = Table(
            "figure", "value", title=f"bench.{name} ({time.perf_counter() - started:.0f} s)"
        )
        for label, value in rows:
            table.add_row(label, value)
        console.print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
