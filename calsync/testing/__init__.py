"""Stand-ins for outside services, used by the tests and by ``calsync demo``; never by the
service itself. They live in the package (not in ``tests/``) so the demo can start them
from an installed calsync."""
