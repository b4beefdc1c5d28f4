"""The customer's "please choose new times" email: the owner asked them to reschedule sessions.

A plain message (text and HTML, no invitation: nothing has moved yet), rendered from the
``reschedule_request`` templates, which ``mail.templates_dir`` can override like the others.
Its "Choose new times" button opens the manage page's Reschedule tab with the sessions ticked
(``bookings/reschedule_requests.py`` builds the link). Only the customer gets it: the link is a
key to the booking.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from calsync.calendars.ical.timezones import iana_zone
from calsync.config import MailSettings
from calsync.notify.compose import header_address, message_id, template_environment
from calsync.notify.itip import clean_text, one_line
from calsync.notify.when import day_words, format_span


@dataclass(frozen=True, slots=True)
class RequestedSession:
    position: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class RescheduleRequestMail:
    request_id: int
    title: str
    owner_name: str
    owner_email: str
    customer_name: str
    customer_email: str
    customer_timezone: str
    sessions: tuple[RequestedSession, ...]
    package_size: int
    message: str | None  # the owner's words, shown as they wrote them
    url: str
    expires_at: datetime


def compose_reschedule_request(
    mail: RescheduleRequestMail, settings: MailSettings, now: datetime, *, namespace: str
) -> EmailMessage:
    """The email; its Message-ID derives from the installation's ``namespace`` and the request
    id, so composing it again yields the same message. Raises ValueError for an address no
    header can hold."""
    zone = iana_zone(mail.customer_timezone) or ZoneInfo("UTC")
    owner = one_line(mail.owner_name) or mail.owner_email
    context = {
        "recipient_name": one_line(mail.customer_name) or mail.customer_email,
        "owner_name": owner,
        "title": one_line(mail.title),
        "sessions": [
            {
                "label": f"Session {s.position} of {mail.package_size}"
                if mail.package_size > 1
                else "Your session",
                "when": format_span(s.start, s.end, zone),
            }
            for s in mail.sessions
        ],
        "count": len(mail.sessions),
        "message": clean_text(mail.message or "").strip() or None,
        "url": mail.url,
        "expires": day_words(mail.expires_at.astimezone(zone)),
    }
    templates = template_environment(settings.templates_dir)
    international = not (settings.from_address.isascii() and mail.customer_email.isascii())
    message = EmailMessage(policy=policy.default.clone(utf8=international))
    message["Subject"] = one_line(
        templates.get_template("reschedule_request/subject.txt").render(context)
    )
    message["From"] = header_address(f"{owner} via calsync", settings.from_address)
    message["To"] = header_address(mail.customer_name, mail.customer_email)
    message["Reply-To"] = header_address(mail.owner_name, mail.owner_email)
    message["Date"] = format_datetime(now)
    key = f"{namespace}/reschedule-request-{mail.request_id}"
    message["Message-ID"] = message_id(
        key, mail.customer_email, 0, settings.from_address.rpartition("@")[2]
    )
    message["Auto-Submitted"] = "auto-generated"
    text = templates.get_template("reschedule_request/body.txt").render(context)
    html = templates.get_template("reschedule_request/body.html").render(context)
    message.set_content(clean_text(text), cte="quoted-printable")
    message.add_alternative(clean_text(html), subtype="html", cte="quoted-printable")
    return message
