"""Settings of escalations: the ticket connectors, their credentials, and delivery."""

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from assistant.settings.common import CommaList, split_commas


class TicketSettings(BaseModel):
    # --- tickets (escalations) -----------------------------------------------------------
    escalation_connectors: CommaList = Field(
        default_factory=list,
        description="Where POST /v1/escalations sends tickets, several at once allowed: "
        "webhook, email, jira, zendesk, servicenow (comma-separated in the environment). "
        "Unset: webhook when escalation_webhook_url is set, else none (escalations are off "
        "and answer 503).",
    )
    escalation_webhook_url: str | None = Field(
        None, description="The webhook connector POSTs each ticket as JSON to this URL."
    )
    escalation_webhook_template: Path | None = Field(
        None,
        description="Jinja2 template of the webhook's JSON body. Unset: the shipped "
        "assistant/escalation/templates/escalation_webhook.json.j2. Checked at start-up.",
    )
    escalation_webhook_secret: str | None = Field(
        None,
        description="Signs each webhook body: header X-Assistant-Signature-256: sha256=HEX, "
        "the HMAC-SHA256 of the body bytes with this secret.",
    )
    escalation_text_template: Path | None = Field(
        None,
        description="Jinja2 template of the ticket as text (the e-mail body; the description "
        "of Jira, Zendesk and ServiceNow tickets). Unset: the shipped "
        "assistant/escalation/templates/escalation_ticket.txt.j2.",
    )
    escalation_smtp_host: str | None = Field(None, description="email connector: SMTP server.")
    escalation_smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    escalation_smtp_security: Literal["starttls", "ssl", "none"] = Field(
        "starttls",
        description="starttls: upgrade to TLS before logging in (port 587); ssl: TLS from the "
        "start (port 465); none: plain text, for a relay on loopback only.",
    )
    escalation_smtp_user: str | None = Field(None, description="SMTP login (unset: none).")
    escalation_smtp_password: str | None = Field(None, description="SMTP password.")
    escalation_smtp_ca_file: Path | None = Field(
        None, description="CA certificate(s) the SMTP server's certificate is checked against "
        "(unset: the system's).",
    )  # fmt: skip
    escalation_email_from: str | None = Field(None, description="email connector: From address.")
    escalation_email_to: CommaList = Field(
        default_factory=list, description="email connector: the service desk's address(es)."
    )
    escalation_jira_url: str | None = Field(
        None, description="jira connector: the site, e.g. https://yourcompany.atlassian.net."
    )
    escalation_jira_email: str | None = Field(None, description="Jira account e-mail.")
    escalation_jira_token: str | None = Field(None, description="Jira API token.")
    escalation_jira_service_desk_id: str | None = Field(
        None, description="Jira Service Management service desk id."
    )
    escalation_jira_request_type_id: str | None = Field(
        None, description="Jira Service Management request type id."
    )
    escalation_zendesk_url: str | None = Field(
        None, description="zendesk connector: e.g. https://yourcompany.zendesk.com."
    )
    escalation_zendesk_email: str | None = Field(None, description="Zendesk agent e-mail.")
    escalation_zendesk_token: str | None = Field(None, description="Zendesk API token.")
    escalation_servicenow_url: str | None = Field(
        None, description="servicenow connector: e.g. https://yourcompany.service-now.com."
    )
    escalation_servicenow_user: str | None = Field(None, description="ServiceNow user.")
    escalation_servicenow_password: str | None = Field(None, description="ServiceNow password.")
    escalation_timeout_s: float = Field(
        15, gt=0, description="Longest wait for a ticket system to answer one delivery."
    )
    escalation_retry_initial_s: float = Field(
        5,
        gt=0,
        description="First wait before a failed delivery is tried again; doubled after each "
        "failure (with random jitter) up to escalation_retry_max_s.",
    )
    escalation_retry_max_s: float = Field(
        600, gt=0, description="Longest wait between two delivery attempts."
    )
    escalation_give_up_s: float = Field(
        86400,
        gt=0,
        description="After this many seconds without a delivery an escalation is given up: "
        "state failed, with the last error as its reason (GET /v1/admin/escalations).",
    )

    @field_validator("escalation_connectors", "escalation_email_to", mode="before")
    @classmethod
    def _split_escalation_lists(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator(
        "escalation_webhook_url", "escalation_jira_url", "escalation_zendesk_url",
        "escalation_servicenow_url",
    )  # fmt: skip
    @classmethod
    def _check_ticket_urls(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' is not an http(s) URL")
        return value
