"""Typed FastAPI dependencies: each route takes the services it uses as parameters
(``chat: ChatDep``) instead of reading ``request.app.state``; plus the helpers every route
family shares (who is asking, the request body within its limit).

The services live on ``app.state.services`` (``assistant.gateway.services.Services``,
mounted by ``create_app``); this module reads that one attribute and nothing else."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from assistant.analytics.service import AnalyticsService
from assistant.chat.answer_log import AnswerLog
from assistant.chat.embeddings import EmbeddingService
from assistant.chat.feedback import FeedbackService
from assistant.chat.grounding import Grounder
from assistant.chat.service import ChatService
from assistant.chat.upstream import Upstream
from assistant.errors import APIError
from assistant.escalation.service import EscalationService
from assistant.gateway.metrics import Metrics
from assistant.identity.auth import Authenticator
from assistant.identity.oidc import OidcClient
from assistant.identity.signing import SourceLinks
from assistant.knowledge.docs import DocsService
from assistant.knowledge.index import IndexService
from assistant.settings import Settings


def _services(request: Request):
    """The ``assistant.gateway.services.Services`` of this app (not imported: ``services``
    builds ``limits``, which imports this module)."""
    return request.app.state.services


def _present(service, status: int, missing: str):
    """``service``, or the error that says this server runs without it."""
    if service is None:
        raise APIError(status, missing)
    return service


def settings(request: Request) -> Settings:
    return _services(request).settings


def upstream(request: Request) -> Upstream:
    return _services(request).upstream


def metrics(request: Request) -> Metrics:
    return _services(request).metrics


def chat_service(request: Request) -> ChatService:
    return _services(request).chat


def embedding_service(request: Request) -> EmbeddingService:
    missing = "no embedding model is configured on this server"
    return _present(_services(request).embeddings, 404, missing)


def answer_log(request: Request) -> AnswerLog:
    return _services(request).answers


def grounder(request: Request) -> Grounder:
    return _services(request).grounder


def feedback_service(request: Request) -> FeedbackService:
    return _present(_services(request).feedback, 503, "this server keeps no feedback store")


def docs_service(request: Request) -> DocsService:
    return _services(request).docs


def index_service(request: Request) -> IndexService:
    missing = "this server has no docs index (retrieval is off)"
    return _present(_services(request).index_service, 503, missing)


def authenticator(request: Request) -> Authenticator:
    return _services(request).auth


def oidc_client(request: Request) -> OidcClient | None:
    return _services(request).oidc


def source_links(request: Request) -> SourceLinks:
    return _services(request).links


def login_delay_s(request: Request) -> float:
    return _services(request).login_delay_s


def escalation_service(request: Request) -> EscalationService:
    return _services(request).escalations


def analytics_service(request: Request) -> AnalyticsService:
    return _services(request).analytics


SettingsDep = Annotated[Settings, Depends(settings)]
UpstreamDep = Annotated[Upstream, Depends(upstream)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
ChatDep = Annotated[ChatService, Depends(chat_service)]
EmbeddingsDep = Annotated[EmbeddingService, Depends(embedding_service)]
AnswersDep = Annotated[AnswerLog, Depends(answer_log)]
GrounderDep = Annotated[Grounder, Depends(grounder)]
FeedbackDep = Annotated[FeedbackService, Depends(feedback_service)]
DocsDep = Annotated[DocsService, Depends(docs_service)]
IndexDep = Annotated[IndexService, Depends(index_service)]
AuthDep = Annotated[Authenticator, Depends(authenticator)]
OidcDep = Annotated[OidcClient | None, Depends(oidc_client)]
LinksDep = Annotated[SourceLinks, Depends(source_links)]
LoginDelayDep = Annotated[float, Depends(login_delay_s)]
EscalationsDep = Annotated[EscalationService, Depends(escalation_service)]
AnalyticsDep = Annotated[AnalyticsService, Depends(analytics_service)]


def client_host(request: Request) -> str | None:
    return request.client.host if request.client else None


async def require_api_key(request: Request, auth: AuthDep) -> None:
    """Who is asking (``assistant.identity.auth``), kept on the request for the handlers."""
    request.state.principal = auth.principal(request.headers, client_host(request))


async def require_admin_key(request: Request, auth: AuthDep) -> None:
    principal = await asyncio.to_thread(auth.admin, request.headers, client_host(request))
    request.state.principal = principal


async def read_body(request: Request) -> bytes:
    limit = settings(request).max_request_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes")
    return raw
