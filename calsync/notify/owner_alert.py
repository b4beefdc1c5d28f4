"""Emails to an owner about their calendars (not about a booking): "reconnect Google".

They are plain messages (text and HTML, no invitation), rendered from the ``reconnect``
templates, which ``mail.templates_dir`` can override like the booking emails.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime

from calsync.config import MailSettings
from calsync.notify.compose import header_address, message_id, template_environment
from calsync.notify.itip import clean_text, one_line


@dataclass(frozen=True, slots=True)
class ReconnectAlert:
    """A Google calendar whose grant stopped working, ``since`` when."""

    owner_name: str
    owner_email: str
    calendar_number: int  # calsync's id of the connection
    calendar_name: str
    google_calendar_id: str
    detail: str  # what Google said
    since: datetime


def compose_reconnect(
    alert: ReconnectAlert, mail: MailSettings, now: datetime, *, namespace: str
) -> EmailMessage:
    """The owner's "connect your Google calendar again" email.

    The Message-ID derives from the installation's ``namespace`` (``installation_namespace``),
    the connection and the moment the grant failed, so a crash that composes it again yields
    the same message, and a later failure or another installation a new one."""
    context = asdict(alert)
    templates = template_environment(mail.templates_dir)
    international = not (mail.from_address.isascii() and alert.owner_email.isascii())
    message = EmailMessage(policy=policy.default.clone(utf8=international))
    message["Subject"] = one_line(templates.get_template("reconnect/subject.txt").render(context))
    message["From"] = header_address("calsync", mail.from_address)
    message["To"] = header_address(alert.owner_name, alert.owner_email)
    message["Date"] = format_datetime(now)
    key = f"{namespace}/reconnect\0{alert.calendar_number}\0{alert.since.isoformat()}"
    message["Message-ID"] = message_id(
        key, alert.owner_email, 0, mail.from_address.rpartition("@")[2]
    )
    message["Auto-Submitted"] = "auto-generated"
    text = templates.get_template("reconnect/body.txt").render(context)
    html = templates.get_template("reconnect/body.html").render(context)
    message.set_content(clean_text(text), cte="quoted-printable")
    message.add_alternative(clean_text(html), subtype="html", cte="quoted-printable")
    return message
