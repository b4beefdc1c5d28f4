"""What input calsync accepts, as plain Python: the bound of a stored number and the text rule
(written out in ``calsync.input_rules``, which wraps both as pydantic types for the API).

Kept apart from ``input_rules`` so the CLI can check its arguments at start-up without loading
pydantic.
"""

#: The largest value of an INTEGER column on PostgreSQL (SQLite holds more).
MAX_INT32 = 2**31 - 1

MULTI_LINE_KEPT = frozenset("\t\n\r")
_LINE_SEPARATORS = frozenset("\u2028\u2029")


def _refused(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF


def text_problem(value: str, *, multi_line: bool = False) -> str | None:
    """Why ``value`` is refused by the rule above, or None when it is fine."""
    for char in value:
        if multi_line and char in MULTI_LINE_KEPT:
            continue
        if _refused(char) or (not multi_line and char in _LINE_SEPARATORS):
            if 0xD800 <= ord(char) <= 0xDFFF:
                what = "a lone surrogate"
            elif char in _LINE_SEPARATORS:
                what = "a line break"
            else:
                what = "a control character"
            where = " (only tab and line breaks are allowed)" if multi_line else ""
            return f"must not contain {what} (U+{ord(char):04X}){where}"
    return None
