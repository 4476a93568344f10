"""Chat and text completions: validation, model lookup, forwarding. No FastAPI in here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from assistant.chat import fixed_reply
from assistant.chat.answer_log import AnswerLog
from assistant.chat.grounding import Grounder, Grounding
from assistant.chat.prompt import text_of
from assistant.chat.relay import RelayOptions, StreamEnd, relay
from assistant.chat.schemas import ChatCompletionRequest, CompletionRequest, parse
from assistant.chat.upstream import Upstream
from assistant.errors import APIError
from assistant.gateway.metrics import Metrics
from assistant.identity.auth import ANONYMOUS, Principal


class ModelCatalog:
    """The names the engine serves (base model and adapters), refreshed every few seconds."""

    def __init__(self, upstream: Upstream, ttl_s: float = 10.0) -> None:
        self.upstream = upstream
        self.ttl_s = ttl_s
        self._names: set[str] = set()
        self._at = 0.0

    async def listing(self) -> dict[str, Any]:
        listing = await self.upstream.get("/v1/models")
        self._names = {m["id"] for m in listing.get("data", [])}
        self._at = time.monotonic()
        return listing

    async def require(self, name: str) -> None:
        if time.monotonic() - self._at > self.ttl_s or name not in self._names:
            await self.listing()
        if name not in self._names:
            known = ", ".join(sorted(self._names)) or "none"
            raise APIError(
                404,
                f"model '{name}' does not exist; served models: {known}",
                code="model_not_found",
            )


@dataclass
class Prepared:
    """A chat request checked and grounded, ready for the engine."""

    body: dict  # what the engine is sent
    stream: bool
    extension: dict | None  # the grounding fields the response carries (Grounding.extension)
    record: dict  # what the answer log keeps with the answer
    started: float  # time.perf_counter() when the request came in
    reply: str | None = None  # the gateway's own answer (Grounding.reply): no engine call


class ChatService:
    """Forwards OpenAI requests to the engine, grounding chats in the docs on the way."""

    def __init__(
        self,
        upstream: Upstream,
        catalog: ModelCatalog,
        grounder: Grounder | None = None,
        metrics: Metrics | None = None,
        answers: AnswerLog | None = None,
    ) -> None:
        self.upstream = upstream
        self.catalog = catalog
        self.grounder = grounder
        self.metrics = metrics
        self.answers = answers  # what was answered to whom, for feedback to point at

    async def chat(
        self, raw: bytes, principal: Principal = ANONYMOUS
    ) -> dict[str, Any] | AsyncIterator[bytes]:
        prepared = await self._prepare(raw, principal)
        if prepared.stream:
            return await self._stream(prepared)
        return await self._respond(prepared)

    async def _prepare(self, raw: bytes, principal: Principal) -> Prepared:
        """Parse, check the model, ground the messages in what ``principal`` may read."""
        started = time.perf_counter()
        request = parse(ChatCompletionRequest, raw)
        await self.catalog.require(request.model)
        body = request.model_dump(exclude_none=True, exclude={"retrieval"})
        asked = [
            {"role": m.get("role"), "content": text_of(m.get("content"))} for m in body["messages"]
        ]
        grounding = await self._ground(body["messages"], request.retrieval, principal.scope)
        body["messages"] = grounding.messages
        record = {"user": principal.name, "model": request.model, "messages": asked,
                  "sources": grounding.sources, "grounded": grounding.grounded,
                  "tried": grounding.tried}  # fmt: skip
        return Prepared(
            body, request.stream, grounding.extension(), record, started, grounding.reply
        )

    async def _ground(
        self, messages: list[dict], options, scope: frozenset[str] | None
    ) -> Grounding:
        if self.grounder is None:
            return Grounding.off(messages)
        return await self.grounder.ground(messages, options, scope)

    async def _respond(self, prepared: Prepared) -> dict[str, Any]:
        """One answer: the engine's, with the grounding fields; counted and recorded."""
        if prepared.reply is not None:
            result = fixed_reply.completion(prepared.reply, prepared.body["model"])
        else:
            result = await self.upstream.post("/v1/chat/completions", prepared.body)
        if prepared.extension:
            result = {**result, **prepared.extension}
        if self.metrics is not None:
            self.metrics.count_usage(result)
        choices = result.get("choices") or [{}]
        answer = (choices[0].get("message") or {}).get("content") or ""
        self._record(result.get("id"), answer, prepared.record)
        return result

    async def _stream(self, prepared: Prepared) -> AsyncIterator[bytes]:
        """The engine's stream, relayed with the grounding fields in its first event;
        counted, timed and recorded when it ends. The engine's own usage event counts the
        tokens (speculative decoding sends several per event); it is dropped again unless
        the client asked for it."""
        body = prepared.body
        options = body.get("stream_options")
        wanted = isinstance(options, dict) and bool(options.get("include_usage"))
        body["stream_options"] = {**(options if isinstance(options, dict) else {}),
                                  "include_usage": True}  # fmt: skip
        sent = time.perf_counter()
        if prepared.reply is not None:
            first, rest = fixed_reply.stream(prepared.reply, body["model"])
        else:
            first, rest = await self._open_stream("/v1/chat/completions", body)
        arrived = time.perf_counter()

        def ended(end: StreamEnd) -> None:
            if self.metrics is not None:
                self.metrics.tokens_out.inc(end.completion_tokens)
                self.metrics.stream_seconds.observe(time.perf_counter() - prepared.started)
            self._record(end.completion_id, end.answer, prepared.record)

        timers = self._timers(prepared.started, sent, arrived)
        return relay(
            first,
            rest,
            RelayOptions(extra=prepared.extension, drop_usage=not wanted, on_end=ended, **timers),
        )

    def _timers(self, started: float, sent: float, arrived: float) -> dict[str, Any]:
        """The relay's hooks that time a stream (none without metrics): the time to its
        first content, and the gateway's own share of the wait for its first event (before
        the engine was asked, and from the engine's first bytes until they are passed on)."""
        metrics = self.metrics
        if metrics is None:
            return {}

        def first_out() -> None:
            metrics.gateway_seconds.observe(sent - started + time.perf_counter() - arrived)

        def first_content() -> None:
            metrics.ttft.observe(time.perf_counter() - started)

        return {"on_first_out": first_out, "on_first_content": first_content}

    def _record(self, completion_id: str | None, answer: str, record: dict) -> None:
        """Keep an answer. Written by the log's own thread, not awaited: the event loop
        never waits on SQLite, and a stream closed by a client that hung up (a cancelled
        scope, where any await would raise again) is still recorded. Reads wait for
        pending writes."""
        if completion_id and self.answers is not None:
            self.answers.record_later(id=completion_id, answer=answer, **record)

    async def complete(self, raw: bytes) -> dict[str, Any] | AsyncIterator[bytes]:
        request = parse(CompletionRequest, raw)
        await self.catalog.require(request.model)
        body = request.model_dump(exclude_none=True)
        return await self._forward("/v1/completions", body, request.stream)

    async def models(self) -> dict[str, Any]:
        return await self.catalog.listing()

    async def _forward(self, path: str, body: dict, stream: bool):
        if not stream:
            return await self.upstream.post(path, body)
        first, rest = await self._open_stream(path, body)
        return relay(first, rest, RelayOptions())

    async def _open_stream(self, path: str, body: dict) -> tuple[bytes, AsyncIterator[bytes]]:
        """Start a stream and read its first bytes now, so an engine error becomes an HTTP
        status, not a half-open stream."""
        chunks = self.upstream.stream(path, body)
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            first = b""
        except BaseException:
            await chunks.aclose()
            raise
        return first, chunks
