"""Routes the chat page uses besides the OpenAI ones: feedback, and the cited documents."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from assistant.errors import APIError
from assistant.routes.openai import client_host, read_body


async def require_key(request: Request) -> None:
    """Bearer header, or ``?key=`` for links a browser opens (it cannot send the header)."""
    headers = dict(request.headers)
    key = request.query_params.get("key")
    if key and "authorization" not in headers:
        headers["authorization"] = f"Bearer {key}"
    request.state.principal = request.app.state.auth.principal(headers, client_host(request))


router = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])


@router.post("/feedback", status_code=201)
async def feedback(request: Request):
    service = request.app.state.feedback
    if service is None:
        raise APIError(503, "this server keeps no feedback store")
    return JSONResponse(service.add(await read_body(request)), status_code=201)


@router.get("/sources/{path:path}")
async def source_document(request: Request, path: str):
    """A cited document, read-only, exactly as indexed. A document the caller may not read
    answers exactly like one that does not exist."""
    file, media = request.app.state.docs.open(path)
    await request.app.state.grounder.require_readable(path, request.state.principal.scope)
    return FileResponse(file, media_type=media, content_disposition_type="inline")
