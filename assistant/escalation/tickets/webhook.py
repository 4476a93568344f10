"""``webhook``: POST the ticket as JSON (rendered from a Jinja2 template) to a URL.

Headers: ``Idempotency-Key`` (the same on every retry of one escalation),
``X-Assistant-Escalation`` (its id) and, with a secret, ``X-Assistant-Signature-256:
sha256=HEX``: the HMAC-SHA256 of the exact body bytes under the secret, for the receiver to
check before it trusts the body. The ticket reference is ``id`` (or ``key``) of a JSON answer.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from assistant.escalation.tickets.base import Template, http_client, post, render_or_fail

SIGNATURE_HEADER = "X-Assistant-Signature-256"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookConnector:
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        template: Path | None = None,
        secret: str | None = None,
        timeout_s: float = 15.0,
    ) -> None:
        self.url = url
        self.template = Template(template, "escalation_webhook.json.j2", json_body=True)
        self.secret = secret
        self._client = http_client(timeout_s)

    def deliver(self, ticket: dict, idempotency_key: str) -> str | None:
        body = render_or_fail(self.template, ticket).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key,
            "X-Assistant-Escalation": ticket["id"],
            "User-Agent": "helpdesk-assistant",
        }
        if self.secret:
            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        answer = post(self._client, self.url, body, headers, what="webhook receiver")
        if isinstance(answer, dict):
            for field in ("id", "key"):
                if answer.get(field) not in (None, ""):
                    return str(answer[field])
        return None

    def close(self) -> None:
        self._client.close()
