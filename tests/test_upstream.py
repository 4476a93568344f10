"""HttpUpstream's choice among several vLLM servers, and its readiness gate."""

import asyncio

import pytest

from assistant.errors import APIError
from assistant.upstream import HttpUpstream


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
