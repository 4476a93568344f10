"""Ticket connectors against real servers on loopback: SMTP with STARTTLS and login
(aiosmtpd), and HTTP servers that check each request the way Jira Service Management,
Zendesk and ServiceNow document it and answer in their documented shapes."""

from __future__ import annotations

import base64
import datetime
import ipaddress

import pytest

from assistant.escalation.store import EscalationStore
from assistant.escalation.tickets.base import SAMPLE_TICKET, DeliveryError
from assistant.escalation.tickets.email import EmailConnector
from assistant.escalation.tickets.vendors import (
    JiraConnector,
    ServiceNowConnector,
    ZendeskConnector,
)
from assistant.escalation.tickets.webhook import WebhookConnector
from assistant.escalation.worker import EscalationWorker
from tests.conftest import free_port
from tests.ticket_receiver import Receiver

TICKET = {**SAMPLE_TICKET, "priority": "high"}
KEY = "k" * 32


# --- SMTP ------------------------------------------------------------------------------------
def _certificates(folder):
    """A CA and a certificate for 127.0.0.1 signed by it (what a company relay has)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)

    def make(subject, issuer, key, signer, ca, sans=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
            )
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=not ca,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=ca,
                    crl_sign=ca,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = make("Test CA", "Test CA", ca_key, ca_key, True)
    sans = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = make("127.0.0.1", "Test CA", key, ca_key, False, sans)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem))
    (folder / "key.pem").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return folder / "ca.pem", folder / "cert.pem", folder / "key.pem"


@pytest.fixture(scope="module")
def smtp(tmp_path_factory):
    """aiosmtpd on loopback: STARTTLS required, then AUTH (desk / right-password)."""
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    ca, cert, key = _certificates(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    class Inbox:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append((envelope, session.ssl is not None, session.authenticated))
            return "250 OK"

    def login(server, session, envelope, mechanism, data):
        ok = (data.login, data.password) == (b"desk", b"right-password")
        return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535

    inbox = Inbox()
    controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=free_port(),
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=login,
    )
    controller.start()
    yield controller, inbox, ca
    controller.stop()


def mailer(smtp, **overrides) -> EmailConnector:
    controller, _, ca = smtp
    options = {
        "host": "127.0.0.1",
        "port": controller.port,
        "sender": "assistant@corp.example",
        "to": ["servicedesk@corp.example"],
        "user": "desk",
        "password": "right-password",
        "ca_file": ca,
        "timeout_s": 5,
    }
    return EmailConnector(**{**options, **overrides})


def test_email_goes_over_starttls_with_a_login(smtp):
    reference = mailer(smtp).deliver(TICKET, KEY)
    assert reference == f"<{KEY}@helpdesk-assistant>"
    envelope, over_tls, authenticated = smtp[1].messages[-1]
    assert over_tls and authenticated
    assert envelope.rcpt_tos == ["servicedesk@corp.example"]
    text = envelope.content.decode()
    assert "Subject: [help desk, high] VPN says TP-204" in text
    assert f"Message-ID: <{KEY}@helpdesk-assistant>" in text
    assert "user: My VPN says TP-204" in text and "VPN (it/vpn.md)" in text


def test_smtp_refusing_the_login_fails_the_escalation_with_a_clear_reason(smtp, tmp_path):
    store = EscalationStore(tmp_path / "escalations.sqlite")
    worker = EscalationWorker(store, [mailer(smtp, password="wrong")])
    row = store.add({**TICKET, "id": store.new_id()}, "alice", ["email"])
    assert worker.deliver(row) == "failed"
    reason = store.get(row["id"])["reason"]
    assert "refused the login of 'desk'" in reason and "535" in reason


def test_an_untrusted_smtp_certificate_is_not_retried(smtp):
    with pytest.raises(DeliveryError, match="certificate is not trusted") as failure:
        mailer(smtp, ca_file=None).deliver(TICKET, KEY)
    assert not failure.value.retry


# --- ticket systems over HTTP ------------------------------------------------------------------
def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def vendor(check, answer):
    """A server that answers ``answer`` when ``check(request)`` finds nothing wrong, else a
    400 saying what was wrong (so a failing test shows it)."""

    def respond(request):
        problems = check(request)
        return (400, {"problems": problems}, 0) if problems else answer

    return Receiver(respond)


def expect(request, path, auth, **fields):
    h = request["headers"]
    problems = [
        f"{name} is {got!r}"
        for name, got, want in [
            ("path", request["path"], path),
            ("Authorization", h.get("Authorization"), auth),
            ("Content-Type", h.get("Content-Type"), "application/json"),
            ("Accept", h.get("Accept"), "application/json"),
        ]
        if got != want
    ]
    body = request["json"] or {}
    for name, test in fields.items():
        if not test(body):
            problems.append(f"{name} is wrong in {body}")
    return problems


def test_jira_service_management_create_customer_request():
    # answer: the CustomerRequest shape documented for POST /rest/servicedeskapi/request
    answer = (
        201,
        {
            "_expands": ["participant", "status", "sla", "requestType", "serviceDesk"],
            "issueId": "107001",
            "issueKey": "HELPDESK-1",
            "requestTypeId": "25",
            "serviceDeskId": "10",
            "createdDate": {
                "iso8601": "2015-10-08T14:42:00+0700",
                "jira": "2015-10-08T14:42:00.000+0700",
                "friendly": "Monday 14:42 PM",
                "epochMillis": 1444290120000,
            },
            "reporter": {
                "accountId": "qm:a713c8ea-1075-4e30-9d96-891a7d181739:5ad6d3581db05e2a66fa80b",
                "displayName": "Assistant",
                "active": True,
            },
            "requestFieldValues": [
                {"fieldId": "summary", "label": "What do you need?", "value": "VPN says TP-204"}
            ],
            "currentStatus": {"status": "Waiting for Support", "statusDate": {}},
            "_links": {
                "web": "https://your-domain.atlassian.net/servicedesk/customer/portal/10/HELPDESK-1",
                "self": "https://your-domain.atlassian.net/rest/servicedeskapi/request/107001",
            },
        },
        0,
    )

    def check(r):
        return expect(
            r,
            "/rest/servicedeskapi/request",
            basic("agent@corp.example", "jira-token"),
            ids=lambda b: (b.get("serviceDeskId"), b.get("requestTypeId")) == ("10", "25"),
            summary=lambda b: b["requestFieldValues"]["summary"] == "VPN says TP-204",
            description=lambda b: "My VPN says TP-204" in b["requestFieldValues"]["description"],
        )

    server = vendor(check, answer)
    try:
        jira = JiraConnector(server.url, "agent@corp.example", "jira-token", "10", "25")
        assert jira.deliver(TICKET, KEY) == "HELPDESK-1"
    finally:
        server.close()


def test_zendesk_create_ticket_with_its_idempotency_key():
    # answer: the documented 201 of POST /api/v2/tickets
    answer = (
        201,
        {
            "ticket": {
                "id": 35436,
                "url": "https://example.zendesk.com/api/v2/tickets/35436.json",
                "subject": "VPN says TP-204",
                "priority": "high",
                "status": "new",
                "requester_id": 20978392,
                "submitter_id": 76872,
                "tags": ["helpdesk-assistant"],
                "created_at": "2009-07-20T22:55:29Z",
                "updated_at": "2011-05-05T10:38:52Z",
            },
            "audit": {"events": []},
        },
        0,
    )

    def check(r):
        problems = expect(
            r,
            "/api/v2/tickets",
            basic("agent@corp.example/token", "zd-token"),
            subject=lambda b: b["ticket"]["subject"] == "VPN says TP-204",
            comment=lambda b: "My VPN says TP-204" in b["ticket"]["comment"]["body"],
            priority=lambda b: b["ticket"]["priority"] == "high",
        )
        if r["headers"].get("Idempotency-Key") != KEY:
            problems.append("no Idempotency-Key")
        return problems

    server = vendor(check, answer)
    try:
        zendesk = ZendeskConnector(server.url, "agent@corp.example", "zd-token")
        assert zendesk.deliver(TICKET, KEY) == "35436"
    finally:
        server.close()
    # Zendesk's documented validation error is final, with its description kept
    invalid = (
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {"requester": [{"description": "Requester: is invalid"}]},
        },
        0,
    )
    server = Receiver(lambda r: invalid)
    try:
        with pytest.raises(DeliveryError, match=r"422.*Requester: is invalid") as failure:
            ZendeskConnector(server.url, "agent@corp.example", "zd-token").deliver(TICKET, KEY)
        assert not failure.value.retry
    finally:
        server.close()


def test_servicenow_table_api_incident():
    # answer: the documented 201 of POST /api/now/table/incident (fields trimmed)
    answer = (
        201,
        {
            "result": {
                "sys_id": "d977b66a4f411200adf9f8e18110c7b2",
                "number": "INC0010002",
                "short_description": "VPN says TP-204",
                "state": "1",
                "impact": "2",
                "urgency": "1",
                "priority": "3",
                "opened_at": "2016-01-22 19:07:38",
                "active": "true",
                "caller_id": "",
                "sys_class_name": "incident",
            }
        },
        0,
    )

    def check(r):
        return expect(
            r,
            "/api/now/table/incident",
            basic("integration", "sn-pass"),
            short_description=lambda b: b["short_description"] == "VPN says TP-204",
            description=lambda b: "My VPN says TP-204" in b["description"],
            levels=lambda b: (b["impact"], b["urgency"]) == ("2", "1"),
            correlation=lambda b: b["correlation_id"] == KEY,
        )

    server = vendor(check, answer)
    try:
        servicenow = ServiceNowConnector(server.url, "integration", "sn-pass", None, 5)
        assert servicenow.deliver(TICKET, KEY) == "INC0010002"
    finally:
        server.close()


def test_webhook_answers_retry_and_reference_rules():
    script = iter(
        [
            (200, {"key": "OPS-7"}, 0),  # the reference may come as "key"
            (202, b"accepted", 0),  # not JSON: delivered, no reference
            (429, {"error": "slow down"}, 0, {"Retry-After": "7"}),
            (301, b"", 0),
        ]
    )
    server = Receiver(lambda r: next(script))
    try:
        hook = WebhookConnector(server.url, timeout_s=5)
        assert hook.deliver(TICKET, KEY) == "OPS-7"
        assert hook.deliver(TICKET, KEY) is None
        with pytest.raises(DeliveryError, match="429") as slow:
            hook.deliver(TICKET, KEY)
        assert slow.value.retry and slow.value.retry_after == 7
        with pytest.raises(DeliveryError, match="redirected") as moved:
            hook.deliver(TICKET, KEY)
        assert not moved.value.retry
    finally:
        server.close()


def test_settings_choose_several_connectors_at_once(tmp_path):
    from assistant.escalation.tickets import build_connectors
    from assistant.settings import load_settings

    settings = load_settings(
        home=tmp_path,
        escalation_connectors="webhook, email,jira,zendesk,servicenow",
        escalation_webhook_url="https://hooks.corp.example/tickets",
        escalation_smtp_host="smtp.corp.example",
        escalation_email_from="assistant@corp.example",
        escalation_email_to="desk@corp.example,oncall@corp.example",
        escalation_jira_url="https://corp.atlassian.net",
        escalation_jira_email="a@corp.example",
        escalation_jira_token="t",
        escalation_jira_service_desk_id="10",
        escalation_jira_request_type_id="25",
        escalation_zendesk_url="https://corp.zendesk.com",
        escalation_zendesk_email="a@corp.example",
        escalation_zendesk_token="t",
        escalation_servicenow_url="https://corp.service-now.com",
        escalation_servicenow_user="u",
        escalation_servicenow_password="p",
    )
    connectors = build_connectors(settings)
    assert [c.name for c in connectors] == ["webhook", "email", "jira", "zendesk", "servicenow"]
    assert connectors[1].to == ["desk@corp.example", "oncall@corp.example"]
    assert connectors[4].url == "https://corp.service-now.com"
    for connector in connectors:
        connector.close()


def test_the_text_ticket_says_which_documents_were_only_found():
    from assistant.escalation.tickets.base import Template

    ticket = {**TICKET, "sources": [
        {"source": "vpn.md", "title": "VPN", "score": 0.7, "used": True},
        {"source": "guest-wifi.html", "title": "Guest Wi-Fi", "score": 0.12, "used": False},
        {"source": "old.md", "title": "From before the flag", "score": 0.5},
    ]}  # fmt: skip
    text = Template(None, "escalation_ticket.txt.j2").render(ticket)
    assert "- VPN (vpn.md)\n" in text and "- From before the flag (old.md)\n" in text
    assert "- Guest Wi-Fi (guest-wifi.html): found, but not close enough to answer from" in text
