"""The emails of one change for one recipient: words for people, invites for their calendars.

Layout
------
A change touching k sessions is one email per recipient (``mail.per_session``: one email per
session)::

    multipart/mixed
    ├── multipart/alternative
    │   ├── text/plain                       the sessions in words
    │   ├── text/html                        the same, escaped
    │   └── text/calendar; method=M          session 1 (the part clients apply)
    ├── application/ics; method=M            session 1 again, as invite.ics
    ├── text/calendar; method=M (attached)   session 2 as session-2.ics
    └── …                                    up to session k

Why: with one session (and in per-session mode) this is exactly the layout that interoperates
best (REFERENCE, iMIP). An iTIP object holds one UID, and multipart/alternative must never hold
two versions, so sessions 2..k cannot join the alternative; each becomes one ``text/calendar``
part of its own inside multipart/mixed, with a filename, so that it is also the ``.ics``
attachment a person opens where the client applies only the first part (Outlook; hence the
per-session mode). Every session thus reaches every client once as an attachment, and each
calendar part's ``method=`` equals the METHOD inside.

Roles decide what a message holds: only the customer's copy carries the manage link (text,
HTML, DESCRIPTION and URL); the owner and stakeholders get the customer's name and address and
the reason instead. Templates (Jinja2) are ``templates/<kind>/{subject.txt, body.txt,
body.html}``; a file of the same name under ``mail.templates_dir`` replaces one.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.utils import format_datetime
from pathlib import Path
from typing import Any, cast

import jinja2

from calsync.calendars.ical.session_event import Person, description_with_link
from calsync.calendars.ical.timezones import iana_zone
from calsync.config import MailSettings
from calsync.notify.itip import clean_text, itip_object, one_line
from calsync.notify.values import ActedBy, Method, Notice, Recipient, Role, SessionNotice
from calsync.notify.when import format_span

__all__ = [
    "TEMPLATES",
    "compose",
    "installation_namespace",
    "message_id",
    "organizer_for",
]

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_FILES = ("subject.txt", "body.txt", "body.html")


@dataclass(frozen=True, slots=True)
class SessionLine:
    """One session as a template shows it, in the recipient's zone."""

    position: int
    when: str  # the time after the change (for a cancel: the time that is cancelled)
    was: str | None  # the time before a move


def organizer_for(notice: Notice, mail: MailSettings) -> Person:
    """ORGANIZER of the invites: ``mail.organizer_address`` if set, else the owner."""
    return Person(mail.organizer_address or notice.owner.email, notice.owner.name)


def compose(
    notice: Notice,
    recipient: Recipient,
    *,
    mail: MailSettings,
    now: datetime,
    organizer: Person,
) -> list[EmailMessage]:
    """The emails that tell ``recipient`` about ``notice``: one, or one per session when
    ``mail.per_session``.

    ``now`` (aware) is the Date and the DTSTAMP; ``organizer`` is the ORGANIZER (see
    ``organizer_for``). Raises ValueError for an address that cannot be written in a header,
    jinja2.TemplateError for a broken template (an override, usually).
    """
    if now.tzinfo is None:
        raise ValueError("compose needs an aware `now`")
    groups = [(s,) for s in notice.sessions] if mail.per_session else [notice.sessions]
    return [
        _message(notice, recipient, sessions, (part, len(groups)), mail, now, organizer)
        for part, sessions in enumerate(groups)
    ]


def installation_namespace(secret_key: str) -> str:
    """What makes this installation's change keys (and so its Message-IDs) its own.

    Change ids count from 1 in every database, so two installations telling the same owner
    about "change-1" made the same Message-ID, and mail programs dropped the second email as
    a repeat. Derived from ``secret_key`` by HMAC rather than a random value stored at first
    use: it needs no table and no first-use race between workers; the key is already a long
    random value of its own in every installation, and it cannot change without losing every
    stored secret, so the namespace is as stable as the installation. It never reveals the key.
    """
    digest = hmac.new(secret_key.encode(), b"calsync message-id namespace v1", hashlib.sha256)
    return digest.hexdigest()[:32]


def message_id(change_key: str, recipient_email: str, part: int, domain: str) -> str:
    """The Message-ID of one email: the same for the same change, recipient and part, so that
    a message composed again after a crash is recognisably the same message."""
    key = f"{change_key}\0{recipient_email.casefold()}\0{part}".encode()
    digest = hashlib.sha256(key).hexdigest()[:32]
    return f"<calsync.{digest}@{_ascii_domain(domain)}>"


# --- One message ---------------------------------------------------------------------------


def _message(
    notice: Notice,
    recipient: Recipient,
    sessions: tuple[SessionNotice, ...],
    numbering: tuple[int, int],
    mail: MailSettings,
    now: datetime,
    organizer: Person,
) -> EmailMessage:
    """Email number ``numbering[0]`` (from 0) of ``numbering[1]`` for this change."""
    part = numbering[0]
    context = _context(notice, recipient, sessions, numbering)
    templates = template_environment(mail.templates_dir)
    folder = str(notice.kind)
    subject = one_line(templates.get_template(f"{folder}/subject.txt").render(context))
    text = templates.get_template(f"{folder}/body.txt").render(context)
    html = templates.get_template(f"{folder}/body.html").render(context)

    addresses = [mail.from_address, recipient.email, organizer.email, notice.customer.email]
    international = not all(address.isascii() for address in addresses)
    # A non-ASCII local part can only travel as SMTPUTF8 (RFC 6531).
    message = EmailMessage(policy=policy.default.clone(utf8=international))
    message["Subject"] = subject
    message["From"] = header_address(f"{_name(notice.owner)} via calsync", mail.from_address)
    message["To"] = header_address(recipient.name, recipient.email)
    if recipient.role is Role.OWNER:
        message["Reply-To"] = header_address(notice.customer.name, notice.customer.email)
    else:
        message["Reply-To"] = header_address(organizer.name, organizer.email)
    message["Date"] = format_datetime(now)
    identity = message_id(
        notice.change_key, recipient.email, part, mail.from_address.rpartition("@")[2]
    )
    message["Message-ID"] = identity
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    message.set_content(clean_text(text), cte="quoted-printable")
    message.add_alternative(clean_text(html), subtype="html", cte="quoted-printable")

    objects = [_invite(notice, recipient, s, organizer=organizer, now=now) for s in sessions]
    (first, first_ics), *rest = zip(sessions, objects, strict=True)
    message.attach(_calendar_part(first, first_ics))  # into multipart/alternative
    message.make_mixed()
    single = len(sessions) == 1
    message.attach(
        _calendar_part(first, first_ics, maintype="application", subtype="ics", single=single)
    )
    for session, ics in rest:
        message.attach(_calendar_part(session, ics, single=single))
    # Boundaries from the Message-ID instead of random ones: composing the same message again
    # gives the same bytes. "=_" can occur in neither base64 nor quoted-printable text.
    token = identity.strip("<>").partition("@")[0]
    message.set_boundary(f"=_{token}_mixed")
    alternative = message.get_payload(0)
    assert isinstance(alternative, MIMEPart)
    alternative.set_boundary(f"=_{token}_alternative")
    return message


def _calendar_part(
    session: SessionNotice,
    ics: str,
    *,
    maintype: str = "text",
    subtype: str = "calendar",
    single: bool | None = None,
) -> EmailMessage:
    """One iTIP object as a MIME part; an attachment unless ``single`` is None.

    Base64 keeps the object's bytes exact (CRLF line ends, folded lines, UTF-8) through any
    mail server, 7-bit or not.
    """
    part = MIMEPart(policy=policy.default)
    params = {"method": str(session.method), "charset": "UTF-8"}
    if single is None:
        part.set_content(ics.encode(), maintype, subtype, cte="base64", params=params)
        return cast(EmailMessage, part)  # typeshed wants EmailMessage for attach()
    filename = "invite.ics" if single else f"session-{session.position}.ics"
    part.set_content(
        ics.encode(),
        maintype,
        subtype,
        cte="base64",
        disposition="attachment",
        filename=filename,
        params={**params, "name": filename},
    )
    return cast(EmailMessage, part)


def _invite(
    notice: Notice,
    recipient: Recipient,
    session: SessionNotice,
    *,
    organizer: Person,
    now: datetime,
) -> str:
    description = f"Session {session.position} of {notice.package_size}: {notice.title}"
    url = notice.manage_url if recipient.role is Role.CUSTOMER else None
    if url is not None:
        description = description_with_link(description, url)
    else:
        customer = notice.customer
        description += f"\nBooked by {_name(customer)} <{customer.email}>"
    return itip_object(
        session.method,
        session,
        organizer=organizer,
        attendees=notice.attendees,
        summary=notice.title,
        description=description,
        url=url,
        now=now,
        # After a time change attendees are asked to confirm again (RFC 5546 §2.1.4).
        rsvp=session.moved,
    )


def header_address(name: str, email: str) -> Address:
    """A header address; the display name is one line, so no header can be injected."""
    local, _, domain = email.rpartition("@")
    # Parsing an ASCII stand-in checks the address's shape ("a@b>,c@d" fails here).
    shape = "".join(ch if ch.isascii() else "x" for ch in email)
    try:
        parsed = Address(addr_spec=shape).addr_spec
    except (HeaderParseError, IndexError):  # "@x.org", "a@@b", "a@" and the like
        parsed = None
    if parsed != shape or not local or not domain:
        raise ValueError(f"Not an address a header can hold: {email!r}")
    return Address(one_line(name), username=local, domain=_ascii_domain(domain))


def _ascii_domain(domain: str) -> str:
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


# --- Template context ----------------------------------------------------------------------


def _context(
    notice: Notice,
    recipient: Recipient,
    sessions: tuple[SessionNotice, ...],
    numbering: tuple[int, int],
) -> dict[str, Any]:
    zone = iana_zone(recipient.timezone) or iana_zone(sessions[0].timezone)
    assert zone is not None, "a session's zone is checked when the event is written"
    lines = [
        SessionLine(
            position=s.position,
            when=format_span(s.start, s.end, zone, recipient.locale),
            was=format_span(s.previous_start, s.previous_end, zone, recipient.locale)
            if s.moved and s.previous_start and s.previous_end and s.method is Method.REQUEST
            else None,
        )
        for s in sessions
    ]
    actor, you = _actor(notice, recipient.role)
    return {
        "kind": str(notice.kind),
        "role": str(recipient.role),
        "recipient_name": one_line(recipient.name) or recipient.email,
        "title": one_line(notice.title),
        "owner_name": _name(notice.owner),
        "customer_name": _name(notice.customer),
        "customer_email": notice.customer.email,
        "stakeholders": [_name(p) for p in notice.stakeholders],
        "sessions": lines,
        "count": len(lines),
        "package_size": notice.package_size,
        "part": numbering[0] + 1,  # this email's number, from 1 (per-session mode)
        "parts": numbering[1],
        "reason": _optional(notice.reason),
        "fee_text": _optional(notice.fee_text),
        # The link is a key to the booking: only the customer's own copy ever carries it.
        "manage_url": notice.manage_url if recipient.role is Role.CUSTOMER else None,
        "acted_by": str(notice.acted_by),
        "actor": actor,
        "actor_is_you": you,
        "in_calendar": notice.acted_by is ActedBy.OWNER_CALENDAR,
    }


def _actor(notice: Notice, role: Role) -> tuple[str, bool]:
    """Who acted, as the recipient reads it: ("You", True) or (their name, False)."""
    if notice.acted_by is ActedBy.CUSTOMER:
        return ("You", True) if role is Role.CUSTOMER else (_name(notice.customer), False)
    return ("You", True) if role is Role.OWNER else (_name(notice.owner), False)


def _optional(text: str | None) -> str | None:
    cleaned = clean_text(text or "").strip()
    return cleaned or None


def _name(person: Person) -> str:
    return one_line(person.name) or person.email


@functools.lru_cache(maxsize=16)
def template_environment(overrides: Path | None) -> jinja2.Environment:
    """Templates from ``overrides`` first (file by file), then the built-in ones."""
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(TEMPLATES)]
    if overrides is not None:
        loaders.insert(0, jinja2.FileSystemLoader(overrides))
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["plural"] = _plural
    return environment


def _plural(word: str, count: int) -> str:
    """``{{ "session" | plural(count) }}``: the word, with an "s" unless ``count`` is 1."""
    return word if count == 1 else f"{word}s"
