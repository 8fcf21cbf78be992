"""A fake SMTP server (aiosmtpd, a development dependency) with login and optional STARTTLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import logging
import secrets
import socket
import ssl
import tempfile
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from careloop.channels.fakes.base import Recorder, Sent


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def self_signed(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throwaway certificate for ``host`` (as an IP address SAN) and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "careloop fake smtp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class FakeSmtp(Recorder):
    """Accepts mail on 127.0.0.1 and records each recipient with the Message-ID as reference.

    ``fail_numbers`` keys are addresses and values SMTP reply codes as text (``"550"``);
    ``fail_next(code="451")`` refuses the next recipients with that code. With ``tls=True`` the
    server offers STARTTLS with a throwaway certificate whose PEM is ``ca_file``.
    """

    name = "smtp"

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "careloop",
        password: str = "",
        tls: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port or _free_port(host)
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.tls = tls
        self.ca_file = ""
        self.logins = 0
        self._controller: Any = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "password": self.password,
            "starttls": self.tls,
            "from_address": "随访中心 <care@hospital.example>",
            "timeout": 5,
        }
        if self.ca_file:
            cfg["ca_file"] = self.ca_file
        return cfg

    def start(self) -> FakeSmtp:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        fake = self
        logging.getLogger("mail.log").setLevel(logging.ERROR)

        class Handler:
            async def handle_RCPT(  # noqa: N802 - aiosmtpd hook name
                self, server: Any, session: Any, envelope: Any, address: str, options: Any
            ) -> str:
                code = fake.failure_for(address)
                if code:
                    reply = "4.2.0 Try later" if code.startswith("4") else "5.1.1 No such user"
                    return f"{code} {reply}"
                failure = fake.take_failure()
                if failure is not None:
                    code = failure.code or str(failure.status)
                    return f"{code} 4.3.0 Scripted failure"
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(  # noqa: N802 - aiosmtpd hook name
                self, server: Any, session: Any, envelope: Any
            ) -> str:
                if fake.latency:
                    await asyncio.sleep(fake.latency)
                mail = message_from_bytes(envelope.content, policy=policy.default)
                body = mail.get_body(preferencelist=("plain",))
                text = body.get_content() if body is not None else ""
                for rcpt in envelope.rcpt_tos:
                    fake.record(
                        Sent(
                            provider="smtp",
                            to=rcpt,
                            ref=str(mail.get("Message-ID", "")),
                            id=str(mail.get("Message-ID", "")),
                            text=text,
                            at=fake.now(),
                            extra={
                                "subject": str(mail.get("Subject", "")),
                                "from": envelope.mail_from,
                                "language": str(mail.get("Content-Language", "")),
                                "tls": session.ssl is not None,
                            },
                        )
                    )
                return "250 Message accepted"

        def authenticator(
            server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
        ) -> Any:
            if not isinstance(auth_data, LoginPassword):
                return AuthResult(success=False, handled=False)
            ok = (
                auth_data.login.decode() == fake.username
                and auth_data.password.decode() == fake.password
            )
            if ok:
                fake.logins += 1
            # handled=False lets aiosmtpd send the 535 reply itself on failure.
            return AuthResult(success=ok, handled=False)

        tls_context = None
        if self.tls:
            self._tmp = tempfile.TemporaryDirectory(prefix="careloop-smtp-")
            cert, key = self_signed(Path(self._tmp.name), self.host)
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls_context.load_cert_chain(cert, key)
            self.ca_file = str(cert)
        self._controller = Controller(
            Handler(),
            hostname=self.host,
            port=self.port,
            authenticator=authenticator,
            auth_require_tls=self.tls,
            tls_context=tls_context,
            require_starttls=self.tls,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> FakeSmtp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
