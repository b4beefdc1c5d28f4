"""calsync: booking links that move events in the owner's own calendars.

Packages, innermost first: ``policy`` (pure rules); ``calendars`` (providers, iCalendar),
``store`` (database) and ``notify`` (invites, the outbox, delivery); ``sync`` (the poller and
the mirror); ``bookings`` (packages, links, event types, the change engine); ``worker`` (the
background tick); ``web``; and on top ``cli`` and ``demo``. See ARCHITECTURE.md.
"""

__version__ = "0.1.0"
