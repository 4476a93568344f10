"""Admin routes (behind ASSISTANT_ADMIN_KEY): reindex jobs and the index overview.

Everything here reads or writes SQLite (jobs, users, feedback) or the docs folder, so it
runs in a worker thread: a store waiting on a lock never stalls the event loop.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.gateway.deps import DocsDep, FeedbackDep, IndexDep, require_admin_key

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


@router.post("/reindex", status_code=202)
async def reindex(service: IndexDep, body: ReindexRequest | None = None):
    body = body or ReindexRequest()
    job = await asyncio.to_thread(
        service.start_reindex,
        collection=body.collection,
        path=body.path,
        full=body.full,
        dry_run=body.dry_run,
    )
    return JSONResponse({"job": job}, status_code=202)


@router.get("/reindex")
async def reindex_jobs(service: IndexDep):
    return {"data": await asyncio.to_thread(service.jobs)}


@router.get("/reindex/{job_id}")
async def reindex_job(service: IndexDep, job_id: str):
    return await asyncio.to_thread(service.job, job_id)


@router.post("/reindex/{job_id}/cancel", status_code=202)
async def cancel_reindex(service: IndexDep, job_id: str):
    """Stop a queued or running reindex between two files or embedding batches; it ends in
    state "cancelled" with every document whole, and the next reindex finishes the work."""
    job = await asyncio.to_thread(service.cancel, job_id)
    return JSONResponse(job, status_code=202)


@router.get("/index")
async def index_overview(service: IndexDep):
    return await asyncio.to_thread(service.overview)


@router.post("/docs", status_code=201)
async def upload_docs(
    docs: DocsDep,
    files: list[UploadFile] = File(..., description="Documents to add to the docs folder."),
    folder: str | None = Form(None, description="Subfolder of the docs folder."),
):
    """Save documents into the docs folder (allowed types only, names sanitised); reindex
    afterwards with POST /v1/admin/reindex."""
    limit = docs.max_upload_bytes
    payloads = []
    for upload in files:
        data = await upload.read(limit + 1)  # never more than the limit in memory
        payloads.append((upload.filename or "upload", data))
    saved = await asyncio.to_thread(lambda: [docs.save(n, d, folder) for n, d in payloads])
    return JSONResponse({"saved": saved}, status_code=201)


@router.get("/feedback")
async def feedback_overview(service: FeedbackDep, limit: int = 20):
    return await asyncio.to_thread(service.overview, max(1, min(limit, 200)))


@router.get("/feedback/export")
async def feedback_export(service: FeedbackDep):
    """Rated answers as training conversations (JSONL), for `assistant finetune`."""
    body = await asyncio.to_thread(service.export_jsonl)
    return PlainTextResponse(
        body,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="feedback-training.jsonl"'},
    )
