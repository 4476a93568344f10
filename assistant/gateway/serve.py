"""``assistant serve``: pre-flight checks, the engine (child or remote), then the gateway."""

from __future__ import annotations

import sys

from assistant.engine.checks import check_port_free, url_host
from assistant.engine.config import engine_config
from assistant.engine.supervisor import EngineProcess
from assistant.errors import UserError
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
    check_auth(settings, log=log)
    check_port_free(settings.host, settings.port)
    from assistant.escalation.tickets import build_connectors

    # before vLLM starts: a ticket connector without its settings, or a template that does
    # not render, fails in a second
    connectors = build_connectors(settings)
    if not settings.llm_urls and settings.model is None and not settings.demo_model_dir.is_dir():
        raise UserError(
            f"no model configured and no demo model in '{settings.demo_model_dir}'; run "
            f"'assistant demo-model --output {settings.demo_model_dir}' or pass --model"
        )

    from retrieval.store import StoreLock, open_client

    # Before vLLM starts, so a store in use fails in a second, not after a minute.
    lock = None if settings.chroma_url else StoreLock(settings.index_dir, "assistant serve")
    if lock is not None:
        lock.acquire()
    client = open_client(settings.index_dir, settings.chroma_url)

    import uvicorn

    from assistant.chat.upstream import HttpUpstream
    from assistant.gateway.app import create_app

    engine = None
    if settings.llm_urls:
        urls = settings.llm_urls
        log(f"using existing vLLM servers: {', '.join(urls)}")
        upstream = HttpUpstream(urls, timeout_s=settings.request_timeout_s)
    else:
        engine = EngineProcess(engine_config(settings))
        log(
            f"starting vLLM on {settings.model_path} as '{settings.model_name}' "
            f"(log: {engine.config.log_file}); this takes a minute on a CPU..."
        )
        engine.start(wait=True)
        log(f"vLLM ready at {engine.url}")
        upstream = HttpUpstream(
            [engine.url], timeout_s=settings.request_timeout_s, state=lambda: engine.state
        )
    from assistant.escalation.store import EscalationStore
    from assistant.identity.users import UserStore
    from assistant.knowledge.index import IndexService, make_embedder
    from assistant.knowledge.jobs import JobRunner, JobStore
    from finetune.feedback import FeedbackStore

    embedder = make_embedder(settings)
    runner = JobRunner(JobStore(settings.home / "jobs.sqlite"))
    stops = [runner.shutdown, *([engine.stop] if engine is not None else [])]
    if lock is not None:
        stops.append(lock.release)
    app = create_app(
        settings,
        upstream=upstream,
        index=_open_index(settings, client, embedder, log),
        embedder=embedder,
        engine_restarts=(lambda: engine.restarts) if engine is not None else None,
        index_service=IndexService(settings, client, embedder, runner),
        feedback_store=FeedbackStore(settings.feedback_path),
        users=UserStore.from_settings(settings),
        escalation_store=EscalationStore(settings.escalations_path),
        ticket_connectors=connectors,
        on_shutdown=stops,
    )
    base = f"http://{url_host(settings.host)}:{settings.port}"
    _mount_page(app, settings)
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
        if engine is not None:
            engine.stop()


def _mount_page(app, settings: Settings) -> None:
    """The page is a client of this same server's API, over loopback HTTP."""
    import gradio as gr

    from ui.chat_page import build_page

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
    page = build_page(f"http://{host}:{settings.port}/v1", model, key, notice=notice)
    gr.mount_gradio_app(app, page, path="/", auth_dependency=page_guard(app, settings))


def page_guard(app, settings: Settings):
    """With sign-in, the page and its Gradio API answer only callers with a session."""
    if settings.auth == "none":
        return None

    def signed_in(request) -> str | None:
        user = app.state.auth.session_user(request.headers.get("cookie"))
        if user is not None:
            return user.name
        if settings.auth == "header":  # the first page load through the proxy
            from assistant.errors import APIError
            from assistant.gateway.routes.openai import client_host

            try:
                return app.state.auth.principal(request.headers, client_host(request)).name
            except APIError:
                return None
        return None

    return signed_in


def _first_remote_model(url: str) -> str | None:
    """The base model an existing vLLM server serves (the first of its /v1/models)."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(url + "/v1/models", timeout=5) as resp:
            return json.load(resp)["data"][0]["id"]
    except (OSError, ValueError, KeyError, IndexError):
        return None


def _open_index(settings: Settings, client, embedder, log):
    """The docs retriever over the configured Chroma; answers stay ungrounded without it."""
    if not settings.retrieval_enabled:
        return None
    from assistant.knowledge.index import make_retriever

    names = {c if isinstance(c, str) else c.name for c in client.list_collections()}
    if settings.collection not in names:
        log(
            f"note: no '{settings.collection}' collection in {settings.index_dir} yet; answers "
            f"are not grounded until you run 'assistant index'"
        )
    import threading

    retriever = make_retriever(settings, client, embedder, background_refresh=True)
    if settings.retrieval_mode != "dense":
        threading.Thread(target=retriever.warm, name="warm-keyword-index", daemon=True).start()
    return retriever
