"""The owner's two faces word every refusal of the change engine from one set of sentences,
each telling the owner how to act in its own terms."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from calsync.bookings.plan import Refusal, RefusalKind
from calsync.cli.messages import refusal_line
from calsync.web.errors import change_words

EVERY_FIELD = dict(
    position=2,
    other_position=3,
    at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
    why_text="outside the hours",
    zone="Europe/Berlin",
    event_type="coaching",
    policy_reason="changes close 24 hours before",
)


@pytest.mark.parametrize("kind", list(RefusalKind), ids=lambda kind: kind.value)
def test_every_refusal_reads_as_a_sentence_on_both_faces(kind: RefusalKind) -> None:
    refusal = Refusal(kind, **EVERY_FIELD)  # type: ignore[arg-type]
    for words in (refusal_line(refusal), change_words(refusal)):
        assert words and "None" not in words and "{" not in words


@pytest.mark.parametrize("kind", [RefusalKind.OVERLAP, RefusalKind.NOT_OFFERED])
def test_each_face_names_its_own_way_past_the_checks(kind: RefusalKind) -> None:
    refusal = Refusal(kind, **EVERY_FIELD)  # type: ignore[arg-type]
    assert "--force" in refusal_line(refusal) and '"force"' not in refusal_line(refusal)
    assert '"force": true' in change_words(refusal) and "--force" not in change_words(refusal)


def test_the_command_line_names_its_options_and_the_api_its_fields() -> None:
    assert "--session" in refusal_line(Refusal(RefusalKind.NO_SESSIONS))
    assert "--reason" in refusal_line(Refusal(RefusalKind.REASON_REQUIRED))
    assert "expected_version" in change_words(Refusal(RefusalKind.STALE))
    assert "idempotency_key" in change_words(Refusal(RefusalKind.REPLAY_MISMATCH))
