"""Fine-tuning pieces: preparation, loss masks, the feedback store, settings, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.chat.feedback_store import FeedbackStore
from finetune.errors import FinetuneError
from finetune.prepare import clean_turns, drop_near_duplicates, prepare, split_of
from finetune.train import TrainConfig, tokenize_conversation
from finetune.transcripts import Conversation

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_clean_turns_merges_drops_empty_and_trailing_user_turns():
    turns = clean_turns(
        [
            {"role": "user", "content": "hi"},
            {"role": "user", "content": " my vpn says TP-204 "},
            {"role": "assistant", "content": ""},
            {"role": "assistant", "content": "Renew the certificate."},
            {"role": "user", "content": "thanks"},
        ]
    )
    assert turns == [
        {"role": "user", "content": "hi\nmy vpn says TP-204"},
        {"role": "assistant", "content": "Renew the certificate."},
    ]


def test_near_duplicates_are_dropped():
    text = "my laptop will not connect to the vpn and shows error TP-204 every single time today"
    a = Conversation("a", [{"role": "user", "content": text}], "x")
    b = Conversation("b", [{"role": "user", "content": text + " again"}], "x")
    c = Conversation("c", [{"role": "user", "content": "the printer on floor two jams"}], "x")
    kept, dropped = drop_near_duplicates([a, b, c], 0.8)
    assert [k.id for k in kept] == ["a", "c"] and dropped == 1


def test_split_is_deterministic_and_by_conversation():
    ids = [f"conv-{i}" for i in range(400)]
    first = {i: split_of(i, 0.2) for i in ids}
    assert first == {i: split_of(i, 0.2) for i in reversed(ids)}
    share = sum(side == "eval" for side in first.values()) / len(ids)
    assert 0.12 < share < 0.28


def test_prepare_scrubs_reports_bad_lines_and_splits(tmp_path):
    data = tmp_path / "data"
    write(
        data / "chats.jsonl",
        '{"id": "1", "messages": [{"role": "employee", "content": "I am E204517, call me on '
        '07700 900331"}, {"role": "agent", "content": "Thanks Brenda, done."}]}\n'
        "{broken json\n"
        '{"id": "2", "messages": [{"role": "alien", "content": "x"}]}\n'
        '{"id": "3", "messages": [{"role": "customer", "content": "printer jam on HAR-2F-MFP01"},'
        ' {"role": "support", "content": "Open tray 2."}]}\n',
    )
    write(data / "tickets.csv", "ticket_id,message\n1,hello\n")  # no author_role column
    write(
        data / "calls.txt",
        "### CALL-1 | ext 4357\nCaller: my password is Summer2026! and it fails\n"
        "Agent: Reset it at id.fennmoor.example/reset\n",
    )
    report = prepare(data, tmp_path / "out", eval_fraction=0.0, log=lambda _: None)
    assert report.kept == 3 and report.train == 3 and report.eval == 0
    assert report.pii["EMPLOYEE_ID"] == 1 and report.pii["PHONE"] == 1
    assert report.pii["PASSWORD"] == 1 and report.pii["NAME"] == 1
    problems = "\n".join(report.problems)
    assert "chats.jsonl:2" in problems and "chats.jsonl:3" in problems
    assert "tickets.csv:1" in problems and "author_role" in problems
    written = (tmp_path / "out" / "train.jsonl").read_text()
    for secret in ("E204517", "900331", "Summer2026", "Brenda"):
        assert secret not in written
    assert "HAR-2F-MFP01" in written and "<EMPLOYEE_ID>" in written
    roles = {m["role"] for line in written.splitlines() for m in json.loads(line)["messages"]}
    assert roles == {"user", "assistant"}
    assert json.loads((tmp_path / "out" / "report.json").read_text())["kept"] == 3


def test_prepare_never_puts_a_conversation_on_both_sides(tmp_path):
    report = prepare(ROOT / "data" / "transcripts", tmp_path, eval_fraction=0.3, log=print)
    ids = {
        side: {json.loads(line)["id"] for line in (tmp_path / f"{side}.jsonl").open()}
        for side in ("train", "eval")
    }
    assert ids["train"].isdisjoint(ids["eval"])
    assert len(ids["train"]) == report.train and len(ids["eval"]) == report.eval > 0


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(FinetuneError, match="does not exist"):
        prepare(tmp_path / "nope", tmp_path / "out")


def test_feedback_store_turns_ratings_into_training_conversations(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    question = [{"role": "user", "content": "How do I map the S: drive?"}]
    store.add(model="m", messages=question, answer="Use Fenn Drive Mapper.", rating=1)
    store.add(model="m", messages=question, answer="Reinstall Windows.", rating=-1)
    store.add(
        model="m",
        messages=question,
        answer="Call HR.",
        rating=-1,
        correction="Open Fenn Drive Mapper and tick S:.",
        sources=[{"source": "network-drives.md"}],
    )
    assert store.counts() == {"liked": 1, "disliked": 2, "corrected": 1}
    records = store.training_conversations()
    answers = [r["messages"][-1]["content"] for r in records]
    assert answers == ["Use Fenn Drive Mapper.", "Open Fenn Drive Mapper and tick S:."]
    assert all(r["messages"][0] == question[0] for r in records)
    assert store.latest(1)[0]["sources"] == [{"source": "network-drives.md"}]
    with pytest.raises(ValueError):
        store.add(model="m", messages=question, answer="x", rating=0)


def test_training_settings_from_yaml_with_overrides(tmp_path):
    path = write(tmp_path / "train.yaml", "lora_r: 8\nlearning_rate: 0.001\nmax_steps: 5\n")
    config = TrainConfig.from_yaml(path, max_steps=9, epochs=None)
    assert (config.lora_r, config.learning_rate, config.max_steps) == (8, 0.001, 9)
    write(path, "lora_rank: 8\n")
    with pytest.raises(FinetuneError, match="lora_rank"):
        TrainConfig.from_yaml(path)


def test_loss_mask_covers_assistant_turns_only(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    messages = [
        {"role": "user", "content": "printer jam"},
        {"role": "assistant", "content": "Open tray two."},
        {"role": "user", "content": "done"},
        {"role": "assistant", "content": "Great."},
    ]
    example = tokenize_conversation(tokenizer, messages, 512)
    trained = tokenizer.decode([t for t, lab in zip(example["input_ids"], example["labels"],
                                                    strict=True) if lab != -100])  # fmt: skip
    assert trained == "Open tray two.<|im_end|>Great.<|im_end|>"
    # without {% generation %} marks in the template, the mask is the same
    tokenizer.chat_template = tokenizer.chat_template.replace("{% generation %}", "").replace(
        "{% endgeneration %}", ""
    )
    assert tokenize_conversation(tokenizer, messages, 512) == example


def test_finetune_from_feedback_only(tiny_model, tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    for i in range(6):
        store.add(
            model="tiny",
            messages=[{"role": "user", "content": f"question {i} from E204517"}],
            answer=f"answer {i}",
            rating=1,
        )
    out = tmp_path / "adapter"
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "finetune", "--from-feedback",
         str(tmp_path / "feedback.sqlite"), "--base", str(tiny_model), "--output", str(out),
         "--max-steps", "2", "--json"],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["train_conversations"] == 6 and report["steps"] == 2
    assert report["eval_loss_before"] is None  # feedback never lands on the eval side
    assert "E204517" not in (out / "prepared" / "train.jsonl").read_text()
    assert (out / "adapter_config.json").is_file()


def test_finetune_cli_errors_are_one_line(tmp_path):
    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "assistant", "finetune", *args],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip

    missing = run("--base", "x", "--output", str(tmp_path))
    assert missing.returncode == 1 and "--data" in missing.stderr
    bad_base = run("--data", "data/transcripts", "--base", str(tmp_path / "nope"),
                   "--output", str(tmp_path / "o"), "--max-steps", "1")  # fmt: skip
    assert bad_base.returncode == 1 and "cannot load base model" in bad_base.stderr
    for result in (missing, bad_base):
        assert "Traceback" not in result.stderr
