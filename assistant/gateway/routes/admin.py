"""Admin routes (behind ASSISTANT_ADMIN_KEY): reindex jobs and the index overview.

Everything here reads or writes SQLite (jobs, users, feedback) or the docs folder, so it
runs in a worker thread: a store waiting on a lock never stalls the event loop.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.errors import APIError
from assistant.gateway.routes.openai import client_host


async def require_admin_key(request: Request) -> None:
    auth = request.app.state.auth
    principal = await asyncio.to_thread(auth.admin, request.headers, client_host(request))
    request.state.principal = principal


router = APIRouter(prefix="/v1/admin", dependencies=[Depends(require_admin_key)])


class ReindexRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    collection: str | None = Field(
        None, description="Collection to write; default: the server's collection setting."
    )
    path: str | None = Field(
        None,
        description="Folder inside the docs folder that the collection mirrors; default: "
        "the whole docs folder.",
    )
    full: bool = Field(False, description="Re-embed every file, not only changed ones.")
    dry_run: bool = Field(False, description="Count what would change; write nothing.")


def _service(request: Request):
    service = request.app.state.index_service
    if service is None:
        raise APIError(503, "this server has no docs index (retrieval is off)")
    return service


@router.post("/reindex", status_code=202)
async def reindex(request: Request, body: ReindexRequest | None = None):
    body = body or ReindexRequest()
    job = await asyncio.to_thread(
        _service(request).start_reindex,
        collection=body.collection,
        path=body.path,
        full=body.full,
        dry_run=body.dry_run,
    )
    return JSONResponse({"job": job}, status_code=202)


@router.get("/reindex")
async def reindex_jobs(request: Request):
    return {"data": await asyncio.to_thread(_service(request).jobs)}


@router.get("/reindex/{job_id}")
async def reindex_job(request: Request, job_id: str):
    return await asyncio.to_thread(_service(request).job, job_id)


@router.post("/reindex/{job_id}/cancel", status_code=202)
async def cancel_reindex(request: Request, job_id: str):
    """Stop a queued or running reindex between two files or embedding batches; it ends in
    state "cancelled" with every document whole, and the next reindex finishes the work."""
    job = await asyncio.to_thread(_service(request).cancel, job_id)
    return JSONResponse(job, status_code=202)


@router.get("/index")
async def index_overview(request: Request):
    return await asyncio.to_thread(_service(request).overview)


@router.post("/docs", status_code=201)
async def upload_docs(
    request: Request,
    files: list[UploadFile] = File(..., description="Documents to add to the docs folder."),
    folder: str | None = Form(None, description="Subfolder of the docs folder."),
):
    """Save documents into the docs folder (allowed types only, names sanitised); reindex
    afterwards with POST /v1/admin/reindex."""
    docs = request.app.state.docs
    limit = docs.max_upload_bytes
    payloads = []
    for upload in files:
        data = await upload.read(limit + 1)  # never more than the limit in memory
        payloads.append((upload.filename or "upload", data))
    saved = await asyncio.to_thread(lambda: [docs.save(n, d, folder) for n, d in payloads])
    return JSONResponse({"saved": saved}, status_code=201)


def _feedback(request: Request):
    service = request.app.state.feedback
    if service is None:
        raise APIError(503, "this server keeps no feedback store")
    return service


@router.get("/feedback")
async def feedback_overview(request: Request, limit: int = 20):
    return await asyncio.to_thread(_feedback(request).overview, max(1, min(limit, 200)))


@router.get("/feedback/export")
async def feedback_export(request: Request):
    """Rated answers as training conversations (JSONL), for `assistant finetune`."""
    body = await asyncio.to_thread(_feedback(request).export_jsonl)
    return PlainTextResponse(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="feedback-training.jsonl"'},
    )
