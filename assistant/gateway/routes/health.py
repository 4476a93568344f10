"""Liveness and readiness of the gateway and its engine."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter()


@router.get("/health")
async def health(request: Request):
    state = request.app.state.upstream.state()
    body = {
        "status": "ok" if state == "ready" else "unavailable",
        "engine": state,
        "model": request.app.state.settings.model_name,
    }
    return JSONResponse(body, status_code=200 if state == "ready" else 503)


@router.get("/metrics")
async def metrics(request: Request):
    body, content_type = request.app.state.metrics.render()
    return Response(body, media_type=content_type)
