"""Calendar providers (CalDAV, Google, in-memory) behind one small interface, and ICS reading.

Nothing here knows about the database or the web: a provider turns a remote calendar into
``CalendarItem`` values and ``Delta`` batches; ``busy`` turns iCalendar text into busy intervals.
"""
