"""Folding and unfolding content lines: the one module every writer of iCalendar lines uses."""

from __future__ import annotations

import icalendar
import pytest

from calsync.calendars.ical.lines import fold, unfold, unfolded_lines


def octets(folded: str) -> list[int]:
    return [len(piece.encode("utf-8")) for piece in folded.split("\r\n")[:-1]]


@pytest.mark.parametrize("char", ["é", "€", "😀"])  # 2, 3 and 4 octets in UTF-8
@pytest.mark.parametrize("before", [72, 73, 74])
def test_a_multibyte_character_at_the_boundary_moves_down_whole(char: str, before: int) -> None:
    line = "DESCRIPTION:" + "a" * (before - 12) + char + "b" * 80
    folded = fold(line)
    assert all(size <= 75 for size in octets(folded))
    folded.encode("utf-8").decode("utf-8")  # every piece is whole UTF-8
    first = folded.split("\r\n")[0]
    # The character stays on the first line only if all its octets fit there.
    assert (char in first) == (before + len(char.encode("utf-8")) <= 75)
    assert unfold(folded) == line + "\r\n"


def test_lines_end_in_crlf_or_the_given_line_end() -> None:
    assert fold("X" * 75) == "X" * 75 + "\r\n"
    assert fold("X" * 76) == "X" * 75 + "\r\n X\r\n"
    assert fold("X" * 76, "\n") == "X" * 75 + "\n X\n"


def test_an_escape_is_never_split() -> None:
    assert fold("A" * 74 + "\\,") == "A" * 74 + "\r\n \\,\r\n"
    assert fold("A" * 74 + "^^") == "A" * 74 + "\r\n ^^\r\n"


def test_folded_text_reads_back_with_icalendar() -> None:
    summary = "Réunion 😀 " * 20 + "\\, fin"
    text = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:u\r\n"
        + fold(f"SUMMARY:{summary}")
        + "DTSTART:20260105T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    event = icalendar.Calendar.from_ical(text).walk("VEVENT")[0]
    assert str(event["SUMMARY"]) == summary.replace("\\,", ",")


def test_unfolded_lines_accept_crlf_lf_cr_and_tabs() -> None:
    text = "A:1\r\n 2\n\t3\rB:4\r\n"
    assert list(unfolded_lines(text)) == ["A:123", "B:4", ""]
    assert unfold(text) == "A:123\rB:4\r\n"
