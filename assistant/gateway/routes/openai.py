"""OpenAI-compatible routes; the logic lives in ``assistant.chat.service``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse

from assistant.gateway.deps import ChatDep, EmbeddingsDep, read_body, require_api_key

router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _respond(result):
    if isinstance(result, dict):
        return JSONResponse(result)
    return StreamingResponse(result, media_type="text/event-stream", headers=_SSE_HEADERS)


@router.post("/chat/completions")
async def chat_completions(request: Request, chat: ChatDep):
    principal = request.state.principal
    return _respond(await chat.chat(await read_body(request), principal))


@router.post("/completions")
async def completions(request: Request, chat: ChatDep):
    return _respond(await chat.complete(await read_body(request)))


@router.get("/models")
async def models(chat: ChatDep):
    return await chat.models()


@router.post("/embeddings")
async def embeddings(request: Request, service: EmbeddingsDep):
    return await service.embed(await read_body(request))
