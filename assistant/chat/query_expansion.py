"""HyDE: let the served model imagine the passage, and search with it too (off by default).

A question in an employee's words ("the laptop can't see the printer after the update")
and the manual's passage ("CUPS ... the printer's queue ...") share few words and sit apart
in embedding space. Asking the model for a short passage that would answer the question
(Gao et al., "Precise Zero-Shot Dense Retrieval without Relevance Labels", 2022) puts the
manual's vocabulary into the query. It costs one extra generation per question before the
answer starts (see docs/RETRIEVAL.md for the latency measured), and is only as good as the
model: the demo model can only quote sources, and there are none yet. Enable with
``retrieval_hyde``.
"""

from __future__ import annotations

import logging

log = logging.getLogger("assistant")

PROMPT = (
    "Write the passage of the company's IT documentation that answers the question below. "
    "Two or three sentences, in the documentation's own technical words. No greeting."
)


class HydeExpander:
    """``await expander(question)`` -> question plus a hypothetical answer passage."""

    def __init__(self, upstream, model: str, max_tokens: int = 96) -> None:
        self.upstream = upstream
        self.model = model
        self.max_tokens = max_tokens

    async def __call__(self, question: str) -> str:
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": PROMPT},
                {"role": "user", "content": question},
            ],
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        try:
            reply = await self.upstream.post("/v1/chat/completions", body)
            passage = (reply["choices"][0]["message"].get("content") or "").strip()
        except Exception as exc:  # the answer must not fail because the expansion did
            log.warning("HyDE expansion failed, searching with the question alone: %s", exc)
            return question
        return f"{question}\n{passage}" if passage else question
