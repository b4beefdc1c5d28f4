"""iCalendar text: busy extraction, event editing, session events, time zones, scanning."""
