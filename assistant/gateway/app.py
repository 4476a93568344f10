"""The composition root: ``create_app`` builds the gateway from its dependencies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.analytics.gap_warmer import GapWarmer
from assistant.analytics.service import make_analytics
from assistant.analytics.sources import AnalyticsSources
from assistant.chat.answer_log import AnswerLog
from assistant.chat.embeddings import EmbeddingService
from assistant.chat.feedback import FeedbackService
from assistant.chat.grounding import Grounder
from assistant.chat.prompt import Index
from assistant.chat.query_expansion import HydeExpander
from assistant.chat.schemas import TOO_DEEP
from assistant.chat.service import ChatService, ModelCatalog
from assistant.chat.upstream import Upstream
from assistant.errors import APIError
from assistant.escalation.service import EscalationService
from assistant.escalation.store import EscalationStore
from assistant.escalation.tickets import Connector, build_connectors
from assistant.escalation.worker import EscalationWorker, register_metrics
from assistant.gateway.metrics import Metrics, RequestMetrics
from assistant.identity.auth import Authenticator
from assistant.identity.signing import SourceLinks, load_secret
from assistant.identity.users import UserStore
from assistant.knowledge.docs import DocsService
from assistant.knowledge.index import IndexService
from assistant.settings import Settings
from retrieval.access import EVERYONE
from retrieval.embeddings import Embedder

log = logging.getLogger("assistant")


def create_app(
    settings: Settings,
    *,
    upstream: Upstream,
    index: Index | None = None,
    embedder: Embedder | None = None,
    engine_restarts: Callable[[], float] | None = None,
    index_service: IndexService | None = None,
    feedback_store=None,
    users: UserStore | None = None,
    answers: AnswerLog | None = None,
    secret: bytes | None = None,
    login_delay_s: float = 1.0,
    escalation_store: EscalationStore | None = None,
    ticket_connectors: Sequence[Connector] | None = None,
    on_shutdown: Sequence[Callable[[], None]] = (),
) -> FastAPI:
    """Wire the gateway.

    ``upstream`` is the engine (real vLLM or a test fake); ``index`` the docs search
    (``retrieval.retriever.Retriever`` or a fake); without one, answers are not grounded.
    ``embedder`` serves ``/v1/embeddings``; ``engine_restarts`` feeds ``/metrics``;
    ``index_service`` backs the admin routes (reindex jobs, index overview);
    ``feedback_store`` (``assistant.chat.feedback_store.FeedbackStore``) keeps the ratings
    of answers;
    ``users`` (``assistant.identity.users.UserStore``) holds local users and their API keys;
    ``answers`` (``assistant.chat.answer_log.AnswerLog``, default HOME/answers.sqlite) keeps what
    was answered to whom, which feedback must point at;
    ``secret`` signs session cookies and source links (default: ``secret_key``, else
    HOME/secret.key); ``login_delay_s`` is the pause after a wrong password.
    ``escalation_store`` (default HOME/escalations.sqlite) is the ticket outbox, delivered
    to ``ticket_connectors`` (default: those the settings name, checked here, so a template
    that does not render stops the start) by a worker thread that runs with the app.
    Analytics (``GET /v1/admin/analytics``) read the answer log, feedback store and outbox
    files, clustering content gaps with ``embedder`` (not-grounded questions embedded ahead
    by a ``GapWarmer`` thread) and matching them to ``index``.
    ``on_shutdown`` runs when the server stops (uvicorn re-raises SIGTERM after its own
    shutdown, so code after ``uvicorn.run`` is not a safe place for cleanup).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.escalation_worker.start()  # delivers what is queued, from before too
        if app.state.gap_warmer is not None:
            app.state.gap_warmer.start()
        yield
        if app.state.gap_warmer is not None:
            await asyncio.to_thread(app.state.gap_warmer.stop)
        await asyncio.to_thread(app.state.escalation_worker.stop)
        await upstream.aclose()
        await asyncio.to_thread(app.state.answers.flush)  # answers still being written
        for stop in on_shutdown:
            await asyncio.to_thread(stop)

    if ticket_connectors is None:
        ticket_connectors = build_connectors(settings)
    app = FastAPI(
        title="Help-desk assistant",
        description="OpenAI-compatible API grounded in the company's docs.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.upstream = upstream
    app.state.index_service = index_service
    answers = app.state.answers = answers or AnswerLog(
        settings.home / "answers.sqlite", settings.history_days
    )
    app.state.feedback = (
        FeedbackService(feedback_store, answers) if feedback_store is not None else None
    )
    app.state.docs = DocsService(settings.docs_dir, settings.max_upload_bytes)
    secret = secret or load_secret(settings.secret_key, settings.secret_path)
    app.state.auth = Authenticator.from_settings(settings, users, secret)
    app.state.login_delay_s = login_delay_s
    app.state.oidc = oidc_client(settings, secret) if settings.auth == "oidc" else None
    links = app.state.links = SourceLinks(secret, settings.source_link_minutes * 60)
    metrics = app.state.metrics = Metrics(engine_restarts)
    app.state.embeddings = (
        EmbeddingService(embedder, settings.embedding_model) if embedder is not None else None
    )
    grounder = Grounder.from_settings(
        index,
        settings,
        enabled=settings.retrieval_enabled and index is not None,
        observe=metrics.retrieval.observe,
        expand=HydeExpander(upstream, settings.model_name),
        hyde=settings.retrieval_hyde,
        link=links.url,
    )
    app.state.grounder = grounder
    app.state.chat = ChatService(upstream, ModelCatalog(upstream), grounder, metrics, answers)
    outbox = escalation_store or EscalationStore(settings.escalations_path)
    worker = app.state.escalation_worker = EscalationWorker(
        outbox,
        ticket_connectors,
        retry_initial_s=settings.escalation_retry_initial_s,
        retry_max_s=settings.escalation_retry_max_s,
        give_up_s=settings.escalation_give_up_s,
        observe=register_metrics(metrics.registry, outbox),
    )
    app.state.escalations = EscalationService(
        outbox,
        answers,
        [c.name for c in ticket_connectors],
        model=settings.model_name,
        public_url=settings.public_url,
        wake=worker.notify,
    )
    analytics = app.state.analytics = make_analytics(
        settings,
        AnalyticsSources(
            answers.path, getattr(feedback_store, "path", settings.feedback_path), outbox.path
        ),
        embedder=embedder,
        index=index,
        before=answers.settle,
    )
    app.state.gap_warmer = GapWarmer.of(analytics, settings.analytics_warm_interval_s)

    from assistant.gateway.limits import Limits, ReleaseSlots, admit
    from assistant.gateway.routes import admin, escalations, health, history, login, openai, pages
    from assistant.gateway.routes import analytics as analytics_routes
    from assistant.gateway.routes.login import set_session_cookie
    from assistant.gateway.routes.openai import client_host

    limits = app.state.limits = Limits(
        settings.rate_limit_per_minute, settings.max_concurrent_per_key
    )
    app.include_router(openai.router, dependencies=[Depends(admit)] if limits.enabled else [])
    app.include_router(pages.router)
    app.include_router(pages.sources)
    app.include_router(login.router)
    app.include_router(history.router)
    app.include_router(admin.router)
    app.include_router(escalations.router)
    app.include_router(escalations.admin)
    app.include_router(analytics_routes.router)
    app.include_router(health.router)

    app.add_middleware(RequestMetrics, metrics=metrics)
    if limits.enabled:
        app.add_middleware(ReleaseSlots)

    if settings.auth in {"local", "oidc"}:

        @app.middleware("http")
        async def _sign_in_first(request: Request, call_next):
            """The page itself sends a visitor with no session to the sign-in form."""
            page = request.method == "GET" and request.url.path == "/"
            if page and app.state.auth.session_user(request.headers.get("cookie")) is None:
                return RedirectResponse("/login?next=/", status_code=303)
            return await call_next(request)

    if settings.auth == "header":

        @app.middleware("http")
        async def _session_from_proxy(request: Request, call_next):
            """Behind an auth proxy, the page gets a session for the user the proxy names,
            so the page (which calls the API itself) acts as that person."""
            if request.method != "GET" or request.url.path != "/":
                return await call_next(request)
            try:
                caller = app.state.auth.principal(request.headers, client_host(request))
            except APIError as exc:
                return JSONResponse(exc.body(), status_code=exc.status)
            if app.state.auth.users is None:
                return await call_next(request)
            current = app.state.auth.session_user(request.headers.get("cookie"))
            groups = sorted(caller.groups - {EVERYONE})
            try:  # the proxy's groups are the truth: kept up to date at every page load
                await asyncio.to_thread(app.state.auth.users.sync_external, caller.name, groups)
            except ValueError as exc:
                body = APIError(400, f"the auth proxy's user cannot be used here: {exc}").body()
                return JSONResponse(body, status_code=400)
            response = await call_next(request)
            if current is None or current.name != caller.name:
                auth = app.state.auth
                await asyncio.to_thread(set_session_cookie, response, request, auth, caller.name)
            return response

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError):
        metrics.errors.labels(exc.type).inc()
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException):
        # unknown routes and wrong methods answer in the same shape as every other error
        message = {404: "no such route", 405: "method not allowed"}.get(
            exc.status_code, str(exc.detail)
        )
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's own parse of a deep body
            message = TOO_DEEP
        return JSONResponse(APIError(exc.status_code, message).body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError):
        err = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(p) for p in err["loc"])
        return JSONResponse(APIError(400, f"'{field}': {err['msg']}").body(), status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception):
        log.exception("unhandled error")
        body = APIError(500, f"internal error ({type(exc).__name__}); see the server log").body()
        return JSONResponse(body, status_code=500)

    return app


def oidc_client(settings: Settings, secret: bytes):
    from assistant.identity.oidc import OidcClient, OidcConfig

    if not settings.oidc_issuer or not settings.oidc_client_id:
        raise ValueError("auth=oidc needs ASSISTANT_OIDC_ISSUER and ASSISTANT_OIDC_CLIENT_ID")
    return OidcClient(
        OidcConfig(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            scopes=settings.oidc_scopes,
            groups_claim=settings.oidc_groups_claim,
            username_claim=settings.oidc_username_claim,
        ),
        secret,
    )
