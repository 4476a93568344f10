"""The gateway's own answer, in the engine's shapes: a chat completion, or its SSE stream.

Used when the search finds nothing relevant and the settings say not to ask the engine
(``ungrounded_reply="fixed"``). The bytes are what vLLM sends for an answer of one content
event, so the relay, the answer log, the metrics and every OpenAI client treat it like any
other answer. No engine tokens were spent: usage says 0.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}


def completion(text: str, model: str) -> dict[str, Any]:
    """A ``chat.completion`` object whose one choice is ``text``."""
    return {
        "id": _new_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": dict(_NO_USAGE),
    }


def stream(text: str, model: str) -> tuple[bytes, AsyncIterator[bytes]]:
    """The SSE events of ``text`` as one answer: (first event, the rest), as the relay
    takes them. The rest: the finishing event, a usage event, ``[DONE]``."""
    base = {"id": _new_id(), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model}  # fmt: skip

    def event(choices: list[dict], **extra: Any) -> bytes:
        return b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n"

    first = event([{"index": 0, "delta": {"role": "assistant", "content": text},
                    "logprobs": None, "finish_reason": None}])  # fmt: skip
    rest = [
        event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]),
        event([], usage=dict(_NO_USAGE)),
        b"data: [DONE]\n\n",
    ]

    async def more() -> AsyncIterator[bytes]:
        for chunk in rest:
            yield chunk

    return first, more()


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex
