"""The one wiring place: ``build_services`` makes every object the routes and the
background workers use, once, from the settings; ``Services`` holds them, typed, and
starts and stops what runs beside the requests.

Each seam a test fakes is a keyword of ``build_services``. Left at ``OPEN``, a seam is
opened as ``assistant serve`` opens it (the engine, Chroma, the embedding model, the
SQLite stores); ``None`` runs the gateway without it (no grounding, no ``/v1/embeddings``,
no admin index, no feedback store, no local users).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Literal

from assistant.analytics.gap_warmer import GapWarmer
from assistant.analytics.service import AnalyticsService, make_analytics
from assistant.analytics.sources import AnalyticsSources
from assistant.chat.answer_log import AnswerLog
from assistant.chat.embeddings import EmbeddingService
from assistant.chat.feedback import FeedbackService
from assistant.chat.feedback_store import FeedbackStore
from assistant.chat.grounding import Grounder
from assistant.chat.prompt import Index
from assistant.chat.query_expansion import HydeExpander
from assistant.chat.service import ChatService, ModelCatalog
from assistant.chat.upstream import HttpUpstream, Upstream
from assistant.engine.config import engine_config
from assistant.engine.supervisor import EngineProcess
from assistant.escalation.service import EscalationService
from assistant.escalation.store import EscalationStore
from assistant.escalation.tickets import Connector, build_connectors
from assistant.escalation.worker import EscalationWorker, register_metrics
from assistant.gateway.limits import Limits
from assistant.gateway.metrics import Metrics
from assistant.identity.auth import Authenticator
from assistant.identity.oidc import OidcClient, OidcConfig
from assistant.identity.signing import SourceLinks, load_secret
from assistant.identity.users import UserStore
from assistant.knowledge.docs import DocsService
from assistant.knowledge.factories import (
    make_embedder,
    open_index,
    open_store,
    store_lock,
)
from assistant.knowledge.index import IndexService
from assistant.knowledge.jobs import JobRunner, JobStore
from assistant.settings import Settings
from retrieval.embeddings import Embedder


class _Open(Enum):
    OPEN = "open"


OPEN = _Open.OPEN
"""A seam left at this is opened from the settings, as ``assistant serve`` does."""
Opened = Literal[_Open.OPEN]


@dataclass
class Services:
    """Everything the routes and the background workers use; ``create_app`` mounts it."""

    settings: Settings
    upstream: Upstream
    metrics: Metrics
    answers: AnswerLog
    chat: ChatService
    grounder: Grounder
    embeddings: EmbeddingService | None
    feedback: FeedbackService | None
    docs: DocsService
    index_service: IndexService | None
    auth: Authenticator
    oidc: OidcClient | None
    links: SourceLinks
    login_delay_s: float
    limits: Limits
    escalations: EscalationService
    escalation_worker: EscalationWorker
    analytics: AnalyticsService
    gap_warmer: GapWarmer | None
    engine: EngineProcess | None = None
    stops: list[Callable[[], None]] = field(default_factory=list)
    """Run last when the server stops (uvicorn re-raises SIGTERM after its own shutdown,
    so code after ``uvicorn.run`` is not a safe place for cleanup)."""

    def start(self) -> None:
        """Start the background workers (the outbox delivers what is queued, from before
        too)."""
        self.escalation_worker.start()
        if self.gap_warmer is not None:
            self.gap_warmer.start()

    async def stop(self) -> None:
        """Stop the workers, close the engine's connections, write the answers still being
        written, then run ``stops`` (job runner, engine, store lock)."""
        if self.gap_warmer is not None:
            await asyncio.to_thread(self.gap_warmer.stop)
        await asyncio.to_thread(self.escalation_worker.stop)
        await self.upstream.aclose()
        await asyncio.to_thread(self.answers.flush)
        for stop in self.stops:
            await asyncio.to_thread(stop)


@dataclass
class _Backends:
    """What ``assistant serve`` opens before the gateway: engine, Chroma, models, stores."""

    upstream: Upstream
    index: Index | None
    embedder: Embedder | None
    index_service: IndexService | None
    engine: EngineProcess | None
    engine_restarts: Callable[[], float] | None
    feedback_store: FeedbackStore | None
    users: UserStore | None
    stops: list[Callable[[], None]]


def build_services(
    settings: Settings,
    *,
    upstream: Upstream | Opened = OPEN,
    index: Index | Opened | None = OPEN,
    embedder: Embedder | Opened | None = OPEN,
    index_service: IndexService | Opened | None = OPEN,
    feedback_store: FeedbackStore | Opened | None = OPEN,
    users: UserStore | Opened | None = OPEN,
    engine_restarts: Callable[[], float] | None = None,
    answers: AnswerLog | None = None,
    secret: bytes | None = None,
    login_delay_s: float = 1.0,
    escalation_store: EscalationStore | None = None,
    ticket_connectors: Sequence[Connector] | None = None,
    on_shutdown: Sequence[Callable[[], None]] = (),
    log: Callable[[str], None] = print,
) -> Services:
    """Wire the gateway's services; a seam left at ``OPEN`` is opened from ``settings``.

    ``upstream``: the engine (opened: vLLM started here, its restarts fed to ``/metrics``,
    or the servers of ``llm_urls``; else ``engine_restarts`` feeds them). ``index``: the
    docs search (``retrieval.retriever.Retriever``); without one, answers are not grounded.
    ``embedder`` serves ``/v1/embeddings`` and clusters content gaps; ``index_service``
    backs the admin routes (reindex jobs, index overview). ``feedback_store`` keeps the
    ratings of answers; ``users`` holds local users and their API keys. ``answers``
    (default HOME/answers.sqlite) keeps what was answered to whom. ``secret`` signs session
    cookies and source links (default: ``secret_key``, else HOME/secret.key);
    ``login_delay_s`` is the pause after a wrong password. ``escalation_store`` (default
    HOME/escalations.sqlite) is the ticket outbox, delivered to ``ticket_connectors``
    (default: those the settings name, checked first, so a template that does not render
    stops the start before vLLM does). ``on_shutdown`` runs when the server stops.
    """
    if ticket_connectors is None:
        ticket_connectors = build_connectors(settings)
    seams = (upstream, index, embedder, index_service, feedback_store, users)
    back = _open_backends(settings, *seams, log=log)
    answers = answers or AnswerLog(settings.home / "answers.sqlite", settings.history_days)
    secret = secret or load_secret(settings.secret_key, settings.secret_path)
    metrics = Metrics(back.engine_restarts or engine_restarts)
    feedback = None
    if back.feedback_store is not None:
        feedback = FeedbackService(back.feedback_store, answers)
    embeddings = None
    if back.embedder is not None:
        embeddings = EmbeddingService(back.embedder, settings.embedding_model)
    links = SourceLinks(secret, settings.source_link_minutes * 60)
    grounder = _grounder(settings, back, metrics, links)
    outbox = escalation_store or EscalationStore(settings.escalations_path)
    escalations, worker = _escalations(settings, outbox, ticket_connectors, answers, metrics)
    analytics = _analytics(settings, back, answers, outbox)
    return Services(
        settings=settings,
        upstream=back.upstream,
        metrics=metrics,
        answers=answers,
        chat=ChatService(back.upstream, ModelCatalog(back.upstream), grounder, metrics, answers),
        grounder=grounder,
        embeddings=embeddings,
        feedback=feedback,
        docs=DocsService(settings.docs_dir, settings.max_upload_bytes),
        index_service=back.index_service,
        auth=Authenticator.from_settings(settings, back.users, secret),
        oidc=oidc_client(settings, secret) if settings.auth == "oidc" else None,
        links=links,
        login_delay_s=login_delay_s,
        limits=Limits(settings.rate_limit_per_minute, settings.max_concurrent_per_key),
        escalations=escalations,
        escalation_worker=worker,
        analytics=analytics,
        gap_warmer=GapWarmer.of(analytics, settings.analytics_warm_interval_s),
        engine=back.engine,
        stops=[*on_shutdown, *back.stops],
    )


def _grounder(
    settings: Settings, back: _Backends, metrics: Metrics, links: SourceLinks
) -> Grounder:
    """What grounds answers in the docs of ``back.index`` (off without an index)."""
    return Grounder.from_settings(
        back.index,
        settings,
        enabled=settings.retrieval_enabled and back.index is not None,
        observe=metrics.retrieval.observe,
        expand=HydeExpander(back.upstream, settings.model_name),
        hyde=settings.retrieval_hyde,
        link=links.url,
    )


def _analytics(
    settings: Settings, back: _Backends, answers: AnswerLog, outbox: EscalationStore
) -> AnalyticsService:
    """Analytics over the answer log, feedback store and outbox files, clustering content
    gaps with ``back.embedder`` and matching them to ``back.index``."""
    feedback_path = getattr(back.feedback_store, "path", settings.feedback_path)
    return make_analytics(
        settings,
        AnalyticsSources(answers.path, feedback_path, outbox.path),
        embedder=back.embedder,
        index=back.index,
        before=answers.settle,
    )


def _escalations(
    settings: Settings,
    outbox: EscalationStore,
    connectors: Sequence[Connector],
    answers: AnswerLog,
    metrics: Metrics,
) -> tuple[EscalationService, EscalationWorker]:
    """The escalation service and the worker thread that delivers its outbox."""
    worker = EscalationWorker(
        outbox,
        connectors,
        retry_initial_s=settings.escalation_retry_initial_s,
        retry_max_s=settings.escalation_retry_max_s,
        give_up_s=settings.escalation_give_up_s,
        observe=register_metrics(metrics.registry, outbox),
    )
    service = EscalationService(
        outbox,
        answers,
        [c.name for c in connectors],
        model=settings.model_name,
        public_url=settings.public_url,
        wake=worker.notify,
    )
    return service, worker


def _open_backends(
    settings: Settings, upstream, index, embedder, index_service, feedback_store, users, *, log
) -> _Backends:
    """Open the seams left at ``OPEN``: Chroma first (a store in use fails in a second, not
    after vLLM's minute), then the engine, the embedding model, the index, the stores."""
    client = lock = engine = runner = None
    if index is OPEN or index_service is OPEN:
        lock = store_lock(settings, "assistant serve")
        if lock is not None:
            lock.acquire()
        client = open_store(settings)
    if upstream is OPEN:
        upstream, engine = _open_engine(settings, log)
    if embedder is OPEN:
        embedder = make_embedder(settings)
    if index_service is OPEN:
        runner = JobRunner(JobStore(settings.home / "jobs.sqlite"))
        index_service = IndexService(settings, client, embedder, runner)
    if index is OPEN:
        index = open_index(settings, client, embedder, log)
    stops = [
        *([runner.shutdown] if runner is not None else []),
        *([engine.stop] if engine is not None else []),
        *([lock.release] if lock is not None else []),
    ]
    if feedback_store is OPEN:
        feedback_store = FeedbackStore(settings.feedback_path)
    if users is OPEN:
        users = UserStore.from_settings(settings)
    restarts = (lambda: engine.restarts) if engine is not None else None
    return _Backends(
        upstream, index, embedder, index_service, engine, restarts, feedback_store, users, stops
    )


def _open_engine(settings: Settings, log) -> tuple[Upstream, EngineProcess | None]:
    """The existing vLLM servers of ``llm_urls``, or the engine (vLLM, or llama.cpp on a
    CPU) started here and waited for."""
    if settings.llm_urls:
        log(f"using existing vLLM servers: {', '.join(settings.llm_urls)}")
        return HttpUpstream(settings.llm_urls, timeout_s=settings.request_timeout_s), None
    engine = EngineProcess(engine_config(settings))
    name, wait = ("vLLM", "a minute") if settings.engine == "vllm" else ("llama.cpp", "seconds")
    log(
        f"starting {name} on {settings.model_path} as '{settings.model_name}' "
        f"(log: {engine.config.log_file}); this takes {wait} on a CPU..."
    )
    engine.start(wait=True)
    log(f"{name} ready at {engine.url}")
    upstream = HttpUpstream(
        [engine.url], timeout_s=settings.request_timeout_s, state=lambda: engine.state
    )
    return upstream, engine


def oidc_client(settings: Settings, secret: bytes) -> OidcClient:
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
