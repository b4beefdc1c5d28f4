"""Mail transports: how a composed message leaves calsync.

Glossary
--------
transport   anything with ``send(message)``; the outbox sender only knows this interface.
transient   a failure worth retrying later (server down, timeout, 4xx, login refused until
            the operator fixes it): the message stays queued.
permanent   this message can never be delivered as it is (5xx for its recipient or content):
            retrying would only repeat the bounce.

Every transport raises only :class:`DeliveryError`; the smtplib/socket/OS error is chained as
its ``__cause__``. Implementations: :class:`SMTPTransport` (STARTTLS or SSL),
:class:`DirectoryTransport` (``.eml`` files, the demo's default) and :class:`CallableTransport`
(a fake built on a function, for tests). :func:`transport_from_settings` picks one by
``mail.backend``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import smtplib
import ssl
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Protocol

from calsync.config import ConfigError, MailBackend, MailSettings, SmtpSecurity

__all__ = [
    "CallableTransport",
    "DeliveryError",
    "DirectoryTransport",
    "MailTransport",
    "SMTPTransport",
    "message_bytes",
    "transport_from_settings",
]

DEFAULT_TIMEOUT = 30.0


class DeliveryError(Exception):
    """A message was not delivered. ``permanent``: retrying cannot help (see glossary).

    ``message_id`` names the message; ``code`` is the SMTP reply code where there was one.
    """

    def __init__(
        self,
        message: str,
        permanent: bool,
        *,
        message_id: str | None = None,
        code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.message_id = message_id
        self.code = code


class MailTransport(Protocol):
    """Delivers one message or raises DeliveryError; never anything else."""

    def send(self, message: EmailMessage) -> None: ...


def message_bytes(message: EmailMessage) -> bytes:
    """The message as it goes on the wire and into ``.eml`` files: CRLF line ends."""
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


class CallableTransport:
    """A transport that hands each message to ``fn``, which may raise DeliveryError to play
    a failing server."""

    def __init__(self, fn: Callable[[EmailMessage], None]) -> None:
        self._fn = fn

    def send(self, message: EmailMessage) -> None:
        self._fn(message)


class DirectoryTransport:
    """Writes each message to ``<path>/<timestamp>-<hash of Message-ID>.eml``.

    The timestamp is the message's Date (UTC), so a resend after a crash writes the same name
    and replaces the file instead of adding a second one. Each file appears whole (written
    to a temporary file in the same folder, then renamed).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def file_name(self, message: EmailMessage) -> str:
        """The file ``message`` is written to. Raises DeliveryError without a Message-ID."""
        message_id = message.get("Message-ID")
        if not message_id:
            raise DeliveryError("A message without a Message-ID cannot be written", True)
        digest = hashlib.sha256(str(message_id).strip().encode()).hexdigest()[:16]
        # The same message written before (even with another Date) keeps its file.
        for existing in self.path.glob(f"*-{digest}.eml"):
            return existing.name
        return f"{_timestamp(message)}-{digest}.eml"

    def send(self, message: EmailMessage) -> None:
        name = self.file_name(message)
        data = message_bytes(message)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            descriptor, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.path)
            try:
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, self.path / name)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as exc:
            raise DeliveryError(
                f"Cannot write {name} in {self.path}: {exc.strerror or exc}",
                False,
                message_id=message.get("Message-ID"),
            ) from exc


def _timestamp(message: EmailMessage) -> str:
    try:
        date = parsedate_to_datetime(str(message["Date"]))
    except (TypeError, ValueError):
        date = datetime.now(UTC)
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    return date.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


class SMTPTransport:
    """Sends over SMTP, one connection per message, with STARTTLS, SSL or in the clear.

    ``ssl_context`` defaults to the system's trust store with hostname checks. The password is
    only handed to smtplib; it is in no message, log line or repr.
    """

    def __init__(
        self,
        host: str,
        port: int,
        security: SmtpSecurity = SmtpSecurity.NONE,
        username: str | None = None,
        password: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host, self.port, self.security = host, port, SmtpSecurity(security)
        self.username, self.timeout = username, timeout
        self._password = password
        self._ssl_context = ssl_context

    def __repr__(self) -> str:
        return (
            f"SMTPTransport(host={self.host!r}, port={self.port}, security={self.security}, "
            f"username={self.username!r})"
        )

    def send(self, message: EmailMessage) -> None:
        message_id = message.get("Message-ID")
        where = f"SMTP server {self.host}:{self.port}"
        connected = False
        try:
            smtp = self._connect()
            connected = True
            try:
                refused = smtp.send_message(message)
            finally:
                # The message is accepted once DATA is answered; a failing QUIT must not make
                # it look undelivered (it would be sent again).
                with contextlib.suppress(smtplib.SMTPException, OSError):
                    smtp.quit()
                smtp.close()
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"{where} refused every recipient: {_replies(exc.recipients)}",
                all(code >= 500 for code in codes),
                message_id=message_id,
                code=max(codes, default=None),
            ) from exc
        except smtplib.SMTPAuthenticationError as exc:
            # Not this message's fault: it goes out once the login is fixed.
            raise DeliveryError(
                f"{where} refused the login of {self.username!r} ({exc.smtp_code}): check "
                "smtp_username and the password in the variable named by smtp_password_env",
                False,
                message_id=message_id,
                code=exc.smtp_code,
            ) from exc
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as exc:
            # Turned away before any message was named: the server's state, not the message's.
            raise DeliveryError(
                f"{where} turned the connection away: {exc.smtp_code} {_text(exc.smtp_error)}",
                False,
                message_id=message_id,
                code=exc.smtp_code,
            ) from exc
        except smtplib.SMTPResponseException as exc:
            # Sender refused, data refused, ...: the reply code decides.
            raise DeliveryError(
                f"{where} answered {exc.smtp_code} {_text(exc.smtp_error)}",
                exc.smtp_code >= 500,
                message_id=message_id,
                code=exc.smtp_code,
            ) from exc
        except smtplib.SMTPNotSupportedError as exc:
            # While connecting (no STARTTLS, no AUTH): settings to fix, so transient. While
            # sending: this message needs SMTPUTF8 (a non-ASCII mailbox) and the server has none.
            raise DeliveryError(
                f"{where} lacks a feature {'this message' if connected else 'calsync'} needs: "
                f"{exc}",
                connected,
                message_id=message_id,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Refused connection, timeout, dropped connection, TLS failure (ssl.SSLError is
            # an OSError): the server may be back later.
            raise DeliveryError(
                f"{where} is unreachable or failed: {exc or type(exc).__name__}",
                False,
                message_id=message_id,
            ) from exc
        if refused:
            # Some recipients refused, others accepted: the message is out. Refused ones are
            # reported as permanent only if every refusal was 5xx.
            codes = [code for code, _ in refused.values()]
            raise DeliveryError(
                f"{where} refused some recipients: {_replies(refused)}",
                all(code >= 500 for code in codes),
                message_id=message_id,
                code=max(codes),
            )

    def _connect(self) -> smtplib.SMTP:
        context = self._ssl_context or ssl.create_default_context()
        smtp: smtplib.SMTP
        if self.security is SmtpSecurity.SSL:
            smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.security is SmtpSecurity.STARTTLS:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self._password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply


def _replies(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{who}: {code} {_text(reply)}" for who, (code, reply) in refused.items())


def transport_from_settings(
    mail: MailSettings, *, timeout: float = DEFAULT_TIMEOUT
) -> MailTransport:
    """The transport ``mail.backend`` names.

    Raises ConfigError when ``smtp_password_env`` names a variable that is not set.
    """
    if mail.backend is MailBackend.DIRECTORY:
        return DirectoryTransport(mail.directory)
    password = None
    if mail.smtp_password_env:
        password = os.environ.get(mail.smtp_password_env)
        if password is None:
            raise ConfigError(
                f"mail.smtp_password_env names {mail.smtp_password_env}, which is not set: "
                f"export {mail.smtp_password_env}=<the SMTP password> before starting calsync"
            )
    return SMTPTransport(
        mail.smtp_host,
        mail.smtp_port,
        mail.smtp_security,
        mail.smtp_username,
        password,
        timeout,
    )
