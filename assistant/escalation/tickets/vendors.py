"""Ticket systems with their own APIs: Jira Service Management, Zendesk, ServiceNow.

Each sends the request its vendor documents, with the description rendered from the text
template (``escalation_ticket.txt.j2``), and reads the ticket's key or number from the
documented answer:
- Jira Service Management, "create customer request": ``POST /rest/servicedeskapi/request``
  with ``serviceDeskId``, ``requestTypeId`` and ``requestFieldValues`` (summary,
  description), basic auth with an account e-mail and API token; answer ``issueKey``.
  Jira takes no idempotency key: a delivery that timed out after Jira created the request
  can, when retried, make a second one.
- Zendesk, "create ticket": ``POST /api/v2/tickets`` with ``{"ticket": {subject, comment,
  priority, tags}}``, basic auth ``EMAIL/token:API_TOKEN``, and the ``Idempotency-Key``
  header Zendesk honours; answer ``ticket.id``.
- ServiceNow, Table API: ``POST /api/now/table/incident`` with ``short_description``,
  ``description``, ``urgency``, ``impact`` and ``correlation_id`` (the idempotency key, for
  finding a duplicate; the Table API does not refuse one), basic auth; answer
  ``result.number``.
"""

from __future__ import annotations

import json
from pathlib import Path

from assistant.escalation.tickets.base import (
    DeliveryError,
    Template,
    http_client,
    post,
    render_or_fail,
)

JSON = {"Content-Type": "application/json", "Accept": "application/json"}


class _Vendor:
    name = ""
    what = ""

    def __init__(
        self, url: str, user: str, token: str, template: Path | None, timeout_s: float
    ) -> None:
        self.url = url.rstrip("/")
        self.auth = (user, token)
        self.template = Template(template, "escalation_ticket.txt.j2")
        self._client = http_client(timeout_s)

    def _post(self, path: str, body: dict, headers: dict | None = None):
        content = json.dumps(body).encode()
        answer = post(self._client, self.url + path, content, {**JSON, **(headers or {})},
                      auth=self.auth, what=self.what)  # fmt: skip
        return answer if isinstance(answer, dict) else {}

    def _reference(self, value) -> str:
        if value in (None, ""):  # 2xx without the documented field: not something to retry
            raise DeliveryError(f"{self.what} answered without a ticket reference", retry=False)
        return str(value)

    def close(self) -> None:
        self._client.close()


class JiraConnector(_Vendor):
    name = "jira"
    what = "Jira Service Management"

    def __init__(self, url, email, token, service_desk_id, request_type_id, *,
                 template=None, timeout_s=15.0) -> None:  # fmt: skip
        super().__init__(url, email, token, template, timeout_s)
        self.service_desk_id, self.request_type_id = service_desk_id, request_type_id

    def deliver(self, ticket: dict, idempotency_key: str) -> str | None:
        body = {
            "serviceDeskId": self.service_desk_id,
            "requestTypeId": self.request_type_id,
            "requestFieldValues": {
                "summary": ticket["summary"][:250],
                "description": render_or_fail(self.template, ticket),
            },
        }
        return self._reference(self._post("/rest/servicedeskapi/request", body).get("issueKey"))


class ZendeskConnector(_Vendor):
    name = "zendesk"
    what = "Zendesk"

    def __init__(self, url, email, token, *, template=None, timeout_s=15.0) -> None:
        super().__init__(url, f"{email}/token", token, template, timeout_s)

    def deliver(self, ticket: dict, idempotency_key: str) -> str | None:
        body = {
            "ticket": {
                "subject": ticket["summary"],
                "comment": {"body": render_or_fail(self.template, ticket)},
                "priority": ticket["priority"],  # low, normal, high, urgent: Zendesk's own
                "tags": ["helpdesk-assistant"],
            }
        }
        answer = self._post("/api/v2/tickets", body, {"Idempotency-Key": idempotency_key})
        return self._reference((answer.get("ticket") or {}).get("id"))


# ServiceNow's priority is worked out from impact and urgency (1 high .. 3 low)
SERVICENOW_LEVELS = {"urgent": ("1", "1"), "high": ("2", "1"), "normal": ("2", "2"),
                     "low": ("3", "3")}  # fmt: skip


class ServiceNowConnector(_Vendor):
    name = "servicenow"
    what = "ServiceNow"

    def deliver(self, ticket: dict, idempotency_key: str) -> str | None:
        impact, urgency = SERVICENOW_LEVELS[ticket["priority"]]
        body = {
            "short_description": ticket["summary"][:160],
            "description": render_or_fail(self.template, ticket),
            "impact": impact,
            "urgency": urgency,
            "correlation_id": idempotency_key,
            "correlation_display": "helpdesk-assistant",
        }
        answer = self._post("/api/now/table/incident", body)
        return self._reference((answer.get("result") or {}).get("number"))
