"""Keeping calsync's picture of the owner's calendars current, and acting on it.

The database (``models``, ``db``, ``migrations``), the mirror of remote calendars (``mirror``),
the poller with its database leases (``poller``), the services the CLI and API call
(``services``) and the process entry points (``cli``, ``demo``).
"""
