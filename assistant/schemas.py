"""Request models of the OpenAI routes: strict on types, open to fields OpenAI clients send."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class RetrievalOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="Ground the answer in the indexed docs.")
    k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve [retrieval_k].")
    collection: str | None = Field(None, description="Chroma collection to search.")
    hyde: bool | None = Field(
        None,
        description="Search with a passage the model writes first (HyDE) [retrieval_hyde].",
    )


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat request; every field not named here passes through to vLLM."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int | None = Field(None, ge=1, le=16)
    retrieval: RetrievalOptions | None = None


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
