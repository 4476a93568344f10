"""Escalations: ask for a person (a ticket), see how it went; admins list them.

The logic lives in ``assistant.escalation.service``; the outbox is SQLite, so every call
runs in a worker thread."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from assistant.gateway.deps import EscalationsDep, read_body, require_admin_key, require_api_key

router = APIRouter(prefix="/v1/escalations", dependencies=[Depends(require_api_key)])
admin = APIRouter(prefix="/v1/admin/escalations", dependencies=[Depends(require_admin_key)])


@router.post("", status_code=201)
async def create_escalation(request: Request, service: EscalationsDep):
    """``{"conversation_id" | "messages", "summary"?, "priority"?}`` -> 201 ``{"id", "state"}``
    once the ticket is in the outbox; delivery happens in the background."""
    raw = await read_body(request)
    user = request.state.principal.name
    base = str(request.base_url)
    created = await asyncio.to_thread(service.create, raw, user, base)
    return JSONResponse(created, status_code=201)


@router.get("/{escalation}")
async def get_escalation(request: Request, service: EscalationsDep, escalation: str):
    """State (queued, sent, failed), the ticket reference, and the reason of a failure."""
    user = request.state.principal.name
    return await asyncio.to_thread(service.get, escalation, user)


@admin.get("")
async def list_escalations(service: EscalationsDep, state: str | None = None, limit: int = 50):
    """Every user's escalations, newest first; ``?state=failed`` for those given up."""
    return await asyncio.to_thread(service.listing, state, limit)


@admin.post("/{escalation}/retry")
async def retry_escalation(service: EscalationsDep, escalation: str):
    """Queue a ``failed`` escalation again, due now (after fixing the ticket system or the
    connector's settings): its failed connectors are tried again with a fresh give-up time,
    those that made a ticket are not. 404 if there is none, 409 if it is not failed."""
    return await asyncio.to_thread(service.requeue, escalation)
