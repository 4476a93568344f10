"""HttpUpstream's choice among several vLLM servers, and its readiness gate."""

import asyncio

import pytest

from assistant.chat.upstream import HttpUpstream
from assistant.errors import APIError


def test_requests_go_to_the_least_busy_server():
    up = HttpUpstream(["http://a:8000", "http://b:8000", "http://c:8000"])
    up._in_flight.update({"http://a:8000": 3, "http://b:8000": 1, "http://c:8000": 2})
    assert up._pick() == "http://b:8000"
    up._in_flight["http://b:8000"] = 5
    assert up._pick() == "http://c:8000"
    asyncio.run(up.aclose())


def test_unreachable_server_is_503_not_a_hang():
    up = HttpUpstream(["http://127.0.0.1:9"], timeout_s=5)  # port 9: nothing listens

    async def call():
        try:
            await up.get("/v1/models")
        finally:
            await up.aclose()

    with pytest.raises(APIError) as info:
        asyncio.run(call())
    assert info.value.status == 503


def test_not_ready_engine_is_refused_before_any_request():
    up = HttpUpstream(["http://127.0.0.1:9"], state=lambda: "starting")

    async def call():
        try:
            await up.post("/v1/chat/completions", {})
        finally:
            await up.aclose()

    with pytest.raises(APIError, match="starting"):
        asyncio.run(call())


def test_needs_a_url():
    with pytest.raises(ValueError):
        HttpUpstream([])


async def _engine(port_hits: list, *, cut_after: int | None = None):
    """A small real HTTP server speaking enough of vLLM's API: /v1/models and a stream."""
    from aiohttp import web

    async def models(request):
        port_hits.append(request.url.port)
        return web.json_response({"object": "list", "data": [{"id": "m"}]})

    async def chat(request):
        port_hits.append(request.url.port)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(5):
            if cut_after is not None and i == cut_after:
                request.transport.close()  # the engine dies mid-answer
                return resp
            await resp.write(b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n')
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


def test_requests_spread_over_replicas_and_a_dead_one_hands_over_its_share():
    async def scenario():
        hits: list = []
        (run_a, url_a), (run_b, url_b) = await _engine(hits), await _engine(hits)
        up = HttpUpstream([url_a, url_b], timeout_s=10)
        try:

            async def streamed() -> bytes:
                return b"".join([c async for c in up.stream("/v1/chat/completions", {})])

            bodies = await asyncio.gather(*(streamed() for _ in range(20)))
            assert all(b.endswith(b"data: [DONE]\n\n") for b in bodies)
            port_a, port_b = (int(u.rsplit(":", 1)[1]) for u in (url_a, url_b))
            assert hits.count(port_a) > 0 and hits.count(port_b) > 0  # spread
            await run_a.cleanup()  # replica A is gone: connections are refused
            hits.clear()
            bodies = await asyncio.gather(*(streamed() for _ in range(20)))
            results = await asyncio.gather(*(up.get("/v1/models") for _ in range(5)))
            assert all(b.endswith(b"data: [DONE]\n\n") for b in bodies)  # none lost
            assert all(r["data"][0]["id"] == "m" for r in results)
            assert set(hits) == {port_b}
        finally:
            await up.aclose()
            await run_b.cleanup()

    asyncio.run(scenario())


def test_an_engine_lost_mid_stream_raises_a_clear_error_not_a_hang():
    async def scenario():
        runner, url = await _engine([], cut_after=2)
        up = HttpUpstream([url], timeout_s=10)
        got = []
        try:
            with pytest.raises(APIError) as info:
                async for chunk in up.stream("/v1/chat/completions", {}):
                    got.append(chunk)
            assert info.value.status == 502 and "mid-answer" in info.value.message
            assert b"".join(got).count(b"data: {") == 2
            assert up._in_flight[url] == 0  # the connection is given back
        finally:
            await up.aclose()
            await runner.cleanup()

    asyncio.run(scenario())
