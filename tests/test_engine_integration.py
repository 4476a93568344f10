"""The engine as a supervised child (killed and restarted) and existing servers via --llm-url."""

import os
import re
import signal
import time
import urllib.request

import openai
import psutil
import pytest

from tests.conftest import start_serve, stop_serve

pytestmark = pytest.mark.integration


def vllm_url(served) -> str:
    match = re.search(r"vLLM ready at (http://127\.0\.0\.1:\d+)", served.log.read_text())
    assert match, served.log.read_text()
    return match.group(1)


def vllm_children(served) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(served.proc.pid).children(recursive=True)
        if "vllm.entrypoints.openai.api_server" in " ".join(p.cmdline())
    ]


def health(base: str) -> int:
    try:
        with urllib.request.urlopen(base + "/health", timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def test_gateway_in_front_of_an_existing_vllm(served, tmp_path):
    """`--llm-url` starts no child: it uses the vLLM that is already running."""
    remote = start_serve(tmp_path, "--llm-url", vllm_url(served))
    try:
        assert vllm_children(remote) == []
        client = openai.OpenAI(base_url=remote.base + "/v1", api_key="x", max_retries=0)
        assert [m.id for m in client.models.list()] == ["tiny", "helpdesk-lora", "it-support"]
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "wifi"}], max_tokens=4
        )
        assert reply.choices[0].message.content is not None
    finally:
        stop_serve(remote)


def tokens_out(base: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r"^assistant_tokens_out_total (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


async def stream_one(client, n: int, max_tokens: int, running=None) -> dict:
    """One streamed chat as a user's client reads it; retrieval on for every other one.
    ``running``: a list that gets this stream's number once its first chunk is read (the
    answer then runs to max_tokens: end-of-sequence ignored)."""
    extra = {"retrieval": {"enabled": n % 2 == 0}}
    if running is not None:
        extra["ignore_eos"] = True
    stream = await client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": f"vpn error {n}"}],
        max_tokens=max_tokens,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra,
    )
    ids, text, usage, finish = set(), [], None, None
    async for chunk in stream:
        if running is not None and not ids:
            running.append(n)
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage.completion_tokens
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    return {"ids": ids, "text": "".join(text), "usage": usage, "finish": finish}


def test_64_streams_complete_then_a_killed_engine_gives_clear_errors_503_then_serves(
    tiny_model, tmp_path
):
    """The reliability campaign's load scenarios, in one vLLM start (bounded: 64 + 64 + 8
    requests): every stream whole and unmixed, /metrics equal to what the clients saw,
    gateway memory bounded; then vLLM SIGKILLed under load: in-flight streams end with a
    clear error (no hang), new requests 503 until it is back, then all succeed. Last, the
    gateway itself is SIGKILLed (no cleanup code runs): the restarted vLLM must not outlive
    it (``stop_serve`` checks every child is gone; a SIGTERM stop is the session fixture's)."""
    import asyncio

    served = start_serve(tmp_path, model=tiny_model)
    gateway = psutil.Process(served.proc.pid)
    try:

        async def load(count: int, max_tokens: int, running=None):
            async with openai.AsyncOpenAI(
                base_url=served.base + "/v1", api_key="x", max_retries=0
            ) as client:  # one per event loop: its connection pool belongs to the loop
                return await asyncio.gather(
                    *(
                        asyncio.wait_for(stream_one(client, n, max_tokens, running), 240)
                        for n in range(count)
                    ),
                    return_exceptions=True,
                )

        asyncio.run(load(4, 4))  # warm up
        before_tokens, before_rss = tokens_out(served.base), gateway.memory_info().rss
        results = asyncio.run(load(64, 24))
        failed = [r for r in results if isinstance(r, BaseException)]
        assert not failed, failed[:3]
        assert all(len(r["ids"]) == 1 and r["finish"] in {"stop", "length"} for r in results)
        assert len({next(iter(r["ids"])) for r in results}) == 64  # no stream mixed with another
        assert all(r["usage"] and r["usage"] <= 24 for r in results)
        assert tokens_out(served.base) - before_tokens == sum(r["usage"] for r in results)
        assert gateway.memory_info().rss - before_rss < 300 * 2**20

        (child,) = vllm_children(served)

        async def killed_under_load():
            started: list[int] = []
            running = asyncio.ensure_future(load(64, 1500, started))
            deadline = time.monotonic() + 120
            while len(started) < 16 and time.monotonic() < deadline and not running.done():
                await asyncio.sleep(0.05)
            os.killpg(child.pid, signal.SIGKILL)  # mid-answer: the engine and its workers crash
            return await running

        results = asyncio.run(killed_under_load())
        cut = [r for r in results if isinstance(r, BaseException)]
        assert not [r for r in cut if isinstance(r, asyncio.TimeoutError)]  # nothing hung
        assert cut, "the kill came after every stream had finished"
        assert all(isinstance(r, openai.APIError) for r in cut), cut[:3]
        assert all(r["finish"] in {"stop", "length"} for r in results if isinstance(r, dict))
        print(f"vLLM killed under 64 streams: {len(cut)} cut with an error, "
              f"{len(results) - len(cut)} finished before the kill, 0 hung")  # fmt: skip

        deadline = time.monotonic() + 30
        while health(served.base) == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        sync = openai.OpenAI(base_url=served.base + "/v1", api_key="x", max_retries=0)
        ask = dict(model="tiny", messages=[{"role": "user", "content": "vpn"}], max_tokens=4)
        assert health(served.base) == 503
        with pytest.raises(openai.InternalServerError) as info:  # 503, at once, no hang
            sync.chat.completions.create(**ask)
        assert info.value.status_code == 503

        deadline = time.monotonic() + 300
        while health(served.base) != 200 and time.monotonic() < deadline:
            time.sleep(1)
        assert health(served.base) == 200
        results = asyncio.run(load(8, 8))
        assert all(isinstance(r, dict) and r["finish"] for r in results), results
        (new_child,) = vllm_children(served)
        assert new_child.pid != child.pid
    finally:
        stop_serve(served, signal.SIGKILL)  # asserts every child is gone, vLLM included
    for pid in (child.pid, new_child.pid):
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
