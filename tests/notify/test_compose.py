"""The emails of a booking's life: booked (3 sessions), 2 moved, 1 cancelled; four recipients.

Messages are checked as a receiver sees them: serialized, parsed back, every calendar part
read by two parsers, and finally applied in order to a fresh calendar on a real CalDAV server
by a client that keeps only higher SEQUENCEs.
"""

from __future__ import annotations

import email
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage, Message
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calsync.config import MailSettings
from calsync.notify.compose import compose, organizer_for
from calsync.notify.transport import message_bytes
from calsync.notify.values import (
    ActedBy,
    Notice,
    NoticeKind,
    Person,
    Recipient,
    Role,
    SessionNotice,
)
from tests.support.itip_client import apply_message, calendar_parts, check_itip, stored_events
from tests.support.servers import ServerProcess

NY = ZoneInfo("America/New_York")
NB = "\u202f"  # Babel (CLDR) en_US: a narrow no-break space before AM/PM
NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LINK = "https://book.example.org/m/Secret-Token-0123456789abcdef"
OWNER = Person("coach@example.org", "Coach Carter")
CUSTOMER = Person("zoe@example.org", "Zoë Ng")
STAKEHOLDERS = (Person("boss@example.org", "Bo Boss"), Person("mum@example.org", "Mum"))
RECIPIENTS = (
    Recipient("zoe@example.org", "Zoë Ng", Role.CUSTOMER, "Europe/Berlin"),
    Recipient("coach@example.org", "Coach Carter", Role.OWNER, "America/New_York"),
    Recipient("boss@example.org", "Bo Boss", Role.STAKEHOLDER, "Asia/Tokyo"),
    Recipient("mum@example.org", "Mum", Role.STAKEHOLDER, "UTC"),
)
MAIL = MailSettings(from_address="calsync@book.example.org")
# Every header a message has, and nothing a name could smuggle in.
HEADERS = (
    *("subject", "from", "to", "reply-to", "date", "message-id", "auto-submitted"),
    *("mime-version", "content-type"),
)


def at(day: int, hour: int = 10, minute: int = 30) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=NY)


def booked_session(position: int) -> SessionNotice:
    start = at(2 + position)  # Dec 3, 4, 5
    return SessionNotice(
        f"s{position}-bk7@calsync", 0, position, start, start + timedelta(hours=1),
        "CONFIRMED", None, None, "America/New_York",
    )  # fmt: skip


def moved(item: SessionNotice, sequence: int) -> SessionNotice:
    week = timedelta(days=7)
    return replace(
        item,
        sequence=sequence,
        start=item.start + week,
        end=item.end + week,
        previous_start=item.start,
        previous_end=item.end,
    )


def notice(kind: NoticeKind, sessions: tuple[SessionNotice, ...], **changes: object) -> Notice:
    values: dict[str, object] = {
        "kind": kind,
        "acted_by": ActedBy.CUSTOMER,
        "booking_id": "bk7",
        "title": "Coaching",
        "owner": OWNER,
        "customer": CUSTOMER,
        "stakeholders": STAKEHOLDERS,
        "sessions": sessions,
        "package_size": 3,
        "reason": None,
        "manage_url": LINK,
        "fee_text": None,
        "change_key": f"change-{kind}",
    }
    values.update(changes)
    return Notice(**values)  # type: ignore[arg-type]


S1, S2, S3 = (booked_session(p) for p in (1, 2, 3))
BOOKED = notice(NoticeKind.BOOKED, (S1, S2, S3), change_key="booking-bk7")
RESCHEDULED = notice(
    NoticeKind.RESCHEDULED, (moved(S1, 1), moved(S2, 1)), reason="Travelling <that> week"
)
CANCELLED = notice(
    NoticeKind.CANCELLED,
    (replace(moved(S2, 2), status="CANCELLED", previous_start=None, previous_end=None),),
    acted_by=ActedBy.OWNER,
    reason="Coach is ill",
    fee_text="No fee: the owner cancelled.",
)
STORY = (BOOKED, RESCHEDULED, CANCELLED)


def send(item: Notice, recipient: Recipient, mail: MailSettings = MAIL) -> list[Message]:
    """Compose, serialize and parse back: what the recipient's mail client gets."""
    messages = compose(item, recipient, mail=mail, now=NOW, organizer=organizer_for(item, mail))
    return [email.message_from_bytes(message_bytes(m), policy=policy.default) for m in messages]


def structure(part: Message) -> object:
    if part.is_multipart():
        return (part.get_content_type(), [structure(p) for p in part.iter_parts()])  # type: ignore[attr-defined]
    return part.get_content_type()


def text_of(message: Message, subtype: str) -> str:
    body = message.get_body(preferencelist=(subtype,))  # type: ignore[attr-defined]
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def everything(message: Message) -> str:
    """All decoded text of a message: headers, bodies and calendar parts."""
    pieces = [f"{k}: {v}" for k, v in message.items()]
    for part in message.walk():
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            pieces.append(payload.decode("utf-8"))
    return "\n".join(pieces).replace("\r\n ", "")


def test_one_email_per_recipient_per_change_with_the_expected_subjects() -> None:
    subjects = {
        (item.kind, r.role, r.email): [str(m["Subject"]) for m in send(item, r)]
        for item in STORY
        for r in RECIPIENTS
    }
    assert len(subjects) == 12 and all(len(s) == 1 for s in subjects.values())
    for (kind, role, _), (subject,) in subjects.items():
        expected = {
            NoticeKind.BOOKED: "Your 3 sessions are confirmed: Coaching"
            if role is Role.CUSTOMER
            else "New booking: Coaching with Zoë Ng (3 sessions)",
            NoticeKind.RESCHEDULED: "2 sessions moved: Coaching",
            NoticeKind.CANCELLED: "Session cancelled: Coaching",
        }[kind]
        assert subject == expected


def test_headers_from_to_date_and_a_stable_message_id() -> None:
    (message,) = send(BOOKED, RECIPIENTS[0])
    assert str(message["From"]) == "Coach Carter via calsync <calsync@book.example.org>"
    assert str(message["To"]) == "Zoë Ng <zoe@example.org>"
    assert str(message["Reply-To"]) == "Coach Carter <coach@example.org>"
    assert message["Date"].datetime == NOW
    assert message["Auto-Submitted"] == "auto-generated"
    message_id = str(message["Message-ID"])
    assert message_id.startswith("<calsync.") and message_id.endswith("@book.example.org>")

    later = compose(BOOKED, RECIPIENTS[0], mail=MAIL, now=NOW + timedelta(hours=5), organizer=OWNER)
    assert later[0]["Message-ID"] == message_id  # composed again after a crash: same message
    again = compose(BOOKED, RECIPIENTS[0], mail=MAIL, now=NOW, organizer=OWNER)
    first = compose(BOOKED, RECIPIENTS[0], mail=MAIL, now=NOW, organizer=OWNER)
    assert message_bytes(again[0]) == message_bytes(first[0])  # no random boundaries
    ids = {str(m["Message-ID"]) for item in STORY for r in RECIPIENTS for m in send(item, r)}
    assert len(ids) == 12


def test_mime_layout_one_calendar_part_per_session() -> None:
    (three,) = send(BOOKED, RECIPIENTS[0])
    alternative = ("multipart/alternative", ["text/plain", "text/html", "text/calendar"])
    assert structure(three) == (
        "multipart/mixed",
        [alternative, "application/ics", "text/calendar", "text/calendar"],
    )
    parts = calendar_parts(three)
    assert [p.attachment for p in parts] == [False, True, True, True]
    assert [check_itip(p.text).uid for p in parts] == [S1.uid, S1.uid, S2.uid, S3.uid]
    filenames = [p.get_filename() for p in three.iter_attachments()]  # type: ignore[attr-defined]
    assert filenames == ["session-1.ics", "session-2.ics", "session-3.ics"]

    (one,) = send(CANCELLED, RECIPIENTS[0])  # exactly REFERENCE's best layout
    assert structure(one) == ("multipart/mixed", [alternative, "application/ics"])
    assert [p.get_filename() for p in one.iter_attachments()] == ["invite.ics"]  # type: ignore[attr-defined]


def test_every_calendar_part_is_valid_and_its_mime_method_equals_method() -> None:
    last_sequence: dict[str, int] = {}
    for item in STORY:
        for recipient in RECIPIENTS:
            (message,) = send(item, recipient)
            seen: dict[str, int] = {}
            for part in calendar_parts(message):
                checked = check_itip(part.text)
                assert part.mime_method == checked.method
                assert checked.method == ("CANCEL" if item is CANCELLED else "REQUEST")
                if checked.method == "CANCEL":
                    assert checked.status == "CANCELLED"
                seen[checked.uid] = checked.sequence
            assert set(seen) == {s.uid for s in item.sessions}
            for uid, sequence in seen.items():
                if recipient is RECIPIENTS[-1]:
                    # Each change raises SEQUENCE above the previous message for that UID.
                    assert sequence > last_sequence.get(uid, -1)
                    last_sequence[uid] = sequence


def test_only_the_customer_ever_gets_the_manage_link() -> None:
    for item in STORY:
        for recipient in RECIPIENTS:
            (message,) = send(item, recipient)
            content = everything(message)
            if recipient.role is Role.CUSTOMER:
                assert LINK in text_of(message, "plain")
                assert f'href="{LINK}"' in text_of(message, "html")
                for part in calendar_parts(message):
                    event = check_itip(part.text).event
                    assert str(event["URL"]) == LINK and LINK in str(event["DESCRIPTION"])
            else:
                assert "Secret-Token" not in content
                assert "Secret-Token" not in message_bytes(message).decode()
                for part in calendar_parts(message):
                    assert "URL" not in check_itip(part.text).event
                # Instead: who booked, and why it changed.
                assert "Zoë Ng <zoe@example.org>" in text_of(message, "plain")
                if item.reason:
                    assert item.reason in text_of(message, "plain")


def test_times_are_shown_in_each_recipients_zone() -> None:
    expected = {
        "zoe@example.org": (
            f"was: Thu, Dec 3, 2026, 4:30{NB}PM – 5:30{NB}PM, "
            "Central European Standard Time (GMT+01:00)",
            f"now: Thu, Dec 10, 2026, 4:30{NB}PM – 5:30{NB}PM, "
            "Central European Standard Time (GMT+01:00)",
        ),
        "coach@example.org": (
            f"was: Thu, Dec 3, 2026, 10:30{NB}AM – 11:30{NB}AM, Eastern Standard Time (GMT-05:00)",
            f"now: Thu, Dec 10, 2026, 10:30{NB}AM – 11:30{NB}AM, Eastern Standard Time (GMT-05:00)",
        ),
        "boss@example.org": (
            f"was: Fri, Dec 4, 2026, 12:30{NB}AM – 1:30{NB}AM, Japan Standard Time (GMT+09:00)",
            f"now: Fri, Dec 11, 2026, 12:30{NB}AM – 1:30{NB}AM, Japan Standard Time (GMT+09:00)",
        ),
        "mum@example.org": (
            f"was: Thu, Dec 3, 2026, 3:30{NB}PM – 4:30{NB}PM, "
            "Coordinated Universal Time (GMT+00:00)",
            f"now: Thu, Dec 10, 2026, 3:30{NB}PM – 4:30{NB}PM, "
            "Coordinated Universal Time (GMT+00:00)",
        ),
    }
    for recipient in RECIPIENTS:
        (message,) = send(RESCHEDULED, recipient)
        text, html = text_of(message, "plain"), text_of(message, "html")
        was, now = expected[recipient.email]
        assert f"Session 1 of 3\n    {was}\n    {now}\n" in text
        assert f"<del>{was.removeprefix('was: ')}</del>" in html


def test_an_unknown_recipient_zone_falls_back_to_the_sessions_zone() -> None:
    (message,) = send(BOOKED, replace(RECIPIENTS[0], timezone="Not/A_Zone"))
    assert (
        f"Thu, Dec 3, 2026, 10:30{NB}AM – 11:30{NB}AM, Eastern Standard Time (GMT-05:00)"
        in text_of(message, "plain")
    )


def test_a_recipients_locale_writes_the_times_in_their_language() -> None:
    (message,) = send(BOOKED, replace(RECIPIENTS[0], locale="de_DE"))
    assert "Do., 3. Dez. 2026, 16:30 – 17:30, Mitteleuropäische Normalzeit (GMT+01:00)" in text_of(
        message, "plain"
    )


def test_the_text_says_who_acted() -> None:
    def plain(item: Notice, index: int) -> str:
        return text_of(send(item, RECIPIENTS[index])[0], "plain")

    assert "You moved 2 sessions of Coaching with Coach Carter." in plain(RESCHEDULED, 0)
    assert "Zoë Ng moved 2 sessions of Coaching." in plain(RESCHEDULED, 1)
    assert "Coach Carter cancelled a session of Coaching." in plain(CANCELLED, 0)
    assert "You cancelled a session of Coaching." in plain(CANCELLED, 1)
    by_calendar = replace(RESCHEDULED, acted_by=ActedBy.OWNER_CALENDAR)
    assert "Coach Carter changed this in their calendar" in plain(by_calendar, 2)
    assert "You changed this in your calendar" in plain(by_calendar, 1)
    # The fee is for the customer and the owner, not for stakeholders.
    assert "No fee: the owner cancelled." in plain(CANCELLED, 0)
    assert "No fee: the owner cancelled." in plain(CANCELLED, 1)
    assert "No fee" not in plain(CANCELLED, 2)


def test_per_session_mode_sends_one_email_per_session() -> None:
    mail = MailSettings(from_address="calsync@book.example.org", per_session=True)
    messages = {(item.kind, r.email): send(item, r, mail) for item in STORY for r in RECIPIENTS}
    assert sum(len(m) for m in messages.values()) == 4 * (3 + 2 + 1)
    ids = set()
    for batch in messages.values():
        for message in batch:
            alternative = ("multipart/alternative", ["text/plain", "text/html", "text/calendar"])
            assert structure(message) == ("multipart/mixed", [alternative, "application/ics"])
            uids = {check_itip(p.text).uid for p in calendar_parts(message)}
            assert len(uids) == 1
            ids.add(str(message["Message-ID"]))
    assert len(ids) == 24
    positions = [m["Subject"] for m in messages[(NoticeKind.BOOKED, "zoe@example.org")]]
    assert positions == ["Your session is confirmed: Coaching"] * 3


def test_header_injection_is_neutralised() -> None:
    evil = "Zoë\r\nBcc: victim@example.net\r\nSubject: pwned"
    item = replace(
        BOOKED,
        title="Coaching\r\nBcc: victim@example.net",
        owner=Person("coach@example.org", evil),
        customer=Person("zoe@example.org", evil),
    )
    for recipient in (replace(RECIPIENTS[0], name=evil), RECIPIENTS[1]):
        (message,) = send(item, recipient)
        assert "Bcc" not in message and message.get_all("Subject") == [message["Subject"]]
        assert "\n" not in str(message["Subject"]) and "\r" not in str(message["Subject"])
        for name in ("To", "From", "Reply-To"):
            (address,) = message[name].addresses
            assert "\n" not in address.display_name
        assert message["To"].addresses[0].addr_spec == recipient.email
    with pytest.raises(ValueError):
        compose(
            BOOKED,
            Recipient("zoe@example.org>,victim@example.net", "Zoë", Role.CUSTOMER, "UTC"),
            mail=MAIL,
            now=NOW,
            organizer=OWNER,
        )


@settings(max_examples=40, deadline=None)
@given(name=st.text(max_size=60), title=st.text(max_size=120), reason=st.text(max_size=200))
def test_any_names_give_well_formed_messages(name: str, title: str, reason: str) -> None:
    item = replace(
        RESCHEDULED, title=title, reason=reason, customer=Person("zoe@example.org", name)
    )
    for recipient in (replace(RECIPIENTS[0], name=name), RECIPIENTS[1]):
        (message,) = send(item, recipient)
        headers = [key.casefold() for key in message]
        assert sorted(headers) == sorted(HEADERS)
        assert message["To"].addresses[0].addr_spec == recipient.email
        for part in calendar_parts(message):
            assert part.mime_method == check_itip(part.text).method


def test_html_is_escaped() -> None:
    item = replace(
        RESCHEDULED,
        title="<script>alert(1)</script>",
        reason='<img src=x onerror="alert(2)">\nsecond line',
        customer=Person("zoe@example.org", "<b>Zoë</b>"),
    )
    (message,) = send(item, RECIPIENTS[1])
    html = text_of(message, "html")
    assert "<script>" not in html and "<img" not in html and "<b>Zoë" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt;" in html
    assert "<br>second line" in html
    assert "<script>alert(1)</script>" in text_of(message, "plain")  # text stays as written


def test_hostile_text_everywhere_still_gives_valid_messages() -> None:
    hostile = '東京 🎉 Zoë, "quoted"; a:b \\N\r\n' + "long " * 200
    item = replace(
        RESCHEDULED,
        title=hostile,
        reason=hostile,
        fee_text=hostile,
        customer=Person("zoe@example.org", hostile),
    )
    for recipient in RECIPIENTS:
        for message in send(item, recipient):
            for part in calendar_parts(message):
                assert part.mime_method == check_itip(part.text).method
            assert "東京" in text_of(message, "plain")


def test_a_template_in_templates_dir_overrides_the_built_in_one(tmp_path: Path) -> None:
    (tmp_path / "booked").mkdir()
    (tmp_path / "booked" / "subject.txt").write_text("Booked {{ count }}x {{ title }}!\n")
    mail = MailSettings(from_address="calsync@book.example.org", templates_dir=tmp_path)
    (message,) = send(BOOKED, RECIPIENTS[0], mail)
    assert message["Subject"] == "Booked 3x Coaching!"
    assert "are confirmed" in text_of(message, "plain")  # the other files are still built in
    (other,) = send(RESCHEDULED, RECIPIENTS[0], mail)
    assert other["Subject"] == "2 sessions moved: Coaching"


def test_organizer_follows_the_configured_address() -> None:
    mail = MailSettings(organizer_address="invites@book.example.org")
    assert organizer_for(BOOKED, mail).email == "invites@book.example.org"
    assert organizer_for(BOOKED, MailSettings()).email == BOOKED.owner.email


def test_applying_the_messages_in_order_leaves_the_right_sessions(
    radicale_server: ServerProcess,
) -> None:
    final = {S1.uid: moved(S1, 1), S3.uid: S3}
    for mail in (MAIL, MailSettings(from_address="calsync@book.example.org", per_session=True)):
        for recipient in RECIPIENTS:
            calendar = radicale_server.new_calendar()
            outcomes = []
            for item in STORY:
                for message in compose(
                    item, recipient, mail=mail, now=NOW, organizer=organizer_for(item, mail)
                ):
                    assert isinstance(message, EmailMessage)
                    outcomes += apply_message(calendar, message)
            assert outcomes.count("created") == 3
            assert outcomes.count("updated") == 2
            assert outcomes.count("deleted") == 1
            events = stored_events(calendar)
            assert set(events) == set(final)
            for uid, expected in final.items():
                assert events[uid].start == expected.start.astimezone(UTC)
                assert events[uid].end == expected.end.astimezone(UTC)
                assert events[uid].sequence == expected.sequence


@pytest.mark.parametrize("address", ["@example.org", "zoe@@example.org", "a@b@c.org", "zoe@"])
def test_a_malformed_address_is_a_value_error_as_documented(address: str) -> None:
    with pytest.raises(ValueError, match="Not an address"):
        compose(
            BOOKED,
            Recipient(address, "Zoë", Role.CUSTOMER, "UTC"),
            mail=MAIL,
            now=NOW,
            organizer=OWNER,
        )
