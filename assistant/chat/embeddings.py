"""``POST /v1/embeddings``: the retrieval embedding model, in OpenAI's shape."""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.chat.schemas import parse
from assistant.errors import APIError

ALIAS = "embed"
MAX_INPUTS = 2048


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"


class EmbeddingService:
    def __init__(self, embedder, model_id: str) -> None:
        self.embedder = embedder
        self.names = {ALIAS, model_id}
        self.model_id = model_id

    async def embed(self, raw: bytes) -> dict[str, Any]:
        request = parse(EmbeddingRequest, raw)
        if request.model not in self.names:
            raise APIError(
                404,
                f"embedding model '{request.model}' does not exist; use "
                f"'{ALIAS}' or '{self.model_id}'",
                code="model_not_found",
            )
        texts = [request.input] if isinstance(request.input, str) else request.input
        if not texts or not all(isinstance(t, str) for t in texts):
            raise APIError(
                400,
                "'input' must be a string or a non-empty list of strings "
                "(token arrays are not supported)",
            )
        if len(texts) > MAX_INPUTS:
            raise APIError(400, f"'input' has {len(texts)} items; at most {MAX_INPUTS}")
        if any(not t.strip() for t in texts):
            raise APIError(400, "'input' contains an empty string")
        # both off the event loop: the tokenizer waits while another thread tokenizes
        vectors, tokens = await asyncio.to_thread(self._embed, texts)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _b64(v) if request.encoding_format == "base64" else v,
            }
            for i, v in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": request.model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        vectors = self.embedder.embed(texts)
        return vectors, sum(self.embedder.count_tokens(t) for t in texts)


def _b64(vector: list[float]) -> str:
    """OpenAI's base64 form: little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
