"""The `calsync` command: a composition root that wires everything together (entry point: main)."""
