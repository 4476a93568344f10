"""Ratings of answers from the page (or any client) into the feedback store."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import APIError


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(..., min_length=1, description="The model (or adapter) that answered.")
    messages: list[dict] = Field(
        ..., min_length=1, description="The conversation up to and with the question."
    )
    answer: str = Field(..., description="The answer that was rated.")
    rating: Literal["like", "dislike", 1, -1] = Field(..., description="like/1 or dislike/-1.")
    correction: str | None = Field(
        None, max_length=20_000, description="What the answer should have said."
    )
    sources: list[dict] = Field(default_factory=list, description="Sources shown with it.")


class FeedbackService:
    def __init__(self, store) -> None:
        self.store = store  # finetune.feedback.FeedbackStore

    def add(self, raw: bytes, user: str | None = None) -> dict:
        try:
            request = FeedbackRequest.model_validate_json(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            raise APIError(400, f"'{field}': {err['msg']}") from None
        messages = [
            {"role": m.get("role"), "content": str(m.get("content", ""))} for m in request.messages
        ]
        if messages[-1]["role"] != "user":
            raise APIError(400, "'messages': the last message must be the user's question")
        rating = 1 if request.rating in ("like", 1) else -1
        row = self.store.add(
            model=request.model,
            messages=messages,
            answer=request.answer,
            rating=rating,
            sources=request.sources,
            correction=request.correction,
            user=user,
        )
        return {"id": row, "rating": rating}

    def overview(self, limit: int = 20) -> dict:
        return {"counts": self.store.counts(), "latest": self.store.latest(limit)}

    def export_jsonl(self) -> str:
        return "".join(
            json.dumps(r, ensure_ascii=False) + "\n" for r in self.store.training_conversations()
        )
