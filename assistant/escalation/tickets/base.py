"""What every ticket connector shares: the ``Connector`` seam, the error that says whether
to retry, Jinja2 templates checked at start-up, and one HTTP POST with honest outcomes."""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

from assistant.errors import UserError

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
# answers worth another try although they are 4xx: timeout, too early, too many requests
RETRYABLE_4XX = {408, 425, 429}

# A ticket as the outbox keeps it; templates are checked against it at start-up, so a
# template that names a missing field fails when the server starts, not at the first ticket.
SAMPLE_TICKET: dict[str, Any] = {
    "id": "esc-0000000000000000",
    "idempotency_key": "0" * 32,
    "created_at": "2026-01-01T09:00:00+00:00",
    "user": "alice",
    "priority": "normal",
    "summary": "VPN says TP-204",
    "model": "helpdesk-demo",
    "conversation_id": "conv-0000000000000000",
    "transcript": [
        {"role": "user", "content": "My VPN says TP-204"},
        {"role": "assistant", "content": "The docs do not cover this."},
    ],
    "sources": [{"source": "it/vpn.md", "title": "VPN", "score": 0.41}],
    "links": {
        "escalation": "http://127.0.0.1:8000/v1/escalations/esc-0000000000000000",
        "conversation": "http://127.0.0.1:8000/v1/conversations/conv-0000000000000000",
        "page": "http://127.0.0.1:8000/",
    },
}


class DeliveryError(Exception):
    """A delivery that did not create the ticket. ``retry``: worth another try later (5xx,
    timeouts, refused connections); not for a refusal that will not change (4xx, bad login).
    ``retry_after``: seconds the receiver asked us to wait."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after


class Connector(Protocol):
    """Where tickets go: a webhook, an SMTP server, Jira, Zendesk, ServiceNow (or a fake)."""

    name: str

    def deliver(self, ticket: dict, idempotency_key: str) -> str | None:
        """Create the ticket; the reference the ticket system gave it (``None`` if none).
        Raises ``DeliveryError``."""
        ...

    def close(self) -> None: ...


def transcript_text(ticket: dict) -> str:
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in ticket["transcript"])


class Template:
    """A Jinja2 template (sandboxed, undefined names are errors) for ticket bodies; the
    context is ``ticket`` and ``transcript_text``."""

    def __init__(self, path: Path | None, default: str, *, json_body: bool = False) -> None:
        from jinja2 import StrictUndefined, TemplateError
        from jinja2.sandbox import SandboxedEnvironment

        self.path = Path(path) if path else TEMPLATES / default
        self.json_body = json_body
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"ticket template '{self.path}' cannot be read: {exc}") from None
        env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)
        env.filters["tojson"] = _tojson
        try:
            self._template = env.from_string(text)
            self.render(SAMPLE_TICKET)
        except (TemplateError, ValueError, TypeError) as exc:
            raise UserError(
                f"ticket template '{self.path}' does not render: {type(exc).__name__}: {exc}"
            ) from None

    def render(self, ticket: dict) -> str:
        text = self._template.render(ticket=ticket, transcript_text=transcript_text(ticket))
        if self.json_body:
            try:
                json.loads(text)
            except ValueError as exc:
                raise ValueError(f"it does not make valid JSON ({exc})") from None
        return text


def _tojson(value: Any, indent: int | None = None) -> str:
    """JSON for a template, where a misspelt field is named, not "not serializable"."""
    from jinja2 import Undefined

    if isinstance(value, Undefined):
        value._fail_with_undefined_error()
    return json.dumps(value, ensure_ascii=False, indent=indent)


def render_or_fail(template: Template, ticket: dict) -> str:
    """Render for a delivery: a ticket the template cannot render never will (no retry)."""
    from jinja2 import TemplateError

    try:
        return template.render(ticket)
    except (TemplateError, ValueError, TypeError) as exc:
        raise DeliveryError(f"template '{template.path}' failed: {exc}", retry=False) from None


def http_client(timeout_s: float, verify: Any = True):
    import httpx

    return httpx.Client(timeout=timeout_s, verify=verify, follow_redirects=False)


def post(client, url: str, content: bytes, headers: dict, auth=None, what: str = "receiver"):
    """POST and judge the answer: the parsed JSON body of a 2xx (``None`` if not JSON);
    otherwise ``DeliveryError`` (retry on 5xx, 408/425/429, timeouts and network errors)."""
    import httpx

    try:
        resp = client.post(url, content=content, headers=headers, auth=auth)
    except httpx.TimeoutException:
        raise DeliveryError(f"the {what} did not answer in time ({url})", retry=True) from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"cannot reach the {what} ({url}): {exc}", retry=True) from None
    if 200 <= resp.status_code < 300:
        try:
            return resp.json()
        except ValueError:
            return None
    text = " ".join(resp.text.split())[:300] or resp.reason_phrase
    if 300 <= resp.status_code < 400:
        where = resp.headers.get("location", "?")
        message = f"the {what} redirected to {where}: configure the final URL"
        raise DeliveryError(message, retry=False)
    retry = resp.status_code >= 500 or resp.status_code in RETRYABLE_4XX
    raise DeliveryError(
        f"the {what} answered {resp.status_code}: {text}",
        retry=retry,
        retry_after=_retry_after(resp.headers.get("retry-after")) if retry else None,
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
