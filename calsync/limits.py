"""Bounds of what the database holds, shared by every edge that takes numbers (API, CLI).

Kept apart from ``input_rules`` (which needs pydantic) so the CLI can name the bound at
start-up without loading pydantic.
"""

#: The largest value of an INTEGER column on PostgreSQL (SQLite holds more).
MAX_INT32 = 2**31 - 1
