"""Where ``calsync`` started before the layout move (``calsync.cli.main`` now).

A console script installed before the move names ``calsync.sync.cli:main``; until ``make`` or
``pip install -e .`` rewrites it, this keeps the command working (a usage mistake gets its
usage message, not a ModuleNotFoundError traceback).
"""


def main() -> None:
    from calsync.cli.main import main as run

    run()
