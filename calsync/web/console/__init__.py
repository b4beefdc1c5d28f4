"""The owner's console under ``/console``: sign-in, calendars, email problems (and the pages
other modules add: event types, bookings). See ARCHITECTURE.md, "The owner's console"."""
