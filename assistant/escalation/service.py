"""Escalations: hand a conversation to a person as a ticket (``POST /v1/escalations``).

The ticket is built from the server's own records where it can be: with a
``conversation_id`` (one of the caller's own, else 404 as for history), the transcript,
the sources that were tried and the model come from the answer log; with ``messages`` the
client's transcript is taken as sent. It is written to the outbox before the request is
answered, and the worker (``EscalationWorker``) delivers it.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from assistant.chat.schemas import load_json
from assistant.errors import APIError

Priority = Literal["low", "normal", "high", "urgent"]


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI messages may carry name, tool calls

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str = Field(..., max_length=100_000)


class EscalationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str | None = Field(
        None, min_length=1, max_length=200,
        description="One of the caller's conversations (GET /v1/conversations): its "
        "transcript, sources and model go into the ticket.",
    )  # fmt: skip
    messages: list[Message] | None = Field(
        None, min_length=1, max_length=500,
        description="The transcript, when there is no recorded conversation to name.",
    )  # fmt: skip
    summary: str | None = Field(
        None, max_length=500, description="One line for the ticket's title; default: the "
        "first question.",
    )  # fmt: skip
    priority: Priority = Field("normal", description="low, normal, high or urgent.")

    @model_validator(mode="after")
    def _one_source(self) -> EscalationRequest:
        if (self.conversation_id is None) == (self.messages is None):
            raise ValueError("send either 'conversation_id' or 'messages' (one of them)")
        return self


def _one_line(text: str, limit: int) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class EscalationService:
    def __init__(self, store, answers, connectors: list[str], *, model: str,
                 public_url: str | None = None, wake=lambda: None) -> None:  # fmt: skip
        self.store = store  # assistant.escalation.store.EscalationStore
        self.answers = answers  # assistant.chat.answer_log.AnswerLog
        self.connectors = list(connectors)
        self.model = model
        self.public_url = public_url.rstrip("/") if public_url else None
        self.wake = wake  # tells the worker something is due

    def create(self, raw: bytes, user: str, base_url: str) -> dict:
        if not self.connectors:
            raise APIError(
                503,
                "escalations are off on this server: set ASSISTANT_ESCALATION_WEBHOOK_URL "
                "or ASSISTANT_ESCALATION_CONNECTORS",
                code="escalations_disabled",
            )
        try:
            request = EscalationRequest.model_validate(load_json(raw))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            raise APIError(400, f"'{field}': {message}" if field else message) from None
        ticket = self._ticket(request, user, self.public_url or base_url.rstrip("/"))
        row = self.store.add(ticket, user, self.connectors)
        self.wake()
        return {"id": row["id"], "state": row["state"]}

    def _ticket(self, request: EscalationRequest, user: str, base: str) -> dict:
        model, sources, conversation = self.model, [], request.conversation_id
        if conversation is not None:
            found = self.answers.conversation(conversation, user)
            if found is None:  # someone else's looks exactly like none at all
                raise APIError(
                    404, f"no conversation '{conversation}'", code="conversation_not_found"
                )
            transcript = [{"role": m["role"], "content": m["content"]} for m in found["messages"]]
            model = found["answers"][-1]["model"] if found["answers"] else model
            used = _sources(a["sources"] for a in found["answers"])
            named = {s["source"] for s in used}
            found_only = _sources(a.get("tried") for a in found["answers"])
            tried = [{**s, "used": False} for s in found_only if s["source"] not in named]
            sources = [{**s, "used": True} for s in used] + tried
        else:
            transcript = [{"role": m.role, "content": m.content} for m in request.messages or []]
        question = next((m["content"] for m in transcript if m["role"] == "user"), "")
        escalation = self.store.new_id()
        return {
            "id": escalation,
            "idempotency_key": secrets.token_hex(16),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "user": user,
            "priority": request.priority,
            "summary": _one_line(request.summary or question or "Help requested", 200),
            "model": model,
            "conversation_id": conversation,
            "transcript": transcript,
            "sources": sources,
            "links": {
                "escalation": f"{base}/v1/escalations/{escalation}",
                "conversation": f"{base}/v1/conversations/{conversation}" if conversation
                else None,
                "page": f"{base}/",
            },
        }  # fmt: skip

    def get(self, escalation: str, user: str) -> dict:
        row = self.store.get(escalation, user)
        if row is None:  # another user's escalation answers like a missing one
            raise APIError(404, f"no escalation '{escalation}'", code="escalation_not_found")
        return view(row)

    def requeue(self, escalation: str) -> dict:
        """Send a failed escalation again (after its ticket system or settings are fixed)."""
        row, requeued = self.store.requeue(escalation)
        if row is None:
            raise APIError(404, f"no escalation '{escalation}'", code="escalation_not_found")
        if not requeued:
            raise APIError(
                409,
                f"escalation '{escalation}' is {row['state']}: only a failed one is sent again",
                code="escalation_not_failed",
            )
        self.wake()
        return view(row, admin=True)

    def listing(self, state: str | None, limit: int) -> dict:
        if state is not None and state not in ("queued", "sent", "failed"):
            raise APIError(400, "'state' must be queued, sent or failed")
        if not 1 <= limit <= 500:
            raise APIError(400, "'limit' must be between 1 and 500")
        rows = self.store.listing(state, limit)
        return {"object": "list", "data": [view(r, admin=True) for r in rows]}


def view(row: dict, admin: bool = False) -> dict:
    """What a client sees of an escalation (an admin also sees whose it is)."""
    deliveries = row["deliveries"]
    references = {name: d.get("reference") for name, d in deliveries.items() if d.get("reference")}
    body = {
        "id": row["id"],
        "object": "escalation",
        "state": row["state"],
        "reference": next((references[n] for n in row["connectors"] if n in references), None),
        "references": references,
        "reason": row["reason"],
        "deliveries": deliveries,
        "attempts": row["attempts"],
        "priority": row["ticket"]["priority"],
        "summary": row["ticket"]["summary"],
        "conversation_id": row["ticket"]["conversation_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if admin:
        body["user"] = row["user"]
    return body


def _sources(answer_sources) -> list[dict]:
    """Every document of the answers' sources, once, with its best score."""
    best: dict[str, dict] = {}
    for sources in answer_sources:
        for s in sources or []:
            name = str(s.get("source") or "")
            if not name:
                continue
            score = s.get("score")
            if name not in best or (score or 0) > (best[name]["score"] or 0):
                best[name] = {"source": name, "title": s.get("title") or name, "score": score}
    return list(best.values())
