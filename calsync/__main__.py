"""`python -m calsync`: the same as the `calsync` command."""

from calsync.cli.main import main

main()
