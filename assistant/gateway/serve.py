"""``assistant serve``: pre-flight checks, the services (engine, stores, index), the
gateway with its page, then uvicorn."""

from __future__ import annotations

import json
import sys
import urllib.request

import uvicorn
from fastapi import FastAPI

from assistant.engine.checks import check_port_free, url_host
from assistant.errors import UserError
from assistant.escalation.tickets import build_connectors
from assistant.gateway.app import create_app
from assistant.gateway.services import Services, build_services
from assistant.gateway.session import page_guard
from assistant.models.install import resolve
from assistant.settings import Settings

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


OPEN_PAGE_NOTE = (
    "note: with ASSISTANT_AUTH=none the chat page answers anyone who reaches it, as the "
    "service user; set ASSISTANT_AUTH=local (or oidc, header) to require sign-in"
)


def check_auth(settings: Settings, *, log=print) -> None:
    """Refuse set-ups that would let anyone in, or that are not complete; with API keys
    and no sign-in, say (``log``) that the page still answers anyone."""
    if settings.auth == "none" and not settings.api_keys and settings.host not in LOOPBACK:
        raise UserError(
            f"refusing to listen on {settings.host} with ASSISTANT_AUTH=none and no API keys: "
            "anyone who reaches the port could read every document. Set ASSISTANT_API_KEYS, "
            "or ASSISTANT_AUTH=header behind an auth proxy, or listen on 127.0.0.1"
        )
    if settings.auth == "oidc" and not (settings.oidc_issuer and settings.oidc_client_id):
        raise UserError(
            "ASSISTANT_AUTH=oidc needs ASSISTANT_OIDC_ISSUER (the provider's issuer URL) and "
            "ASSISTANT_OIDC_CLIENT_ID (and ASSISTANT_OIDC_CLIENT_SECRET for a confidential "
            "client); the provider must allow the redirect URL <public_url>/auth/callback"
        )
    if settings.auth == "header" and not settings.trusted_proxies:
        raise UserError(
            "ASSISTANT_AUTH=header needs ASSISTANT_TRUSTED_PROXIES: the addresses of the auth "
            "proxy whose user and groups headers are believed"
        )
    if settings.auth == "none" and settings.api_keys:
        log(OPEN_PAGE_NOTE)


def run_server(settings: Settings, *, log=print) -> None:
    """Pre-flight checks (each fails in a second, before vLLM's minute), the services,
    the gateway with its page, then uvicorn until the server is stopped."""
    check_auth(settings, log=log)
    check_port_free(settings.host, settings.port)
    # a ticket connector without its settings, or a template that does not render
    connectors = build_connectors(settings)
    check_model(settings)
    services = build_services(settings, ticket_connectors=connectors, log=log)
    app = create_app(services)
    _mount_page(app, services)
    base = f"http://{url_host(settings.host)}:{settings.port}"
    log(
        f"\n  Page: {base}/\n  API:  {base}/v1  (model '{settings.model_name}')\n"
        f"  try:  curl {base}/v1/chat/completions -H 'Content-Type: application/json' "
        f"""-d '{{"model": "{settings.model_name}", "messages": [{{"role": "user", """
        f""""content": "How do I connect to the VPN?"}}]}}'\n"""
    )
    sys.stdout.flush()
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    finally:
        if services.engine is not None:
            services.engine.stop()


def check_model(settings: Settings) -> None:
    """An engine to start needs a model: the configured one, or the demo model."""
    if not settings.llm_urls and settings.model is None and not settings.demo_model_dir.is_dir():
        raise UserError(
            f"no model configured and no demo model in '{settings.demo_model_dir}'; run "
            f"'assistant demo-model --output {settings.demo_model_dir}' or pass --model"
        )
    if not settings.llm_urls and settings.model is not None:
        resolve(settings.model, settings.models_dir, "llm")  # a name not installed: one sentence


def _mount_page(app: FastAPI, services: Services) -> None:
    """The page is a client of this same server's API, over loopback HTTP."""
    import gradio as gr

    settings = services.settings
    host = "127.0.0.1" if settings.host in {"0.0.0.0", "::"} else url_host(settings.host)
    model = settings.model_name
    if settings.llm_urls and not (settings.model or settings.served_model_name):
        model = _first_remote_model(settings.llm_urls[0]) or model
    notice = None
    if settings.model is None and not settings.llm_urls:
        notice = (
            "Running the offline demo model: a tiny model trained only to quote the "
            "documentation passages it is given and cite them. It is not a real assistant; "
            "see the README to serve a real model."
        )
    # With sign-in, the page acts as the signed-in person (their session), never a key;
    # without, as the service user of the first API key, server-side only.
    key = settings.api_keys[0] if settings.api_keys and settings.auth == "none" else None
    from ui.chat_page import build_page  # gradio: heavy, only when serving

    page = build_page(f"http://{host}:{settings.port}/v1", model, key, notice=notice)
    gr.mount_gradio_app(app, page, path="/", auth_dependency=page_guard(services.auth, settings))


def _first_remote_model(url: str) -> str | None:
    """The base model an existing vLLM server serves (the first of its /v1/models)."""
    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:
            return json.load(resp)["data"][0]["id"]
    except (OSError, ValueError, KeyError, IndexError):
        return None
