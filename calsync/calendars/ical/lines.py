"""iCalendar content lines: folding and unfolding (RFC 5545 §3.1), in one place.

calsync writes lines in three places (event edits, iTIP invites, Google → iCalendar) and reads
folded text in more; all of them fold and unfold here. A line is folded at 75 octets, never
inside a UTF-8 sequence, and never between a backslash or caret and the character it escapes
(a TEXT escape ``\\,``, an RFC 6868 parameter escape ``^^``): RFC 5545 allows folding there,
but some clients unescape before they unfold. icalendar's ``parser.foldline`` is not used for
this reason (it splits escapes, and ASCII lines at 74 characters).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

__all__ = ["FOLD_OCTETS", "fold", "unfold", "unfolded_lines"]

FOLD_OCTETS = 75
# What folding never splits: an escape, or one character (so never a UTF-8 sequence).
_FOLD_UNIT = re.compile(r"[\\^].|.", re.DOTALL)
# A line break followed by the space or tab that marks a continuation; a lone CR counts too.
_FOLD_BREAK = re.compile(r"(?:\r\n|\n|\r)[ \t]")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


def fold(line: str, eol: str = "\r\n") -> str:
    """One content line folded at 75 octets, each piece ended by ``eol`` (CRLF by default;
    an edit keeps the line ends of the text it edits)."""
    pieces: list[str] = []
    current, size = "", 0
    for unit in _FOLD_UNIT.findall(line):
        octets = len(unit.encode("utf-8"))
        if current and size + octets > FOLD_OCTETS:
            pieces.append(current)
            current, size = " ", 1  # a continuation line starts with one space
        current += unit
        size += octets
    pieces.append(current)
    return eol.join(pieces) + eol


def unfold(text: str) -> str:
    """``text`` with every fold (a line break, then a space or tab) undone."""
    return _FOLD_BREAK.sub("", text)


def unfolded_lines(text: str) -> Iterator[str]:
    """The content lines of ``text``, unfolded, without their line ends."""
    current: list[str] = []
    for raw in _LINE_BREAK.split(text):
        if raw[:1] in (" ", "\t") and current:
            current.append(raw[1:])
            continue
        if current:
            yield "".join(current)
        current = [raw]
    if current:
        yield "".join(current)
