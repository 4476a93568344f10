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


def test_killed_engine_gives_503_then_serves_again(tiny_model, tmp_path):
    served = start_serve(tmp_path, model=tiny_model)
    try:
        client = openai.OpenAI(base_url=served.base + "/v1", api_key="x", max_retries=0)
        ask = dict(model="tiny", messages=[{"role": "user", "content": "vpn"}], max_tokens=4)
        assert client.chat.completions.create(**ask).choices

        (child,) = vllm_children(served)
        os.killpg(child.pid, signal.SIGKILL)  # the engine and its workers crash
        deadline = time.monotonic() + 30
        while health(served.base) == 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert health(served.base) == 503
        with pytest.raises(openai.InternalServerError) as info:  # 503, at once, no hang
            client.chat.completions.create(**ask)
        assert info.value.status_code == 503

        deadline = time.monotonic() + 300
        while health(served.base) != 200 and time.monotonic() < deadline:
            time.sleep(1)
        assert health(served.base) == 200
        assert client.chat.completions.create(**ask).choices
        (new_child,) = vllm_children(served)
        assert new_child.pid != child.pid
    finally:
        stop_serve(served)
    assert not psutil.pid_exists(child.pid) or psutil.Process(child.pid).status() == "zombie"


def test_engine_dies_with_a_killed_gateway(tiny_model, tmp_path):
    """Even SIGKILL of the gateway (no cleanup code runs) must not leave vLLM behind."""
    served = start_serve(tmp_path, model=tiny_model)
    stop_serve(served, signal.SIGKILL)  # stop_serve asserts every child is gone
