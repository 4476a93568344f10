"""Ticket connectors: where an escalation goes (webhook, email, jira, zendesk, servicenow).

``build_connectors(settings)`` makes the configured ones and checks them at start-up: a
connector without the settings it needs, or a template that does not render, stops the
server with one clear sentence instead of failing at the first ticket.
"""

from __future__ import annotations

from assistant.errors import UserError
from assistant.escalation.tickets import vendors
from assistant.escalation.tickets.base import Connector, DeliveryError
from assistant.escalation.tickets.email import EmailConnector
from assistant.escalation.tickets.webhook import WebhookConnector

__all__ = ["CONNECTORS", "Connector", "DeliveryError", "build_connectors", "connector_names"]

CONNECTORS = ("webhook", "email", "jira", "zendesk", "servicenow")

# the settings each connector cannot do without (ASSISTANT_ESCALATION_<NAME>)
REQUIRED = {
    "webhook": ("escalation_webhook_url",),
    "email": ("escalation_smtp_host", "escalation_email_from", "escalation_email_to"),
    "jira": ("escalation_jira_url", "escalation_jira_email", "escalation_jira_token",
             "escalation_jira_service_desk_id", "escalation_jira_request_type_id"),
    "zendesk": ("escalation_zendesk_url", "escalation_zendesk_email", "escalation_zendesk_token"),
    "servicenow": ("escalation_servicenow_url", "escalation_servicenow_user",
                   "escalation_servicenow_password"),
}  # fmt: skip


def connector_names(settings) -> list[str]:
    """The configured connectors; unset: ``webhook`` when its URL is set, else none."""
    names = list(settings.escalation_connectors)
    if not names and settings.escalation_webhook_url:
        names = ["webhook"]
    return names


def build_connectors(settings) -> list[Connector]:
    names = connector_names(settings)
    for name in names:
        if name not in CONNECTORS:
            raise UserError(
                f"unknown ticket connector '{name}' in ASSISTANT_ESCALATION_CONNECTORS; "
                f"choose from {', '.join(CONNECTORS)}"
            )
        missing = [f for f in REQUIRED[name] if not getattr(settings, f)]
        if missing:
            wanted = ", ".join(f"ASSISTANT_{f.upper()}" for f in missing)
            raise UserError(f"the '{name}' ticket connector needs {wanted}")
    if len(set(names)) != len(names):
        raise UserError("ASSISTANT_ESCALATION_CONNECTORS names a connector twice")
    return [_make(name, settings) for name in names]


def _make(name: str, s) -> Connector:
    timeout, text = s.escalation_timeout_s, s.escalation_text_template
    if name == "webhook":
        return WebhookConnector(s.escalation_webhook_url, template=s.escalation_webhook_template,
                                secret=s.escalation_webhook_secret, timeout_s=timeout)  # fmt: skip
    if name == "email":
        return EmailConnector(
            host=s.escalation_smtp_host,
            port=s.escalation_smtp_port,
            sender=s.escalation_email_from,
            to=s.escalation_email_to,
            security=s.escalation_smtp_security,
            user=s.escalation_smtp_user,
            password=s.escalation_smtp_password,
            ca_file=s.escalation_smtp_ca_file,
            template=text,
            timeout_s=timeout,
        )

    if name == "jira":
        return vendors.JiraConnector(
            s.escalation_jira_url, s.escalation_jira_email, s.escalation_jira_token,
            s.escalation_jira_service_desk_id, s.escalation_jira_request_type_id,
            template=text, timeout_s=timeout,
        )  # fmt: skip
    if name == "zendesk":
        return vendors.ZendeskConnector(
            s.escalation_zendesk_url, s.escalation_zendesk_email, s.escalation_zendesk_token,
            template=text, timeout_s=timeout,
        )  # fmt: skip
    return vendors.ServiceNowConnector(
        s.escalation_servicenow_url, s.escalation_servicenow_user,
        s.escalation_servicenow_password, text, timeout,
    )  # fmt: skip
