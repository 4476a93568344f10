"""Liveness and readiness of the gateway and its engine."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from assistant.gateway.deps import MetricsDep, SettingsDep, UpstreamDep

router = APIRouter()


@router.get("/health")
async def health(upstream: UpstreamDep, settings: SettingsDep):
    state = upstream.state()
    body = {
        "status": "ok" if state == "ready" else "unavailable",
        "engine": state,
        "model": settings.model_name,
    }
    return JSONResponse(body, status_code=200 if state == "ready" else 503)


@router.get("/metrics")
async def metrics(registry: MetricsDep):
    body, content_type = registry.render()
    return Response(body, media_type=content_type)
