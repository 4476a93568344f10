"""The one stage between the engine's SSE stream and the client.

On a GPU one vLLM sends 15,000+ events a second, each a token, so everything here runs
per piece of bytes read from the engine, not per event, and does as little as it can:
no JSON is parsed on the way except the first event (to add the grounding extension) and
the engine's final usage event; the bytes are kept and parsed once when the stream ends
(to record the answer and count its tokens).

What leaves here is always whole events (the engine's bytes cut at the last blank line
read), so a client never sees half an event and the final usage event can be recognised.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from assistant.errors import APIError

_CONTENT = re.compile(rb'"(?:content|text)":\s*"(?!")')
_NO_CHOICES = re.compile(rb'"choices":\s*\[\s*\]')


@dataclass
class StreamEnd:
    """What a finished (or cut) stream carried, parsed once."""

    completion_id: str | None
    answer: str
    completion_tokens: int
    usage: dict[str, Any] | None
    raw: bytes = field(repr=False)


@dataclass
class RelayOptions:
    extra: dict[str, Any] | None = None  # merged into the first event's JSON (grounding)
    drop_usage: bool = False  # the usage event was asked for by us, not by the client
    on_first_content: Callable[[], None] | None = None  # time to first token
    on_first_out: Callable[[], None] | None = None  # the engine's first bytes are passed on
    on_end: Callable[[StreamEnd], None] | None = None  # record, count; runs once


class _Framer:
    """Cuts the engine's bytes at event boundaries and applies the options."""

    __slots__ = ("_drop", "_extra", "_first", "_pending", "seen", "usage")

    def __init__(self, options: RelayOptions) -> None:
        self._pending = b""
        self._extra = options.extra
        self._first = options.on_first_content
        self._drop = options.drop_usage
        self.seen: list[bytes] = []
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> bytes:
        if self._pending:
            chunk, self._pending = self._pending + chunk, b""
        if not chunk.endswith(b"\n\n"):
            end = chunk.rfind(b"\n\n")
            if end < 0:
                self._pending = chunk
                return b""
            chunk, self._pending = chunk[: end + 2], chunk[end + 2 :]
        if self._extra is not None:
            chunk, self._extra = _extend_first(chunk, self._extra), None
        if self._first is not None and _CONTENT.search(chunk):
            self._first()
            self._first = None
        if self._drop and b'"usage"' in chunk:
            chunk = self._without_usage(chunk)
        self.seen.append(chunk)
        return chunk

    def tail(self) -> bytes:
        """Bytes after the last blank line (a stream that did not end with one)."""
        rest, self._pending = self._pending, b""
        if rest:
            self.seen.append(rest)
        return rest

    def _without_usage(self, chunk: bytes) -> bytes:
        kept = []
        for event in chunk.split(b"\n\n"):
            if event.startswith(b"data: {") and _NO_CHOICES.search(event):
                try:
                    payload = json.loads(event[6:])
                except ValueError:
                    payload = None
                if isinstance(payload, dict) and isinstance(payload.get("usage"), dict):
                    self.usage = payload["usage"]
                    continue
            kept.append(event)
        return b"\n\n".join(kept)

    def end(self) -> StreamEnd:
        raw = b"".join(self.seen)
        completion_id, answer, usage, events = parse_stream(raw)
        usage = usage or self.usage
        tokens = (usage or {}).get("completion_tokens")
        if not isinstance(tokens, int):
            tokens = events  # no usage event: about one token per content event
        return StreamEnd(completion_id, answer, tokens, usage, raw)


async def relay(
    first: bytes, rest: AsyncIterator[bytes], options: RelayOptions
) -> AsyncIterator[bytes]:
    """Yield ``first`` and then ``rest``, framed and adjusted; ``on_end`` when it stops,
    however it stops (finished, engine gone, client gone). An engine lost mid-answer ends
    the stream with an OpenAI error event (the ``openai`` client raises it), not a cut."""
    framer = _Framer(options)
    try:
        out = framer.feed(first) if first else b""
        if options.on_first_out is not None:
            options.on_first_out()
        if out:
            yield out
        try:
            async for chunk in rest:
                out = framer.feed(chunk)
                if out:
                    yield out
        except APIError as exc:  # a half event read before the loss is dropped
            yield b"data: " + json.dumps(exc.body()).encode() + b"\n\n"
            return
        out = framer.tail()
        if out:
            yield out
    finally:
        await rest.aclose()
        if options.on_end is not None:
            options.on_end(framer.end())


def _extend_first(chunk: bytes, extra: dict) -> bytes:
    end = chunk.find(b"\n\n")
    event, rest = chunk[:end], chunk[end:]
    if not event.startswith(b"data: {"):
        return chunk
    try:
        payload = json.loads(event[6:])
    except ValueError:
        return chunk
    payload.update(extra)
    return b"data: " + json.dumps(payload).encode() + rest


def parse_stream(raw: bytes) -> tuple[str | None, str, dict | None, int]:
    """(completion id, answer text, usage, content events) from a chat completion's SSE
    bytes.

    All events are decoded in one ``json.loads`` of a JSON array (one C call instead of one
    per token: this runs once per streamed answer, on the gateway's event loop); a stream
    with a malformed event falls back to decoding event by event, skipping the bad ones."""
    payloads = [line[6:] for line in raw.split(b"\n") if line.startswith(b"data: {")]
    try:
        events = json.loads(b"[" + b",".join(payloads) + b"]")
    except (ValueError, RecursionError):
        events = []
        for payload in payloads:
            try:
                events.append(json.loads(payload))
            except (ValueError, RecursionError):
                continue
    completion_id, parts, usage, count = None, [], None, 0
    for event in events:
        if not isinstance(event, dict):
            continue
        completion_id = completion_id or event.get("id")
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            piece = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
            if piece:
                count += 1
            if choice.get("index", 0) == 0:
                parts.append(piece)
    return completion_id, "".join(parts), usage, count
