"""Routes the chat page uses besides the OpenAI ones: feedback, and the cited documents.

A cited document opens with the caller's credentials (key, session, proxy headers), or with
the short-lived signed URL that each citation carries (``url``), so a link in an answer
never needs an API key in it."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, JSONResponse

from assistant.gateway.deps import (
    AuthDep,
    DocsDep,
    FeedbackDep,
    GrounderDep,
    LinksDep,
    read_body,
    require_api_key,
)

# Who is asking, as for the OpenAI routes (a key is never taken from the URL: URLs end up in
# browser history and access logs).
router = APIRouter(prefix="/v1", dependencies=[Depends(require_api_key)])


@router.get("/me")
async def me(request: Request):
    """Who the server takes the caller for: name, groups, admin."""
    caller = request.state.principal
    return {"user": caller.name, "groups": sorted(caller.groups), "admin": caller.admin}


@router.post("/feedback", status_code=201)
async def feedback(request: Request, service: FeedbackDep):
    caller = request.state.principal.name
    raw = await read_body(request)
    # reads the answer log (waiting for answers still being written), writes the store
    return JSONResponse(await asyncio.to_thread(service.add, raw, caller), status_code=201)


sources = APIRouter(prefix="/v1")


@sources.get("/sources/{path:path}")
async def source_document(
    request: Request,
    links: LinksDep,
    auth: AuthDep,
    grounder: GrounderDep,
    docs: DocsDep,
    path: str,
    exp: str | None = None,
    sig: str | None = None,
):
    """A cited document, read-only, exactly as indexed. A document the caller may not read
    answers exactly like one that does not exist."""
    signed = sig is not None and links.valid(path, exp, sig)
    if not signed:
        await require_api_key(request, auth)
        # asked first, for missing and hidden documents alike: both cost the same index
        # lookup, so the answer's timing does not tell a hidden document from a missing one
        await grounder.require_readable(path, request.state.principal.scope)
    file, media = docs.open(path)
    return FileResponse(file, media_type=media, content_disposition_type="inline")
