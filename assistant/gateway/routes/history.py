"""Each user's conversation history: list, read, rename, delete (only one's own)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from assistant.errors import APIError
from assistant.gateway.deps import AnswersDep, require_api_key

router = APIRouter(prefix="/v1/conversations", dependencies=[Depends(require_api_key)])


class Rename(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(..., min_length=1, max_length=200, description="The new title.")


def _missing(conversation: str) -> APIError:
    # someone else's conversation answers exactly like one that does not exist
    return APIError(404, f"no conversation '{conversation}'", code="conversation_not_found")


@router.get("")
async def list_conversations(request: Request, answers: AnswersDep, limit: int = 50):
    """The caller's conversations, the most recently continued first."""
    if not 1 <= limit <= 500:
        raise APIError(400, "'limit' must be between 1 and 500")
    user = request.state.principal.name
    found = await asyncio.to_thread(answers.conversations, user, limit)
    return {"object": "list", "data": found}


@router.get("/{conversation}")
async def get_conversation(request: Request, answers: AnswersDep, conversation: str):
    """The whole conversation: its messages, and each answer with its sources."""
    user = request.state.principal.name
    found = await asyncio.to_thread(answers.conversation, conversation, user)
    if found is None:
        raise _missing(conversation)
    return found


@router.patch("/{conversation}")
async def rename_conversation(
    request: Request, answers: AnswersDep, conversation: str, body: Rename
):
    user = request.state.principal.name
    title = " ".join(body.title.split())
    if not await asyncio.to_thread(answers.rename, conversation, user, title):
        raise _missing(conversation)
    return {"id": conversation, "title": title}


@router.delete("/{conversation}", status_code=204)
async def delete_conversation(request: Request, answers: AnswersDep, conversation: str):
    """Delete a conversation and its answers for good."""
    user = request.state.principal.name
    if not await asyncio.to_thread(answers.delete, conversation, user):
        raise _missing(conversation)
    return Response(status_code=204)
