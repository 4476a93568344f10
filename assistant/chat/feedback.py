"""Ratings of answers from the page (or any client) into the feedback store."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.chat.schemas import load_json
from assistant.errors import APIError
from finetune.pii import Scrubber


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    completion_id: str = Field(
        ..., min_length=1, max_length=200,
        description="The id of the chat completion being rated (its 'id' field, or the id of "
        "any chunk of its stream). It must be an answer this caller got.",
    )  # fmt: skip
    rating: Literal["like", "dislike", 1, -1] = Field(..., description="like/1 or dislike/-1.")
    correction: str | None = Field(
        None, max_length=20_000, description="What the answer should have said."
    )


OLD_SHAPE = {"messages", "answer", "model", "sources"}


class FeedbackService:
    """Ratings of answers the server gave: the question, answer, sources and model come
    from the server's own record (``AnswerLog``), only rating and correction from the client.
    """

    def __init__(self, store, answers) -> None:
        self.store = store  # assistant.chat.feedback_store.FeedbackStore
        self.answers = answers  # assistant.chat.answer_log.AnswerLog

    def add(self, raw: bytes, user: str) -> dict:
        payload = load_json(raw)
        if isinstance(payload, dict) and OLD_SHAPE & payload.keys():
            raise APIError(
                400,
                "feedback names the rated answer by 'completion_id' (the chat completion's "
                "id); the question and answer are taken from the server's own record",
            )
        try:
            request = FeedbackRequest.model_validate(payload)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            raise APIError(400, f"'{field}': {err['msg']}") from None
        answer = self.answers.get(request.completion_id, user)
        if answer is None:  # someone else's answer looks the same as none at all
            raise APIError(
                404, f"no answer '{request.completion_id}' of yours", code="answer_not_found"
            )
        rating = 1 if request.rating in ("like", 1) else -1
        row = self.store.add(
            model=answer["model"],
            messages=answer["messages"],
            answer=answer["answer"],
            rating=rating,
            sources=answer["sources"],
            correction=request.correction,
            user=user,
            completion_id=request.completion_id,
        )
        return {"id": row, "rating": rating, "completion_id": request.completion_id}

    def overview(self, limit: int = 20) -> dict:
        return {"counts": self.store.counts(), "latest": self.store.latest(limit)}

    def export_jsonl(self) -> str:
        """Training records, scrubbed of personal data (``finetune.pii``) on the way out."""
        scrubber = Scrubber()
        lines = []
        for record in self.store.training_conversations():
            messages = [
                {**m, "content": scrubber.scrub(str(m.get("content", "")))}
                for m in record["messages"]
            ]
            lines.append(json.dumps({**record, "messages": messages}, ensure_ascii=False) + "\n")
        return "".join(lines)
