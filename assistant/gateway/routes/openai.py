"""OpenAI-compatible routes; the logic lives in ``assistant.chat.service``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from assistant.errors import APIError


def client_host(request: Request) -> str | None:
    return request.client.host if request.client else None


async def require_api_key(request: Request) -> None:
    """Who is asking (``assistant.identity.auth``), kept on the request for the handlers."""
    request.state.principal = request.app.state.auth.principal(
        request.headers, client_host(request)
    )


router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def read_body(request: Request) -> bytes:
    limit = request.app.state.settings.max_request_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes")
    raw = await request.body()
    if len(raw) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes")
    return raw


def _respond(result):
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(result, media_type="text/event-stream", headers=_SSE_HEADERS)


@router.post("/chat/completions")
async def chat_completions(request: Request):
    principal = request.state.principal
    return _respond(await request.app.state.chat.chat(await read_body(request), principal))


@router.post("/completions")
async def completions(request: Request):
    return _respond(await request.app.state.chat.complete(await read_body(request)))


@router.get("/models")
async def models(request: Request):
    return await request.app.state.chat.models()


@router.post("/embeddings")
async def embeddings(request: Request):
    service = request.app.state.embeddings
    if service is None:
        raise APIError(404, "no embedding model is configured on this server")
    return await service.embed(await read_body(request))
