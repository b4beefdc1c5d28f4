"""The dependency rule of ARCHITECTURE.md, checked on the source: imports point inwards.

A small AST walk over ``calsync/**/*.py`` (every import, including those inside functions and
``TYPE_CHECKING`` blocks): each module belongs to the layer named by its first package under
``calsync``, and a layer may not import the layers listed against it in ``FORBIDDEN``.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import calsync

SOURCE = Path(calsync.__file__).parent
ROOT = SOURCE.parent

UPPER = {"sync", "bookings", "payments", "access", "web", "cli", "demo", "worker"}
# layer -> the layers it must not import. `cli` and `demo` are the composition roots (with
# `web`, the only places that wire everything together); `__main__` only starts the cli.
FORBIDDEN: dict[str, set[str]] = {
    "config": UPPER,
    "secretbox": UPPER,
    "token_hash": UPPER,
    "calendars": UPPER,
    "notify": UPPER,
    "store": UPPER,
    "observe": UPPER,
    "sync": UPPER - {"sync"},
    "bookings": {"web", "cli", "demo", "worker"},
    "payments": {"web", "cli", "demo", "worker"},
    # The console's sign-in links and sessions: above sync (owners), below web.
    "access": {"bookings", "payments", "web", "cli", "demo", "worker"},
    "worker": {"web", "cli", "demo"},
    "web": {"cli", "demo"},
    "testing": {"web", "cli", "demo"},
}

# (module, imported module) pairs that break the rule knowingly; each says why.
ALLOWED: dict[tuple[str, str], str] = {
    ("calsync.sync.cli", "calsync.cli.main.main"): "the console script of installs made before the "
    "layout move names calsync.sync.cli:main; a shim keeps it working until reinstalled",
}


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line} imports {self.imported}: {self.rule}"


def layer_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "calsync":
        return None
    return parts[1] if len(parts) > 1 else "calsync"


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every calsync module ``module`` imports, with its line (``from a import b`` counts as
    ``a.b``, which is the module b where b is one, and an attribute of a otherwise)."""
    found: list[tuple[int, str]] = []
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "calsync"]


def check_source(path: str, source: str) -> list[Violation]:
    """The rule's violations in one file, ``path`` relative to the repository root."""
    relative = Path(path).with_suffix("")
    is_package = relative.name == "__init__"
    module = ".".join(relative.parent.parts if is_package else relative.parts)
    layer = layer_of(module)
    if layer is None or layer == "__main__":
        return []
    violations = []
    for line, imported in imported_modules(ast.parse(source, path), module, is_package):
        target = layer_of(imported)
        if target is None or target == layer or (module, imported) in ALLOWED:
            continue
        if layer == "policy":
            rule = "policy imports nothing of calsync"
        elif target in FORBIDDEN.get(layer, set()):
            rule = f"{layer} must not import {target}"
        elif target in {"cli", "demo"} and layer not in {"cli", "demo"}:
            rule = "only cli and demo import cli or demo"
        elif target == "web" and layer not in {"cli", "demo"}:
            rule = "web is imported only by cli and demo"
        else:
            continue
        violations.append(Violation(path, line, imported, rule))
    return violations


def check_tree() -> list[Violation]:
    violations = []
    for file in sorted(SOURCE.rglob("*.py")):
        relative = file.relative_to(ROOT).as_posix()
        violations += check_source(relative, file.read_text())
    return violations


def test_imports_point_inwards() -> None:
    violations = check_tree()
    assert not violations, "imports that run against ARCHITECTURE.md's rule:\n" + "\n".join(
        map(str, violations)
    )


def test_the_check_reads_every_layer() -> None:
    layers = {
        layer_of(".".join(f.relative_to(ROOT).with_suffix("").parts)) for f in SOURCE.rglob("*.py")
    }
    assert {
        "policy",
        "calendars",
        "store",
        "sync",
        "bookings",
        "notify",
        "web",
        "cli",
        "demo",
        "worker",
    } <= layers


def test_a_lower_layer_importing_an_upper_one_is_named() -> None:
    bad = "import json\n\nfrom calsync.bookings.changes import request_change\n"
    [violation] = check_source("calsync/sync/poller.py", bad)
    assert str(violation) == (
        "calsync/sync/poller.py:3 imports calsync.bookings.changes.request_change: "
        "sync must not import bookings"
    )


def test_every_form_of_import_is_seen() -> None:
    source = (
        "import calsync.web.app\n"
        "from calsync import cli\n"
        "from ..web import errors\n"
        "def later():\n"
        "    from calsync.worker import start_background\n"
    )
    found = check_source("calsync/store/db.py", source)
    assert [(v.line, v.imported) for v in found] == [
        (1, "calsync.web.app"),
        (2, "calsync.cli"),
        (3, "calsync.web.errors"),
        (5, "calsync.worker.start_background"),
    ]


def test_policy_imports_nothing_of_calsync() -> None:
    [violation] = check_source("calsync/policy/hours.py", "from calsync.config import Settings")
    assert violation.rule == "policy imports nothing of calsync"


def test_web_is_for_the_composition_roots_only() -> None:
    assert check_source("calsync/cli/serve.py", "from calsync.web.server import run_server") == []
    [violation] = check_source(
        "calsync/bookings/links.py", "from calsync.web.manage.text import format_span"
    )
    assert violation.rule == "bookings must not import web"
