"""``/api/bookings/{id}/reschedule-requests`` and ``/resend-confirmation`` as a client uses
them: the real app on both databases, a real Radicale, the emails read from the outbox."""

from __future__ import annotations

import email
import email.policy
from urllib.parse import parse_qs, urlsplit

from calsync.config import Settings
from calsync.notify import outbox
from calsync.store.db import Database
from tests.support.world import at, next_monday
from tests.web.test_api_bookings import api, booking_body, page_path, problems

__all__ = ["api"]  # the fixture


def subjects(db: Database, settings: Settings, booking_id: str) -> list[tuple[str, str, str]]:
    """(recipient, subject, status) of the booking's emails, oldest first."""
    box = outbox.sealing_box(settings)
    found = []
    for row in outbox.list_messages(db):
        if row.booking_id != booking_id:
            continue
        message = email.message_from_bytes(outbox.unseal(box, row.raw), policy=email.policy.default)
        found.append((str(message["To"]), str(message["Subject"]), row.status.value))
    return found


def test_the_owner_requests_a_reschedule_lists_and_revokes_it(
    api, db: Database, settings: Settings
) -> None:
    monday = next_monday()
    booked = api.post("/api/bookings", json=booking_body(at(monday, 9), at(monday, 11))).json()
    booking_id = booked["id"]
    second = booked["sessions"][1]["id"]

    response = api.post(
        f"/api/bookings/{booking_id}/reschedule-requests",
        json={"session_ids": [second], "message": "The room is taken.", "days": 3},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["sessions"] == [2]
    query = parse_qs(urlsplit(made["url"]).query)
    assert query["session"] == [str(second)] and query["tab"] == ["reschedule"]
    page = api.get(page_path(settings, made["url"].split("?")[0]), params=query)
    assert page.status_code == 200 and "asked you to choose new times for Session 2" in page.text

    shown = api.get(f"/api/bookings/{booking_id}").json()
    line = shown["history"][-1]
    assert (line["action"], line["actor"], line["reason"]) == (
        "reschedule_requested",
        "owner",
        "The room is taken.",
    )
    assert line["details"]["sessions"] == [2]
    listed = api.get(f"/api/bookings/{booking_id}/reschedule-requests").json()
    assert [(r["id"], r["state"], r["sessions"]) for r in listed] == [(made["id"], "open", [2])]
    sent = subjects(db, settings, booking_id)
    assert (
        "Zoë Example <zoe@example.org>",
        "Coach Carter asks you to choose a new time: Coaching",
        "ready",
    ) in sent

    revoke = f"/api/bookings/{booking_id}/reschedule-requests/{made['id']}/revoke"
    assert api.post(revoke).status_code == 204
    assert api.get(f"/api/bookings/{booking_id}/reschedule-requests").json()[0]["state"] == (
        "revoked"
    )
    again = api.post(revoke)
    assert again.status_code == 400 and "already revoked" in again.json()["detail"]
    assert api.get(page_path(settings, made["url"].split("?")[0]), params=query).status_code == 410
    assert (
        api.post(f"/api/bookings/{booking_id}/reschedule-requests/99999/revoke").status_code == 404
    )


def test_bad_requests_are_refused_field_by_field_or_in_words(api) -> None:
    monday = next_monday()
    booked = api.post("/api/bookings", json=booking_body(at(monday, 9))).json()
    url = f"/api/bookings/{booked['id']}/reschedule-requests"
    first = booked["sessions"][0]["id"]
    assert set(problems(api.post(url, json={"session_ids": []}))) == {"session_ids"}
    assert set(problems(api.post(url, json={"session_ids": [first, first]}))) == {"session_ids"}
    assert set(problems(api.post(url, json={"session_ids": [first], "days": 0}))) == {"days"}
    other = api.post(url, json={"session_ids": [first + 1000]})
    assert other.status_code == 400 and "is not part of booking" in other.json()["detail"]
    missing = api.post("/api/bookings/nope/reschedule-requests", json={"session_ids": [1]})
    assert missing.status_code == 404


def test_the_confirmation_is_sent_again_and_recorded(api, db: Database, settings: Settings) -> None:
    monday = next_monday()
    booked = api.post("/api/bookings", json=booking_body(at(monday, 9), at(monday, 11))).json()
    booking_id = booked["id"]
    before = subjects(db, settings, booking_id)
    for _ in range(2):
        response = api.post(f"/api/bookings/{booking_id}/resend-confirmation")
        assert response.status_code == 202, response.text
        assert response.json() == {"sent_to": "zoe@example.org"}
    after = subjects(db, settings, booking_id)
    resent = after[len(before) :]
    assert (
        resent
        == [("Zoë Example <zoe@example.org>", "Your 2 sessions are confirmed: Coaching", "ready")]
        * 2
    )
    history = api.get(f"/api/bookings/{booking_id}").json()["history"]
    assert [h["action"] for h in history][-2:] == ["confirmation_resent"] * 2
    assert api.post(f"/api/bookings/{booking_id}/revoke").status_code == 204
    refused = api.post(f"/api/bookings/{booking_id}/resend-confirmation")
    assert refused.status_code == 400 and "relink" in refused.json()["detail"]
    assert api.post("/api/bookings/nope/resend-confirmation").status_code == 404
