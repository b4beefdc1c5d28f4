"""`python -m calsync`: the same as the `calsync` command."""

from calsync.sync.cli import main

main()
