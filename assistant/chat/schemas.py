"""Request models of the OpenAI routes: strict on types, open to fields OpenAI clients send."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import APIError

# Deeper than any real request (a tool's JSON schema nests a few dozen levels at most), and
# far from Python's recursion limit, which json.loads, pydantic and json.dumps share.
MAX_JSON_DEPTH = 100
TOO_DEEP = f"request body is nested too deeply (at most {MAX_JSON_DEPTH} levels)"


def load_json(raw: bytes) -> Any:
    """A request body's JSON; a 400 for anything that is not JSON text (NaN, Infinity and
    unpaired surrogates included, which Python's json accepts but nothing can send on), or
    nests deeper than MAX_JSON_DEPTH."""
    try:
        payload = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise APIError(400, f"request body is not valid JSON: {exc}") from None
    # fewer brackets than the limit cannot nest deeper than it (the usual case: no walk)
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than_limit(payload):
        raise _too_deep()
    # a surrogate comes from a \uD8xx-\uDFxx escape, or from UTF-8-like bytes ED A0-BF
    if _MAYBE_SURROGATE.search(raw):
        try:
            json.dumps(payload, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            raise APIError(
                400, "request body is not valid JSON: it holds an unpaired surrogate"
            ) from None
    return payload


_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]|\xed[\xa0-\xbf]")


def parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    """JSON bytes to a request model; a 400 that names the field on any problem."""
    payload = load_json(raw)
    if not isinstance(payload, dict):
        raise APIError(400, "request body must be a JSON object")
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "body"
        raise APIError(400, f"'{field}': {err['msg']}", code="invalid_" + err["type"]) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON value")


def _too_deep() -> APIError:
    return APIError(400, TOO_DEEP)


def _deeper_than_limit(value: Any) -> bool:
    """Level by level, without recursion (which is what a deep body would exhaust)."""
    level = [value] if isinstance(value, (dict, list)) else []
    for _ in range(MAX_JSON_DEPTH):
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, (dict, list))
        ]
        if not level:
            return False
    return True


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
