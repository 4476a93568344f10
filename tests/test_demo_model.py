"""The offline demo model: loads in transformers, has the chat template, learned something."""

import json

import pytest

from finetune.demo_config import SIZES, DemoModelConfig
from finetune.demo_model import MARKER, build_demo_model, is_built
from finetune.errors import FinetuneError


def test_tiny_model_loads_and_generates(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.config.model_type == "llama"
    assert model.config.hidden_size // model.config.num_attention_heads in (64, 128)
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "VPN down"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|im_start|>user\nVPN down<|im_end|>\n<|im_start|>assistant\n"
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > ids.shape[1]


def test_training_lowered_the_loss_and_left_a_marker(tiny_model):
    assert is_built(tiny_model)
    report = json.loads((tiny_model / MARKER).read_text())
    assert report["eval_loss_after"] < report["eval_loss_before"]
    assert "DEMO MODEL" in report["label"]
    assert "DEMO MODEL" in (tiny_model / "README.md").read_text()


def test_chat_template_marks_assistant_turns_for_loss_masking(tiny_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    conv = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]
    enc = tok.apply_chat_template(conv, return_assistant_tokens_mask=True, return_dict=True)
    masked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"], strict=True) if m]
    assert tok.decode(masked) == "hello there<|im_end|>"


def test_bad_head_size_is_refused(tmp_path):
    bad = DemoModelConfig(hidden_size=96, num_heads=3)  # head size 32
    with pytest.raises(FinetuneError, match="head size 32"):
        build_demo_model(tmp_path, [[{"role": "user", "content": "x"}]], ["doc"], bad)


def test_empty_corpus_is_refused(tmp_path):
    with pytest.raises(FinetuneError, match="no training text"):
        build_demo_model(tmp_path, [], [], SIZES["tiny"])


def test_copy_examples_quote_a_span_of_their_context_with_loss_on_the_quote_only(tiny_model):
    from transformers import AutoTokenizer

    from finetune.demo_steps import COPY_PROMPT, copy_examples

    tok = AutoTokenizer.from_pretrained(tiny_model)
    stream = tok("The VPN client shows TP-204 when the certificate expired. " * 40)["input_ids"]
    config = DemoModelConfig(copy_context=64)
    prompt = tok(COPY_PROMPT, add_special_tokens=False)["input_ids"]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    for e in copy_examples(tok, stream, 20, config, seed=3, random_share=0.5):
        ids, labels = e["input_ids"], e["labels"]
        context, after = ids[:64], ids[64 + len(prompt) :]
        assert ids[64 : 64 + len(prompt)] == prompt and ids[-1] == end
        quote = after[:-1]
        assert 8 <= len(quote) <= 40
        assert any(context[i : i + len(quote)] == quote for i in range(64))  # a span of it
        graded = [t for t in labels if t != -100]
        assert graded == [*quote[2:], end]  # the first two tokens are the hint, not graded
        assert labels[: 64 + len(prompt) + 2] == [-100] * (64 + len(prompt) + 2)
    again = copy_examples(tok, stream, 20, config, seed=3)
    assert again == copy_examples(tok, stream, 20, config, seed=3)  # reproducible


def test_a_build_with_the_copying_circuit_quotes_and_loads_in_transformers(tmp_path):
    """The circuit is written before training, reported before and after, and saved with the
    shape it needs (head size 128, untied embeddings, RoPE base 1e9)."""
    from dataclasses import replace

    from transformers import AutoConfig

    texts = [f"Printer {i}: badge in at the device {i * 7}, then pick Release all. " * 12
             for i in range(8)]  # fmt: skip
    config = replace(SIZES["tiny"], hidden_size=384, num_heads=3, max_steps=3, copy_circuit=True,
                     copy_context=96)  # fmt: skip
    report = build_demo_model(tmp_path / "m", [], texts, config, progress=False,
                              log=lambda _m: None)  # fmt: skip
    circuit = report["copy_circuit"]
    assert circuit["quoted_tokens_right_built"] >= 0.9
    assert 0 <= circuit["quoted_tokens_right_trained"] <= 1
    saved = AutoConfig.from_pretrained(tmp_path / "m")
    assert (saved.head_dim, saved.tie_word_embeddings) == (128, False)
    assert saved.rope_parameters["rope_theta"] == 1e9
