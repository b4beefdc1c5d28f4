"""A real ``calsync web`` process on a free port, for tests of what only a whole process
shows (its log lines, metrics shared between processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import SECRET_KEY
from tests.support.servers import free_port

ADMIN_KEY = "admin-key-for-the-process-tests-0123456789"


def process_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a calsync process on a SQLite file in ``tmp_path``; ``calsync init``
    has been run on it."""
    env = os.environ | {
        "CALSYNC_DATABASE_URL": f"sqlite:///{tmp_path}/calsync.db",
        "CALSYNC_SECRET_KEY": SECRET_KEY,
        "CALSYNC_ADMIN_API_KEY": ADMIN_KEY,
    }
    env |= extra
    command = [sys.executable, "-m", "calsync", "init"]
    subprocess.run(command, env=env, cwd=tmp_path, check=True, capture_output=True)
    return env


@dataclass
class WebProcess:
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(
        cls, env: dict[str, str], cwd: Path, name: str = "web", *, timeout: float = 30
    ) -> WebProcess:
        port = free_port()
        log = cwd / f"{name}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "calsync", "web", "--port", str(port)],
                env=env,
                cwd=cwd,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        web = cls(f"http://127.0.0.1:{port}", process, log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{web.base}/healthz").status_code == 200:
                    return web
            except httpx.HTTPError:
                time.sleep(0.1)
        web.kill()
        raise AssertionError(f"calsync web did not start: {log.read_text()}")

    def stop(self) -> str:
        """SIGTERM, wait, and return what the process wrote."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        return self.log.read_text(encoding="utf-8")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
