"""The GPU recipe (docs/GPU.md): its script's help and dry run, and the random-model builder
on a tiny config (CPU, seconds). Nothing here needs a GPU or starts vLLM."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "gpu_run.sh"
BUILDER = ROOT / "bench" / "random_model.py"


def bash(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_help_names_the_steps():
    result = bash("--help")
    assert result.returncode == 0, result.stderr
    steps = ("nvidia-smi", "ENGINE=gpu make install", "bench/random_model.py", "qwen2.5-1.5b",
             "assistant bench serve", "ASSISTANT_SPECULATIVE", "ngram",
             "bench/relay_overhead.py", "bench/results/gpu", "--dry-run")  # fmt: skip
    for words in steps:
        assert words in result.stdout, words


def test_dry_run_prints_every_command_and_runs_none(tmp_path):
    results = tmp_path / "gpu"
    result = bash("--dry-run", "--results", str(results), "--", "--num-prompts", "8")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    commands = ("nvidia-smi -L", "ENGINE=gpu make install", "random_model.py qwen2.5-1.5b",
                "bench serve --model .assistant/qwen2.5-1.5b-random", "--speculative off ngram",
                "bench/relay_overhead.py --out")  # fmt: skip
    for words in commands:
        assert words in out, words
    assert out.count("--num-prompts 8") == 2  # extra arguments reach both bench runs
    assert not results.exists()


def test_unknown_option_is_refused():
    result = bash("--no-such-option")
    assert result.returncode == 2
    assert "unknown option" in result.stderr


TINY = {
    "model_type": "qwen2",
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "intermediate_size": 256,
    "vocab_size": 600,
    "tie_word_embeddings": True,
}


def build(tmp_path: Path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "config.json").write_text(json.dumps(config))
    return subprocess.run(
        [sys.executable, str(BUILDER), str(tmp_path / "config.json"), str(tmp_path / "model"),
         "--texts", str(ROOT / "data" / "docs"), "--tokenizer-vocab", "512", *extra],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("random-model")
    result = build(folder, TINY)
    assert result.returncode == 0, result.stderr
    return folder / "model", json.loads(result.stdout.strip().splitlines()[-1])


def test_tiny_random_model_loads_with_the_config_shapes(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, report = tiny_model
    assert report["parameters"] > 0 and report["dtype"] == "bfloat16"
    model = AutoModelForCausalLM.from_pretrained(folder)
    config = model.config
    assert config.model_type == "qwen2" and model.dtype == torch.bfloat16
    assert (config.hidden_size, config.num_hidden_layers) == (128, 2)
    assert (config.num_attention_heads, config.num_key_value_heads) == (2, 1)
    assert (config.intermediate_size, config.vocab_size) == (256, 600)
    assert len(model.model.layers) == 2
    assert model.model.embed_tokens.weight.shape == (600, 128)
    attention = model.model.layers[0].self_attn
    assert attention.q_proj.weight.shape == (2 * 64, 128)
    assert attention.k_proj.weight.shape == (1 * 64, 128)
    assert model.model.layers[0].mlp.up_proj.weight.shape == (256, 128)

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) == 600 == report["tokenizer_tokens"] + report["filler_tokens"]
    assert tokenizer.decode([599]) == "[599]"  # every id the model can emit decodes
    question = [{"role": "user", "content": "My VPN says TP-204"}]
    prompt = tokenizer.apply_chat_template(question, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>user\n")  # the gateway sends chat requests
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert max(ids) < 512  # filler tokens are never produced by encoding
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), 600)
    assert config.eos_token_id == tokenizer.eos_token_id


def load_builder():
    spec = importlib.util.spec_from_file_location("random_model", BUILDER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tokenizer_larger_than_the_vocab_is_refused(tiny_model, tmp_path):
    builder = load_builder()
    args = builder.parse_args(["c.json", str(tmp_path / "out"), "--tokenizer", str(tiny_model[0])])
    with pytest.raises(builder.BuildError, match="must fit the config"):
        builder.make_tokenizer(args, vocab_size=300)


def test_builtin_config_is_qwen2_5_1_5b():
    qwen = load_builder().load_config_dict("qwen2.5-1.5b")
    assert qwen["model_type"] == "qwen2"
    shape = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
             "intermediate_size", "vocab_size")  # fmt: skip
    assert [qwen[k] for k in shape] == [1536, 28, 12, 2, 8960, 151936]
