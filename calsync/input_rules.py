"""What calsync takes from outside as text and numbers: the one rule, checked where input
arrives (API bodies, paths and queries, the manage page's forms, CLI options), so that bad
input is a 422 naming its field (a message on the page, a CLI error) and never reaches the
database, which would refuse it with a 500 (PostgreSQL refuses NUL in text and integers past
32 bits; SQLite would store them silently).

- One-line text (names, emails, slugs, keys, zone names, URLs, ids): no control character at
  all: C0 (U+0000–U+001F, TAB and line breaks included), DEL, C1 (U+0080–U+009F), and the
  Unicode line and paragraph separators.
- Multi-line text (reasons, policy text): TAB, LF and CR are kept; every other control
  character is refused as above.
- Anywhere: lone UTF-16 surrogates (which JSON's ``\\ud800`` escapes can carry) are refused:
  they are no text and cannot be stored as UTF-8.
- Integers stored in or compared with an ``Integer`` column fit its 32 bits (PostgreSQL's
  ``integer``); counts and minutes have tighter bounds where they are declared.

Text is refused, never silently stripped: what a person wrote is kept whole or not at all, and
the message names the first character at fault by its code point, not the input itself.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from calsync.limits import MAX_INT32, text_problem


def one_line(value: str) -> str:
    """``value``, or ValueError naming its first control character."""
    problem = text_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def multi_line(value: str) -> str:
    """``value``, or ValueError naming its first control character other than TAB/LF/CR."""
    problem = text_problem(value, multi_line=True)
    if problem:
        raise ValueError(problem)
    return value


OneLine = Annotated[str, AfterValidator(one_line)]
MultiLine = Annotated[str, AfterValidator(multi_line)]
# Ids and counts as stored in Integer columns.
Int32Id = Annotated[int, Field(ge=1, le=MAX_INT32)]
Count = Annotated[int, Field(ge=0, le=MAX_INT32)]
