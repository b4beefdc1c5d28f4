"""Transports against real servers and files: aiosmtpd on loopback (plain, STARTTLS with a
certificate made here, SSL), a port nobody listens on, one that never answers, and ``.eml``
folders. Every failure must arrive as DeliveryError, transient or permanent as it should."""

from __future__ import annotations

import email
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from calsync.config import ConfigError, MailBackend, MailSettings, SmtpSecurity
from calsync.notify.compose import compose
from calsync.notify.transport import (
    CallableTransport,
    DeliveryError,
    DirectoryTransport,
    SMTPTransport,
    message_bytes,
    transport_from_settings,
)
from calsync.notify.values import Recipient, Role
from tests.notify.test_compose import BOOKED, NOW, RECIPIENTS
from tests.support.itip_client import calendar_parts, check_itip
from tests.support.servers import free_port

PASSWORD = "s3cret-hunter2"


class Mailbox:
    """An aiosmtpd handler that keeps what it accepts and refuses some recipients."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 No such user"
        if address.startswith("busy@"):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if b"X-Test-Reject: yes" in envelope.content:
            return "554 5.7.1 Message refused"
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 Accepted"


class OldMailbox(Mailbox):
    """A server that does not offer SMTPUTF8 (aiosmtpd always does, unless told here)."""

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [line for line in responses if "SMTPUTF8" not in line]

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raise AssertionError("nothing should be sent")


def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


def serve(mailbox: Mailbox, **options: Any) -> Iterator[Controller]:
    controller = Controller(mailbox, hostname="127.0.0.1", port=free_port(), **options)
    controller.start()
    try:
        yield controller
    finally:
        controller.stop()


@pytest.fixture
def mailbox() -> Mailbox:
    return Mailbox()


@pytest.fixture
def smtp_server(mailbox: Mailbox) -> Iterator[Controller]:
    yield from serve(mailbox, enable_SMTPUTF8=True)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certificate file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def booked_message(index: int = 0) -> EmailMessage:
    """The booking confirmation for recipient ``index`` of the compose tests."""
    recipient = RECIPIENTS[index]
    (message,) = compose(BOOKED, recipient, mail=MailSettings(), now=NOW, organizer=BOOKED.owner)
    return message


def to(message: EmailMessage, address: str) -> EmailMessage:
    del message["To"]
    message["To"] = address
    return message


def received(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# --- SMTP ------------------------------------------------------------------------------------


def test_messages_arrive_intact(smtp_server: Controller, mailbox: Mailbox) -> None:
    transport = SMTPTransport("127.0.0.1", smtp_server.port, timeout=5)
    sent = [booked_message(i) for i in range(len(RECIPIENTS))]
    for message in sent:
        transport.send(message)

    assert [rcpt for rcpt, _ in mailbox.received] == [[r.email] for r in RECIPIENTS]
    for original, (_, data) in zip(sent, mailbox.received, strict=True):
        copy = received(data)
        assert copy["Message-ID"] == original["Message-ID"]
        assert copy["Subject"] == original["Subject"]
        theirs, ours = calendar_parts(copy), calendar_parts(original)
        assert [p.text for p in theirs] == [p.text for p in ours]  # byte for byte, CRLF kept
        for part in theirs:
            assert part.mime_method == check_itip(part.text).method


def test_a_non_ascii_mailbox_travels_as_smtputf8(smtp_server: Controller, mailbox: Mailbox) -> None:
    recipient = Recipient("zoë@example.org", "Zoë", Role.CUSTOMER, "UTC")
    (message,) = compose(BOOKED, recipient, mail=MailSettings(), now=NOW, organizer=BOOKED.owner)
    SMTPTransport("127.0.0.1", smtp_server.port, timeout=5).send(message)
    ((rcpt, data),) = mailbox.received
    assert rcpt == ["zoë@example.org"]
    # (The stdlib parser keeps 8-bit header bytes as surrogates in .addresses; str() decodes.)
    assert str(received(data)["To"]) == "Zoë <zoë@example.org>"


def test_a_non_ascii_mailbox_to_a_server_without_smtputf8_is_permanent() -> None:
    recipient = Recipient("zoë@example.org", "Zoë", Role.CUSTOMER, "UTC")
    (message,) = compose(BOOKED, recipient, mail=MailSettings(), now=NOW, organizer=BOOKED.owner)
    for controller in serve(OldMailbox()):
        with pytest.raises(DeliveryError) as caught:
            SMTPTransport("127.0.0.1", controller.port, timeout=5).send(message)
    assert caught.value.permanent and "SMTPUTF8" in str(caught.value)


def test_a_server_that_is_down_is_a_transient_failure() -> None:
    transport = SMTPTransport("127.0.0.1", free_port(), timeout=2)
    with pytest.raises(DeliveryError) as caught:
        transport.send(booked_message())
    assert not caught.value.permanent
    assert caught.value.message_id == booked_message()["Message-ID"]
    assert isinstance(caught.value.__cause__, OSError)


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # accepts the connection in the kernel, never says hello
        transport = SMTPTransport("127.0.0.1", silent.getsockname()[1], timeout=0.3)
        with pytest.raises(DeliveryError) as caught:
            transport.send(booked_message())
    assert not caught.value.permanent


@pytest.mark.parametrize(
    ("address", "permanent", "code"),
    [("nobody@example.org", True, 550), ("busy@example.org", False, 450)],
)
def test_a_refused_recipient_is_permanent_for_5xx_and_transient_for_4xx(
    smtp_server: Controller, mailbox: Mailbox, address: str, permanent: bool, code: int
) -> None:
    transport = SMTPTransport("127.0.0.1", smtp_server.port, timeout=5)
    with pytest.raises(DeliveryError) as caught:
        transport.send(to(booked_message(), address))
    assert caught.value.permanent is permanent
    assert caught.value.code == code
    assert address in str(caught.value)
    assert mailbox.received == []


def test_a_refused_message_is_permanent(smtp_server: Controller, mailbox: Mailbox) -> None:
    message = booked_message()
    message["X-Test-Reject"] = "yes"
    with pytest.raises(DeliveryError) as caught:
        SMTPTransport("127.0.0.1", smtp_server.port, timeout=5).send(message)
    assert caught.value.permanent and caught.value.code == 554


def test_starttls_with_login(certificate: tuple[Path, Path], mailbox: Mailbox) -> None:
    for controller in serve(
        mailbox,
        tls_context=server_context(certificate),
        require_starttls=True,
        authenticator=authenticate,
        auth_required=True,
    ):
        good = SMTPTransport(
            "127.0.0.1",
            controller.port,
            SmtpSecurity.STARTTLS,
            "alice",
            PASSWORD,
            timeout=5,
            ssl_context=client_context(certificate),
        )
        good.send(booked_message())
        assert len(mailbox.received) == 1
        assert PASSWORD not in repr(good)

        wrong = SMTPTransport(
            "127.0.0.1",
            controller.port,
            SmtpSecurity.STARTTLS,
            "alice",
            "wrong-password",
            timeout=5,
            ssl_context=client_context(certificate),
        )
        with pytest.raises(DeliveryError) as caught:
            wrong.send(booked_message())
        # Not the message's fault: it waits until the login is fixed.
        assert not caught.value.permanent and "alice" in str(caught.value)
        assert "wrong-password" not in str(caught.value)

        # Without the certificate trusted the handshake fails: transient, nothing sent.
        untrusted = SMTPTransport(
            "127.0.0.1", controller.port, SmtpSecurity.STARTTLS, "alice", PASSWORD, timeout=5
        )
        with pytest.raises(DeliveryError) as caught:
            untrusted.send(booked_message())
        assert not caught.value.permanent
        assert isinstance(caught.value.__cause__, ssl.SSLError)
        assert len(mailbox.received) == 1


def test_ssl_from_the_first_byte(certificate: tuple[Path, Path], mailbox: Mailbox) -> None:
    for controller in serve(mailbox, ssl_context=server_context(certificate)):
        transport = SMTPTransport(
            "127.0.0.1",
            controller.port,
            SmtpSecurity.SSL,
            timeout=5,
            ssl_context=client_context(certificate),
        )
        transport.send(booked_message())
    assert len(mailbox.received) == 1


# --- Files and fakes -------------------------------------------------------------------------


def test_directory_transport_writes_parseable_files_once(tmp_path: Path) -> None:
    folder = tmp_path / "mail"
    transport = DirectoryTransport(folder)
    messages = [booked_message(i) for i in range(len(RECIPIENTS))]
    for message in messages:
        transport.send(message)
    transport.send(booked_message(0))  # a resend after a crash: the same file again

    files = sorted(folder.iterdir())
    assert len(files) == len(RECIPIENTS)
    assert all(f.name.startswith("20261124T090000Z-") and f.suffix == ".eml" for f in files)
    by_id = {received(f.read_bytes())["Message-ID"]: f for f in files}
    assert set(by_id) == {m["Message-ID"] for m in messages}
    for message in messages:
        data = by_id[message["Message-ID"]].read_bytes()
        assert data == message_bytes(message)
        for part in calendar_parts(received(data)):
            check_itip(part.text)


def test_a_resend_with_another_date_still_replaces_the_same_file(tmp_path: Path) -> None:
    transport = DirectoryTransport(tmp_path)
    message = booked_message()
    transport.send(message)
    message.replace_header("Date", "Wed, 25 Nov 2026 12:00:00 +0000")
    transport.send(message)
    (only,) = tmp_path.iterdir()
    assert received(only.read_bytes())["Date"] == "Wed, 25 Nov 2026 12:00:00 +0000"


def test_directory_transport_failure_is_transient(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.raises(DeliveryError) as caught:
        DirectoryTransport(blocker).send(booked_message())
    assert not caught.value.permanent
    assert list(tmp_path.iterdir()) == [blocker]


def test_callable_transport_is_a_fake_built_on_a_function() -> None:
    sent: list[EmailMessage] = []
    CallableTransport(sent.append).send(booked_message())
    assert len(sent) == 1

    def down(message: EmailMessage) -> None:
        raise DeliveryError("down", False, message_id=message["Message-ID"])

    with pytest.raises(DeliveryError):
        CallableTransport(down).send(booked_message())


def test_transport_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = transport_from_settings(MailSettings(directory=tmp_path))
    assert isinstance(directory, DirectoryTransport) and directory.path == tmp_path

    mail = MailSettings(
        backend=MailBackend.SMTP,
        smtp_host="smtp.example.org",
        smtp_port=587,
        smtp_security=SmtpSecurity.STARTTLS,
        smtp_username="alice",
        smtp_password_env="CALSYNC_TEST_SMTP_PASSWORD",
    )
    monkeypatch.setenv("CALSYNC_TEST_SMTP_PASSWORD", PASSWORD)
    smtp = transport_from_settings(mail)
    assert isinstance(smtp, SMTPTransport)
    assert (smtp.host, smtp.port, smtp.security, smtp.username) == (
        "smtp.example.org",
        587,
        SmtpSecurity.STARTTLS,
        "alice",
    )
    assert PASSWORD not in repr(smtp)

    monkeypatch.delenv("CALSYNC_TEST_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="CALSYNC_TEST_SMTP_PASSWORD"):
        transport_from_settings(mail)
