"""Liveness and readiness of the gateway and its engine."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

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
