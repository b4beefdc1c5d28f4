"""Keeping calsync's mirror of the owners' calendars current. It knows calendars, not bookings.

Owners and calendar connections (``connections``), opening a provider for a stored connection
(``providers``), the mirror of remote calendars (``mirror``) and the poller with its database
leases (``poller``).
"""
