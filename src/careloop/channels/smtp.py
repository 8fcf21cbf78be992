"""E-mail over SMTP (``smtplib``): STARTTLS or implicit TLS, optional login.

Settings (``smtp``):
  ``host``          SMTP server
  ``port``          default 587 (465 with ``ssl``)
  ``username``      login name; no login when empty
  ``password``      login password (secret)
  ``starttls``      upgrade the connection with STARTTLS (default true)
  ``ssl``           connect with implicit TLS instead (default false)
  ``ca_file``       PEM bundle to trust instead of the system store (a hospital's own CA)
  ``from_address``  envelope and header sender, e.g. ``随访中心 <care@hospital.example>``
  ``timeout``       seconds, default 10

The ``Message-ID`` is derived from the dedupe key, so a repeated send of one occurrence carries
the same id and mail systems can fold the copies. A message without a subject gets a neutral
one in the patient's language. 4xx replies are worth a retry; 5xx are final (550/551/553:
the mailbox does not exist). SMTP has no lookup of an accepted message: ``reconcile`` answers
``UNKNOWN``. A batch shares one connection.
"""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from collections.abc import Sequence
from contextlib import suppress
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from django.utils import translation
from django.utils.translation import gettext

from careloop.channels.base import BaseAdapter, no_address, with_link
from careloop.channels.port import (
    ChannelError,
    ChannelKind,
    Message,
    PermanentError,
    PermanentReason,
    SendResult,
    TransientError,
    require,
)
from careloop.channels.transport import flag, log_result

CONFIG_KEYS = (
    "host",
    "port",
    "username",
    "password",
    "starttls",
    "ssl",
    "ca_file",
    "from_address",
    "timeout",
)
SECRET_KEYS = ("password",)

_BAD_MAILBOX = {550, 551, 553}


def message_id(dedupe_key: str, sender: str) -> str:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "careloop.invalid"
    return f"<{hashlib.sha256(dedupe_key.encode('utf-8')).hexdigest()[:40]}@{domain}>"


def default_subject(language: str) -> str:
    with translation.override(language or "zh-hans"):
        return gettext("A message from your care team")


def classify(code: int, *, stage: str) -> ChannelError:
    detail = f"smtp: {stage} refused ({code})"
    text = str(code)
    if 400 <= code < 500:
        return TransientError(detail, code=text)
    if stage == "login":
        return PermanentError(detail, code=text, reason=PermanentReason.CONFIGURATION)
    if stage == "sender":
        return PermanentError(detail, code=text, reason=PermanentReason.CONFIGURATION)
    if code in _BAD_MAILBOX:
        return PermanentError(detail, code=text, reason=PermanentReason.INVALID_ADDRESS)
    return PermanentError(detail, code=text, reason=PermanentReason.REJECTED)


class SmtpAdapter(BaseAdapter):
    kind = ChannelKind.EMAIL
    provider = "smtp"
    batch_size = 50

    def _connect(self) -> smtplib.SMTP:
        (host,) = require(self.config, "host")
        implicit = flag(self.config, "ssl")
        port = self.number("port", 465 if implicit else 587)
        context = ssl.create_default_context(cafile=self.setting("ca_file") or None)
        try:
            smtp: smtplib.SMTP
            if implicit:
                smtp = smtplib.SMTP_SSL(host, port, timeout=self.timeout, context=context)
            else:
                smtp = smtplib.SMTP(host, port, timeout=self.timeout)
            try:
                smtp.ehlo()
                if not implicit and flag(self.config, "starttls", True):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.setting("username"):
                    smtp.login(self.setting("username"), self.setting("password"))
            except BaseException:
                with suppress(smtplib.SMTPException, OSError):
                    smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise classify(exc.smtp_code, stage="login") from None
        except smtplib.SMTPNotSupportedError:
            raise PermanentError(
                "smtp: server lacks STARTTLS or AUTH",
                code="unsupported",
                reason=PermanentReason.CONFIGURATION,
            ) from None
        except ssl.SSLCertVerificationError:
            raise PermanentError(
                "smtp: server certificate not trusted",
                code="tls",
                reason=PermanentReason.CONFIGURATION,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise classify(exc.smtp_code, stage="connection") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(
                f"smtp: connection failed ({type(exc).__name__})", code="network"
            ) from None
        return smtp

    def _compose(self, message: Message) -> EmailMessage:
        (sender,) = require(self.config, "from_address")
        address = message.to.strip()
        if address.count("@") != 1 or any(c in address for c in "\r\n<>,; "):
            raise PermanentError(
                "smtp: recipient is not an e-mail address",
                code="bad_address",
                reason=PermanentReason.INVALID_ADDRESS,
            )
        mail = EmailMessage()
        subject = " ".join(message.subject.split()) or default_subject(message.language)
        mail["Subject"] = subject
        mail["From"] = sender
        mail["To"] = address
        mail["Date"] = formatdate(usegmt=True)
        mail["Message-ID"] = message_id(message.dedupe_key, sender)
        mail["Auto-Submitted"] = "auto-generated"
        mail.set_content(with_link(message), charset="utf-8")
        # set_content replaces every Content-* header, so the language goes after it.
        mail["Content-Language"] = message.language or "zh-hans"
        return mail

    def _deliver(self, smtp: smtplib.SMTP, message: Message) -> SendResult:
        mail = self._compose(message)
        try:
            smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next(iter(exc.recipients.values()), (550, b""))[0]
            raise classify(code, stage="recipient") from None
        except smtplib.SMTPSenderRefused as exc:
            raise classify(exc.smtp_code, stage="sender") from None
        except smtplib.SMTPResponseException as exc:
            raise classify(exc.smtp_code, stage="message") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(
                f"smtp: connection lost ({type(exc).__name__})", code="network"
            ) from None
        return SendResult(provider_message_id=str(mail["Message-ID"]))

    def send(self, message: Message) -> SendResult:
        return _single(self.send_batch([message]))

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult | ChannelError]:
        results: list[SendResult | ChannelError] = []
        smtp: smtplib.SMTP | None = None
        refused: ChannelError | None = None  # the server itself is out of reach
        try:
            for message in messages:
                try:
                    if refused is not None:
                        raise refused
                    if not message.to:
                        raise no_address(self.provider)
                    if smtp is None:
                        try:
                            smtp = self._connect()
                        except ChannelError as exc:
                            refused = exc
                            raise
                    results.append(self._deliver(smtp, message))
                    log_result(self.provider, "send", message.dedupe_key, "accepted")
                except ChannelError as exc:
                    log_result(self.provider, "send", message.dedupe_key, "error", exc.code)
                    results.append(exc)
                    if smtp is not None and exc.code == "network":
                        with suppress(smtplib.SMTPException, OSError):
                            smtp.close()
                        smtp = None
                    elif smtp is not None:
                        # A refused message leaves a half-open transaction; start clean.
                        with suppress(smtplib.SMTPException, OSError):
                            smtp.rset()
        finally:
            if smtp is not None:
                with suppress(smtplib.SMTPException, OSError):
                    smtp.quit()
        return results


def _single(results: list[SendResult | ChannelError]) -> SendResult:
    outcome = results[0]
    if isinstance(outcome, ChannelError):
        raise outcome
    return outcome
