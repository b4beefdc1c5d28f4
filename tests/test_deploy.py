"""The example systemd units in deploy/: each parses, starts a calsync command that exists,
and (where systemd-analyze is installed) passes ``systemd-analyze verify`` without a remark."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).parent.parent / "deploy"
UNITS = sorted(DEPLOY.glob("*.service"))
INSTALLED = "/opt/calsync/.venv/bin/calsync"


def test_there_are_units_for_one_process_and_for_web_and_workers() -> None:
    assert {unit.name for unit in UNITS} == {
        "calsync.service",
        "calsync-web@.service",
        "calsync-worker@.service",
    }


@pytest.mark.parametrize("unit", UNITS, ids=lambda unit: unit.name)
def test_a_unit_has_the_keys_a_service_needs(unit: Path) -> None:
    # systemd allows a key more than once (Environment=); configparser must too.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(unit)
    assert parser["Unit"]["Description"]
    service = parser["Service"]
    for key in ("Type", "User", "ExecStart", "KillSignal", "TimeoutStopSec", "Restart"):
        assert service.get(key), f"{unit.name}: [Service] {key} is missing"
    assert parser["Install"]["WantedBy"] == "multi-user.target"
    command = service["ExecStart"].split()
    assert command[0] == INSTALLED
    assert command[1] in {"serve", "web", "worker"}
    # The command and its options exist (a unit naming a removed option would not start).
    help_text = subprocess.run(
        [sys.executable, "-m", "calsync", command[1], "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for option in (part for part in command[2:] if part.startswith("--")):
        assert option in help_text, f"{unit.name}: calsync {command[1]} has no {option}"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_finds_nothing(tmp_path: Path) -> None:
    calsync = Path(sys.executable).parent / "calsync"
    for unit in UNITS:
        # The paths of an installed calsync, pointed at this one so verify finds the program.
        text = unit.read_text().replace(INSTALLED, str(calsync))
        (tmp_path / unit.name).write_text(text)
    names = [str(tmp_path / unit.name) for unit in UNITS]
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names], capture_output=True, text=True
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
