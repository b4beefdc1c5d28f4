"""Benchmark: the first sync of one 2,000-event Xandikos calendar as whole processes: calsync
now, calsync before the speed-up (issue 14), and vdirsyncer 0.21 as a peer.

The calendar is ``bench.sync``'s (same seed, same mix of events and series), seeded into a
Xandikos child process the same way. Each contender runs ``RUNS`` times as a fresh process,
timed from its start to its exit (interpreter, imports and all), against the same server in
the same run; the median is shown.

- calsync now: ``bench.sync``'s worker process (``Poller.sync_now`` of the calendar, a new
  SQLite database each time, the way ``calsync sync`` runs it): fetch, expand, store.
- calsync before: the same process with the ``calsync`` package of commit ``BASELINE`` (the
  commit this work started from) first on ``PYTHONPATH``, exported with ``git archive``. It is
  skipped, with a note, outside a git checkout.
- vdirsyncer: ``vdirsyncer sync`` of a pair (the CalDAV calendar → a new local folder of
  ``.ics`` files), which fetches and stores but does not expand anything; the
  ``vdirsyncer discover`` it needs once before is run first and not timed. It is skipped, with a
  note, when no vdirsyncer is found: install it apart from calsync's environment, e.g.
  ``python3 -m venv /tmp/vdirsyncer-venv && /tmp/vdirsyncer-venv/bin/pip install
  'vdirsyncer==0.21.*'``, and name it with ``VDIRSYNCER=/tmp/vdirsyncer-venv/bin/vdirsyncer``
  (else ``vdirsyncer`` on ``PATH``, else that venv path, is used).

Run: ``python -m bench first_sync``. Figures only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import median
from zoneinfo import ZoneInfo

from bench.sync import EVENTS, ROOT, ZONE, Served, connect, make_events, say, seed_xandikos, serving

BASELINE = "2768c7f"
RUNS = 3
Rows = list[tuple[str, str]]


def _env(first: Path | None = None) -> dict[str, str]:
    paths = [str(first)] if first else []
    paths += [str(ROOT), os.environ.get("PYTHONPATH", "")]
    return os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, paths))}


def _timed(argv: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout


def calsync_runs(served: Served, workdir: Path, package_root: Path | None) -> list[float]:
    """Whole-process first syncs by calsync (``package_root``: another calsync package)."""
    env = _env(package_root)
    check = "import calsync, sys; sys.stdout.write(calsync.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", check], env=env, cwd=workdir, capture_output=True, text=True
    ).stdout
    if package_root is not None and not where.startswith(str(package_root)):
        raise RuntimeError(f"the old calsync was not picked up: {where}")
    code = "import sys; from bench.sync import worker; worker(sys.argv[1:])"
    times = []
    for run in range(RUNS):
        label = "before" if package_root else "now"
        calsync = connect(served, workdir / f"calsync-{label}-{run}.db")
        try:
            argv = [sys.executable, "-c", code, "sync", calsync.database_url]
            seconds, out = _timed([*argv, str(calsync.connection_id)], env, workdir)
        finally:
            calsync.db.dispose()
        report = json.loads(out.strip().splitlines()[-1])
        if report["error"] or report["upserted"] != EVENTS:
            raise RuntimeError(f"calsync ({label}) first sync went wrong: {report}")
        times.append(seconds)
    return times


def export_baseline(target: Path) -> Path | None:
    """The calsync package of ``BASELINE`` under ``target``; None outside a git checkout."""
    if shutil.which("git") is None:
        return None
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BASELINE, "calsync"], capture_output=True, check=False
    )
    if archive.returncode != 0:
        return None
    target.mkdir()
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def find_vdirsyncer() -> str | None:
    for candidate in (
        os.environ.get("VDIRSYNCER"),
        shutil.which("vdirsyncer"),
        "/tmp/vdirsyncer-venv/bin/vdirsyncer",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def vdirsyncer_runs(program: str, served: Served, workdir: Path) -> list[float]:
    """Whole-process ``vdirsyncer sync`` runs, each into a new local folder and status."""
    times = []
    for run in range(RUNS):
        home = workdir / f"vdirsyncer-{run}"
        (home / "local").mkdir(parents=True)
        config = home / "config"
        config.write_text(
            "[general]\n"
            f'status_path = "{home / "status"}/"\n'
            "[pair bench]\n"
            'a = "bench_remote"\nb = "bench_local"\ncollections = null\n'
            'conflict_resolution = "a wins"\n'
            "[storage bench_remote]\n"
            f'type = "caldav"\nurl = "{served.calendar_url}"\n'
            "[storage bench_local]\n"
            f'type = "filesystem"\npath = "{home / "local"}/"\nfileext = ".ics"\n'
        )
        env = os.environ | {"VDIRSYNCER_CONFIG": str(config)}
        # `discover` (once per pair, as its users run it) only records the pair; not timed.
        _timed([program, "discover", "bench"], env, home)
        seconds, _ = _timed([program, "sync"], env, home)
        stored = len(list((home / "local").glob("*.ics")))
        if stored != EVENTS:
            raise RuntimeError(f"vdirsyncer stored {stored} of {EVENTS} events")
        times.append(seconds)
    return times


def _line(times: list[float]) -> str:
    mid = median(times)
    return (
        f"{mid:.2f} s = {EVENTS / mid:,.0f} events/s "
        f"(median of {len(times)}, range {min(times):.2f}-{max(times):.2f} s)"
    )


def run() -> Rows:
    today = datetime.now(ZoneInfo(ZONE)).date()
    events = make_events(today)
    rows: Rows = []
    with tempfile.TemporaryDirectory(prefix="calsync-first-") as tmp:
        base = Path(tmp)
        say(f"first_sync: writing {EVENTS:,} events into Xandikos")
        with serving(seed_xandikos, base, events) as served:
            say("first_sync: calsync now")
            now = calsync_runs(served, base, None)
            rows.append(
                ("calsync now: whole process, first sync (fetch, expand, store)", _line(now))
            )
            old = export_baseline(base / "baseline")
            if old is None:
                rows.append(("calsync before", f"skipped: commit {BASELINE} not available (git)"))
            else:
                say(f"first_sync: calsync at {BASELINE}")
                before = calsync_runs(served, base, old)
                rows += [
                    (f"calsync before ({BASELINE}): whole process, first sync", _line(before)),
                    ("calsync: before ÷ now", f"{median(before) / median(now):.2f}× faster now"),
                ]
            program = find_vdirsyncer()
            if program is None:
                rows.append(
                    (
                        "vdirsyncer 0.21 (peer)",
                        "skipped: vdirsyncer not installed (see bench/first_sync.py or the "
                        "README's Operations section for how to install it apart)",
                    )
                )
            else:
                say("first_sync: vdirsyncer")
                version = subprocess.run(
                    [program, "--version"], capture_output=True, text=True, check=False
                ).stdout.strip()
                try:
                    peer = vdirsyncer_runs(program, served, base)
                except RuntimeError as exc:
                    rows.append((f"{version} (peer)", f"failed: {str(exc)[-300:]}"))
                else:
                    rows += [
                        (
                            f"{version} (peer): whole process, first sync (fetch, store)",
                            _line(peer),
                        ),
                        ("vdirsyncer ÷ calsync now", f"{median(peer) / median(now):.2f}×"),
                    ]
    return rows
