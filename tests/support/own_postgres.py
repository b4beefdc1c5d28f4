"""A PostgreSQL server of the test's own, which the test may restart.

The machine's shared PostgreSQL (CALSYNC_TEST_POSTGRES_URL) is never restarted: other tests
run against it. A test that needs a database restart gets a throwaway cluster instead:
``initdb`` into a temporary directory, started with ``pg_ctl`` on a free loopback port with
trust authentication, restarted with ``pg_ctl restart`` (what ``pg_ctlcluster … restart`` does
on a Debian server), and removed afterwards.

``initdb`` refuses to run as root, so as root the binaries run as the ``postgres`` user
(``runuser``), in a directory that user owns. Where the binaries are missing the fixture skips,
unless CALSYNC_TEST_REQUIRE_POSTGRES=1 (as in CI), where it fails.

Fixture: ``own_postgres`` (one cluster per test that asks for it).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.support.servers import free_port

_RUN_AS = "postgres"  # who runs the server when the tests run as root


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/N/bin), or
    the one holding ``pg_ctl`` on PATH; None when there is none."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


@dataclass
class OwnPostgres:
    """A running cluster: ``url`` for calsync, ``restart()`` for the fault."""

    bin: Path
    datadir: Path
    port: int
    as_user: str | None  # run the binaries as this user (when the tests run as root)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/calsync"

    @property
    def conninfo(self) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    @property
    def log(self) -> Path:
        return self.datadir.parent / "server.log"

    def _run(self, *argv: str, timeout: float = 60) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_user:
            command = ["runuser", "-u", self.as_user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",  # a throwaway cluster: fsync buys nothing here
        )
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            # The socket goes in the data directory: /var/run/postgresql belongs to the
            # machine's own server.
            f"unix_socket_directories = '{self.datadir}'",
            "fsync = off",
            "full_page_writes = off",
            "max_connections = 200",
        ]
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-w", "start")
        self._wait_until_answering()

    def restart(self) -> None:
        """Restart the server as an operator would: every connection is cut (fast shutdown),
        then the server comes back on the same port with the same data."""
        self._run(
            "pg_ctl", "-D", str(self.datadir), "-l", str(self.log), "-m", "fast", "-w", "restart"
        )
        self._wait_until_answering()

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop")

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.conninfo, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str = "calsync") -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')


def _unavailable(reason: str) -> None:
    if os.environ.get("CALSYNC_TEST_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A fresh PostgreSQL cluster with an empty ``calsync`` database, for this test alone."""
    binaries = postgres_bin()
    if binaries is None or not (binaries / "initdb").exists():
        _unavailable("PostgreSQL's initdb/pg_ctl are not installed (Debian: postgresql)")
        raise AssertionError("unreachable")
    as_user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(_RUN_AS)
        except KeyError:
            _unavailable(f"running as root, and there is no {_RUN_AS!r} user to run initdb as")
        as_user = _RUN_AS
    # Not pytest's tmp_path: as root that is private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="calsync-own-pg-"))
    if as_user:
        shutil.chown(home, as_user, as_user)
    server = OwnPostgres(binaries, home / "data", free_port(), as_user)
    try:
        server.init()
        server.start()
        server.create_database()
        yield server
    finally:
        # Already stopped, or never started: nothing to clean up then.
        with contextlib.suppress(Exception):
            server.stop()
        shutil.rmtree(home, ignore_errors=True)
