"""The owner's console sign-in email: an invitation, or a link asked for on the sign-in page.

A plain message (text and HTML, no invitation part) rendered from the ``console_sign_in``
templates, which ``mail.templates_dir`` can override like the other emails. The link in it is
the only copy of the token in clear: the database keeps its hash, and the outbox keeps the
message encrypted until it is sent and then deletes it.
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
class SignInMail:
    owner_name: str
    owner_email: str
    link: str  # the one-time sign-in link
    sign_in_page: str  # where to ask for a new one
    minutes: int  # how long the link works
    invited: bool  # the operator's invitation, or a link the owner asked for
    token_hash: str  # makes the Message-ID (never the token)


def compose_sign_in(
    mail_values: SignInMail, mail: MailSettings, now: datetime, *, namespace: str
) -> EmailMessage:
    """The sign-in email; its Message-ID derives from the link's hash, so each link is one
    message and composing it again yields the same one."""
    context = asdict(mail_values)
    templates = template_environment(mail.templates_dir)
    international = not (mail.from_address.isascii() and mail_values.owner_email.isascii())
    message = EmailMessage(policy=policy.default.clone(utf8=international))
    subject = templates.get_template("console_sign_in/subject.txt").render(context)
    message["Subject"] = one_line(subject)
    message["From"] = header_address("calsync", mail.from_address)
    message["To"] = header_address(mail_values.owner_name, mail_values.owner_email)
    message["Date"] = format_datetime(now)
    key = f"{namespace}/console sign-in\0{mail_values.token_hash}"
    message["Message-ID"] = message_id(
        key, mail_values.owner_email, 0, mail.from_address.rpartition("@")[2]
    )
    message["Auto-Submitted"] = "auto-generated"
    text = templates.get_template("console_sign_in/body.txt").render(context)
    html = templates.get_template("console_sign_in/body.html").render(context)
    message.set_content(clean_text(text), cte="quoted-printable")
    message.add_alternative(clean_text(html), subtype="html", cte="quoted-printable")
    return message
