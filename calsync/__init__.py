"""calsync: booking links that move events in the owner's own calendars.

Packages, innermost first: ``policy`` (pure rules), ``calendars`` (providers and ICS reading),
``notify`` (invites and delivery), ``sync`` (database, poller, change engine, CLI) and ``web``.
"""

__version__ = "0.1.0"
