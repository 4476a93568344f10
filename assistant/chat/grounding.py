"""Retrieval for a chat request: find passages, build the grounded messages, cite sources."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from assistant.chat.prompt import Index, PromptBuilder, search_query
from assistant.errors import APIError
from retrieval.errors import RetrievalError

log = logging.getLogger("assistant")


@dataclass
class Grounding:
    messages: list[dict]
    sources: list[dict] = field(default_factory=list)
    # what the search found but the prompt did not get (under the relevance gate or floor):
    # kept with the answer so a ticket shows what was tried; never sent to the client
    tried: list[dict] = field(default_factory=list)
    searched: bool = True  # False: retrieval was off for this request (``off``)
    # the gateway's own reply, when the search ran, found nothing relevant and the settings
    # say not to ask the engine (``ungrounded_reply="fixed"``); ``None``: the engine answers
    reply: str | None = None

    @classmethod
    def off(cls, messages: list[dict]) -> Grounding:
        """Retrieval off for this request: the messages as they came, no sources, and
        nothing said about grounding (``grounded`` is ``None``, no ``extension``)."""
        return cls(messages, searched=False)

    @property
    def grounded(self) -> bool | None:
        """Whether sources back the answer; ``None`` when retrieval was off."""
        return bool(self.sources) if self.searched else None

    def extension(self) -> dict | None:
        """The fields the response carries beyond OpenAI's schema; ``None`` (the response
        as the engine sent it) when retrieval was off."""
        if not self.searched:
            return None
        return {"sources": self.sources, "grounded": self.grounded}


class Grounder:
    def __init__(
        self,
        index: Index | None,
        prompts: PromptBuilder,
        *,
        k: int = 4,
        min_score: float = 0.25,
        min_top_score: float = -1.0,
        max_chars: int = 3000,
        enabled: bool = True,
        observe: Callable[[float], None] | None = None,
        expand: Callable[[str], Awaitable[str]] | None = None,
        hyde: bool = False,
        link: Callable[[str], str] | None = None,
        fixed_decline: bool = True,
    ) -> None:
        self.index = index
        self.prompts = prompts
        self.k = k
        self.min_score = min_score
        self.min_top_score = min_top_score  # the relevance gate
        self.max_chars = max_chars
        self.enabled = enabled
        self.observe = observe or (lambda seconds: None)
        self.expand = expand  # HyDE through the served model (assistant.chat.query_expansion)
        self.hyde = hyde  # whether to expand when the request does not say
        self.link = link  # a short-lived URL that opens a cited document
        # nothing relevant found: reply with the template's fixed decline instead of asking
        # the engine, which small models answer from what they think they know
        self.fixed_decline = fixed_decline

    @classmethod
    def from_settings(cls, index: Index | None, settings, **wiring) -> Grounder:
        """The grounder the settings describe (k, relevance floor and gate, prompt budget,
        the prompt template with the company name); ``wiring``: the server's extras
        (enabled, observe, expand, hyde, link)."""
        return cls(
            index,
            PromptBuilder.from_file(company=settings.company_name),
            k=settings.retrieval_k,
            min_score=settings.retrieval_min_score,
            min_top_score=settings.retrieval_min_top_score,
            max_chars=settings.retrieval_max_chars,
            fixed_decline=settings.ungrounded_reply == "fixed",
            **wiring,
        )

    async def ground(
        self, messages: list[dict], options=None, scope: frozenset[str] | None = None
    ) -> Grounding:
        """The grounded messages, from the documents the caller's groups (``scope``;
        ``None``: all) may read; ``Grounding.off`` when retrieval is off for this request."""
        enabled = self.enabled if options is None else options.enabled
        if not enabled:
            return Grounding.off(messages)
        k = options.k if options is not None and options.k else self.k
        collection = options.collection if options is not None else None
        query = search_query(messages)
        hyde = self.hyde if options is None or options.hyde is None else options.hyde
        if hyde and self.expand is not None and query:
            query = await self.expand(query)
        found = await self._search(query, k, collection, scope)
        searched, found = found is not None, found or []
        kept = self.keep(found)
        used = {(h.source, h.section, h.text) for h in kept}
        tried = [h.citation() for h in found if (h.source, h.section, h.text) not in used]
        grounding = Grounding(
            self.prompts.apply(messages, kept), [self._cite(h) for h in kept], tried
        )
        if not kept and searched and self.fixed_decline:
            grounding.reply = self.prompts.declined_text
        return grounding

    def keep(self, passages: list) -> list:
        """The passages that go into the prompt, numbered from 1: none unless the best one
        passes the relevance gate (``min_top_score``); then each relevant enough
        (``min_score``) and within ``max_chars`` in all (the first one always fits)."""
        if not passages or max(h.score for h in passages) < self.min_top_score:
            return []
        kept, used = [], 0
        for hit in passages:
            if hit.score < self.min_score or (kept and used + len(hit.text) > self.max_chars):
                continue
            kept.append(replace(hit, rank=len(kept) + 1))
            used += len(hit.text)
        return kept

    def _cite(self, hit) -> dict:
        citation = hit.citation()
        if self.link is not None:
            citation["url"] = self.link(hit.source)
        return citation

    async def require_readable(self, source: str, scope: frozenset[str] | None) -> None:
        """A 404, the same as for a missing file, unless the caller may read ``source``.
        Without an index there are no permissions to go by: only admins read documents."""
        if scope is None:
            return  # an admin
        ok = False
        if self.index is not None:
            try:
                ok = await asyncio.to_thread(self.index.readable, source, scope)
            except RetrievalError:
                ok = False
        if not ok:
            raise APIError(404, "no such document", code="document_not_found")

    async def _search(
        self, query: str, k: int, collection: str | None, scope: frozenset[str] | None
    ) -> list | None:
        """The passages found; ``None`` when no search ran (no index, nothing to search
        for, retrieval unavailable): then the engine answers with the ungrounded prompt,
        as nobody knows whether the docs cover the question."""
        if self.index is None or not query:
            return None
        start = time.perf_counter()
        try:
            # Embedding and the vector search are CPU-bound: keep them off the event loop.
            return await asyncio.to_thread(self.index.search, query, k, collection, groups=scope)
        except RetrievalError as exc:
            if collection is not None:
                raise APIError(404, str(exc), code="collection_not_found") from None
            log.warning("retrieval unavailable, answering ungrounded: %s", exc)
            return None
        finally:
            self.observe(time.perf_counter() - start)
