"""The relay between the engine's SSE stream and the client (assistant.chat.relay)."""

from __future__ import annotations

import asyncio
import json

from assistant.chat.relay import RelayOptions, parse_stream, relay
from assistant.errors import APIError


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, separators=(",", ":")).encode() + b"\n\n"


def token(text: str, index: int = 0) -> bytes:
    return event({"id": "c1", "choices": [{"index": index, "delta": {"content": text}}]})


USAGE = event({"id": "c1", "choices": [], "usage": {"completion_tokens": 7}})
DONE = b"data: [DONE]\n\n"


async def pieces(*chunks: bytes, fail: APIError | None = None):
    for chunk in chunks:
        yield chunk
    if fail is not None:
        raise fail


def run(chunks, options: RelayOptions, take: int | None = None) -> list[bytes]:
    async def go():
        it = chunks
        first = await anext(it)
        out = []
        stream = relay(first, it, options)
        async for piece in stream:
            out.append(piece)
            if take is not None and len(out) == take:
                await stream.aclose()  # the client hangs up
                break
        return out

    return asyncio.run(go())


def test_events_cut_anywhere_leave_whole_events_only():
    whole = token("Re") + token("boot") + DONE
    ends = []
    out = run(
        pieces(whole[:5], whole[5:31], whole[31:32], whole[32:]),
        RelayOptions(on_end=ends.append),
    )
    assert b"".join(out) == whole
    assert all(piece.endswith(b"\n\n") for piece in out)
    assert ends[0].answer == "Reboot" and ends[0].completion_id == "c1"


def test_grounding_goes_into_the_first_event_only():
    out = run(
        pieces(token("A") + token("B"), token("C") + DONE),
        RelayOptions(extra={"sources": [{"rank": 1}], "grounded": True}),
    )
    events = [e for e in b"".join(out).split(b"\n\n") if e.startswith(b"data: {")]
    first, *others = [json.loads(e[6:]) for e in events]
    assert first["sources"] == [{"rank": 1}] and first["grounded"] is True
    assert first["choices"][0]["delta"]["content"] == "A"
    assert all("sources" not in e for e in others)


def test_our_usage_event_counts_tokens_and_is_not_shown():
    ends = []
    out = run(pieces(token("A"), USAGE + DONE), RelayOptions(drop_usage=True, on_end=ends.append))
    assert b"".join(out) == token("A") + DONE
    assert ends[0].completion_tokens == 7 and ends[0].usage == {"completion_tokens": 7}


def test_a_client_that_asked_for_usage_gets_it():
    ends = []
    out = run(pieces(token("A"), USAGE, DONE), RelayOptions(on_end=ends.append))
    assert USAGE in out and ends[0].completion_tokens == 7


def test_without_a_usage_event_content_events_are_counted():
    ends = []
    run(pieces(token("A") + token("") + token("B"), DONE), RelayOptions(on_end=ends.append))
    assert ends[0].completion_tokens == 2


def test_first_content_is_signalled_once_and_not_for_an_empty_role_event():
    seen = []
    role = event({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                "content": ""}}]})  # fmt: skip
    run(
        pieces(role, token("A"), token("B") + DONE),
        RelayOptions(on_first_content=lambda: seen.append(1)),
    )
    assert seen == [1]


def test_an_engine_lost_mid_answer_ends_with_an_error_event():
    ends = []
    lost = APIError(502, "the engine stopped mid-answer", code="engine_unavailable")
    out = run(pieces(token("A"), token("B")[:9], fail=lost), RelayOptions(on_end=ends.append))
    last = out[-1]
    assert last.startswith(b"data: {") and last.endswith(b"\n\n")
    assert json.loads(last[6:])["error"]["code"] == "engine_unavailable"
    assert b"".join(out[:-1]) == token("A")  # the half event read before the loss is dropped
    assert ends[0].answer == "A"


def test_a_client_that_hangs_up_still_ends_the_stream_once():
    ends, closed = [], []

    async def engine():
        try:
            for text in "ABCDEF":
                yield token(text)
        finally:
            closed.append(True)

    out = run(engine(), RelayOptions(on_end=ends.append), take=2)
    assert len(out) == 2 and closed == [True]
    assert len(ends) == 1 and ends[0].answer == "AB"


def test_a_stream_is_read_back_in_one_pass_and_bad_events_are_skipped():
    good = [token("Re"), token("boot"), token("x", index=1)]
    raw = b"".join([*good, DONE])
    assert parse_stream(raw)[:2] == ("c1", "Reboot")
    broken = b"".join([good[0], b"data: {not json\n\n", good[1], b"data: [1, 2]\n\n"])
    assert parse_stream(broken)[:2] == ("c1", "Reboot")
    assert parse_stream(b"") == (None, "", None, 0)
    deep = b"data: {" + b'"a":[' * 100_000 + b"\n\n"
    assert parse_stream(token("A") + deep)[:2] == ("c1", "A")
