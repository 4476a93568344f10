"""``email``: the ticket as an e-mail to the service desk's mailbox, over SMTP.

``starttls`` (default; port 587) upgrades the connection before any login, ``ssl`` speaks
TLS from the start (port 465), ``none`` is for a relay on loopback only. The server's
certificate is verified (against ``ca_file`` when given). The Message-ID is made from the
escalation's idempotency key, so a mail system that drops duplicate Message-IDs keeps one
copy of a retried delivery; it is also the reference kept for the escalation.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

from assistant.escalation.tickets.base import DeliveryError, Template, render_or_fail


class EmailConnector:
    name = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        to: list[str],
        security: str = "starttls",
        user: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
        template: Path | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self.host, self.port, self.sender, self.to = host, port, sender, list(to)
        self.security = security
        self.user, self.password = user, password
        self.ca_file = ca_file
        self.timeout_s = timeout_s
        self.template = Template(template, "escalation_ticket.txt.j2")

    def message(self, ticket: dict, idempotency_key: str) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = f"[help desk, {ticket['priority']}] {ticket['summary']}"
        msg["From"] = self.sender
        msg["To"] = ", ".join(self.to)
        msg["Message-ID"] = f"<{idempotency_key}@helpdesk-assistant>"
        msg["X-Assistant-Escalation"] = ticket["id"]
        msg.set_content(render_or_fail(self.template, ticket))
        return msg

    def deliver(self, ticket: dict, idempotency_key: str) -> str | None:
        msg = self.message(ticket, idempotency_key)
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        try:
            if self.security == "ssl":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=context
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                smtp.ehlo()
                if self.security == "starttls":
                    smtp.starttls(context=context)
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"the SMTP server {self.host}:{self.port} refused the login of '{self.user}': "
                f"{exc.smtp_code} {_text(exc.smtp_error)}",
                retry=False,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"the SMTP server {self.host}:{self.port} does not offer what is needed: {exc}",
                retry=False,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"the SMTP server's certificate is not trusted ({exc.verify_message}); set "
                "ASSISTANT_ESCALATION_SMTP_CA_FILE to its CA",
                retry=False,
            ) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            details = "; ".join(f"{r}: {c} {_text(m)}" for r, (c, m) in exc.recipients.items())
            raise DeliveryError(
                f"the SMTP server refused the recipients ({details})",
                retry=all(400 <= c < 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"the SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}",
                retry=not 500 <= exc.smtp_code < 600,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts, refusals
            raise DeliveryError(
                f"cannot deliver to the SMTP server {self.host}:{self.port}: "
                f"{type(exc).__name__}: {exc}",
                retry=True,
            ) from None
        return msg["Message-ID"]

    def close(self) -> None:
        pass


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
