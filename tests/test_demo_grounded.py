"""The demo model's grounded task: training examples made as the gateway grounds a question,
the relevance gate, the shipped weights and their checksums, and fine-tuning judged on
answers (unit level; the served model is checked in test_demo_answers.py)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass

import pytest

from assistant.chat.grounding import Grounder
from assistant.chat.prompt import PromptBuilder
from assistant.evaluation.text import cited
from finetune.demo_model import CHECKSUMS, MARKER, SHIPPED
from finetune.demo_shipped import install_shipped, verify_checksums, write_checksums
from finetune.demo_training import (
    ABSTAIN,
    Question,
    answer_sentences,
    build_training_set,
    doc_questions,
    lead_sentence,
    transcript_questions,
)
from finetune.errors import FinetuneError
from retrieval.text import split_sentences
from tests.conftest import ROOT

VPN = (
    "vpn-error-codes.md",
    "VPN error codes and fixes > TP-204 Device certificate missing or expired",
    "## TP-204 Device certificate missing or expired\n"
    "Your laptop's device certificate is renewed every 180 days by Fleetwarden. If the "
    "laptop has been switched off for a long time, the certificate may expire.\n"
    "Connect the laptop to a wired port in any office and leave it on for 20 minutes.",
)
WIFI = (
    "guest-wifi.html",
    "Guest Wi-Fi access > Vouchers",
    "## Vouchers\n| Who | Voucher |\n| --- | --- |\n"
    "| Visitors | Reception gives a one-day voucher code for FENN-GUEST |",
)


@dataclass
class FakeHit:
    rank: int
    source: str
    title: str
    section: str
    page: int | None
    score: float
    text: str


def hits(*chunks, scores=None):
    scores = scores or [0.6] * len(chunks)
    return [
        FakeHit(i + 1, src, src, section, None, score, text)
        for i, ((src, section, text), score) in enumerate(zip(chunks, scores, strict=True))
    ]


def grounder(min_top_score=0.4):
    return Grounder(None, PromptBuilder.from_file(company="Fennmoor"), min_top_score=min_top_score)


def test_answer_sentences_drop_headings_and_table_rules_and_flatten_rows():
    assert answer_sentences(WIFI[2]) == [
        "Visitors - Reception gives a one-day voucher code for FENN-GUEST"
    ]  # the header row is too short to answer anything
    sentences = answer_sentences(VPN[2])
    assert not any(s.startswith("#") for s in sentences)
    assert sentences[-1] == (
        "Connect the laptop to a wired port in any office and leave it on for 20 minutes."
    )


def test_questions_come_from_headings_sentences_and_transcripts():
    questions = doc_questions([VPN, WIFI], random.Random(0))
    kinds = {q.kind for q in questions}
    assert kinds == {"heading", "sentence"}
    assert all(q.source in {"vpn-error-codes.md", "guest-wifi.html"} for q in questions)
    assert len({q.text.lower() for q in questions}) == len(questions)  # no duplicates
    heading = next(q for q in questions if q.kind == "heading" and q.source == VPN[0])
    assert "tp-204 device certificate missing or expired" in heading.text
    talk = [
        [
            {"role": "user", "content": "vpn says TP-204 again"},
            {"role": "assistant", "content": "Plug into a wired port for 20 minutes."},
            {"role": "user", "content": "ok"},
        ]
    ]
    (q,) = transcript_questions(talk)  # "ok" is too short to be a question
    assert q.kind == "transcript" and q.text == "vpn says TP-204 again"


def test_examples_are_the_gateways_prompt_and_the_top_sources_opening(monkeypatch):
    import finetune.demo_training as dt

    monkeypatch.setattr(dt, "UNGROUNDED_SHARE", 0.0)
    g = grounder()
    asked = [
        Question("wired port leave on", "sentence", VPN[0]),
        Question("vpn TP-204", "transcript"),
        Question("guest voucher", "heading", WIFI[0]),
        Question("who won the football", "sentence", "x.md"),
    ]
    retrieved = {
        "wired port leave on": hits(VPN, WIFI, scores=[0.5, 0.45]),
        "vpn TP-204": hits(VPN, WIFI, scores=[0.5, 0.45]),
        "guest voucher": hits(WIFI, VPN, scores=[0.5, 0.45]),
        "who won the football": hits(WIFI, scores=[0.2]),  # below the gate
    }
    made = build_training_set(
        retrieved.__getitem__, g.keep, g.prompts.apply, asked, seed=3, log=lambda _: None
    )
    by_question = {c[-2]["content"]: c for c in made.conversations}
    system, _, answer = by_question["wired port leave on"]
    assert system["role"] == "system"  # the passages in the order retrieved: [1] vpn, [2] wifi
    assert system["content"].index("(vpn-error-codes.md)") < system["content"].index("(guest-")
    # the prompt shows the text without its heading line, and the answer is its opening,
    # copied as it stands there, cited [1]
    assert "\n## TP-204" not in system["content"]
    opening = "Your laptop's device certificate is renewed every 180 days by Fleetwarden"
    assert f"(vpn-error-codes.md)\n{opening}." in system["content"]
    assert answer["content"] == f"{opening} [1]."
    assert by_question["vpn TP-204"][-1]["content"] == f"{opening} [1]."
    voucher = by_question["guest voucher"][-1]["content"]
    assert voucher == "| Who | Voucher | [1]." and cited(voucher) == [1]
    # nothing found: only a share of such questions become "not covered" examples
    assert "who won the football" not in by_question
    assert made.counts["skipped_nothing_found"] == 1
    monkeypatch.setattr(dt, "UNGROUNDED_SHARE", 1.0)
    made = build_training_set(
        retrieved.__getitem__, g.keep, g.prompts.apply, asked[3:], log=lambda _: None
    )
    (declined,) = made.conversations
    assert "found nothing relevant" in declined[0]["content"]
    assert declined[-1]["content"] == ABSTAIN and made.counts["nothing_found"] == 1
    assert split_sentences(ABSTAIN) and "don't know" in ABSTAIN


@pytest.mark.parametrize(
    ("passage", "opening"),
    [
        ("## Limits\n- Mailbox size: **50 GB**. Outlook warns you.\n- Attachments: 25 MB.",
         "- Mailbox size: **50 GB**"),
        ("# Starters\n## Before day one\n1. HR creates the record. Then IT.\n2. IT ships it.",
         "1. HR creates the record"),
        ("Printing at home is blocked on company laptops, to keep paper copies\nin the office. "
         "Use FollowMe.", "Printing at home is blocked on company laptops, to keep paper copies"
         "\nin the office"),
        ("FennID passwords must:\n- be 14 characters long", "FennID passwords must:"),
        ("Guest access\n\nReception gives vouchers.", "Guest access"),
        ("Policy IT-01 " + "word " * 45 + "\nScope of it. More.", "Policy IT-01 " + "word " * 44
         + "word"),
    ],
)  # fmt: skip
def test_the_opening_sentence_is_cut_as_the_model_copies_it(passage, opening):
    assert lead_sentence(passage) == opening


def test_the_relevance_gate_keeps_all_or_nothing():
    g = grounder(min_top_score=0.4)
    assert g.keep(hits(VPN, WIFI, scores=[0.39, 0.30])) == []
    kept = g.keep(hits(VPN, WIFI, scores=[0.30, 0.41]))  # the best one passes: both stay
    assert [h.rank for h in kept] == [1, 2]
    assert grounder(min_top_score=-1).keep([]) == []


def test_checksums_catch_a_changed_or_missing_file(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / MARKER).write_text(json.dumps({"label": "x"}))
    write_checksums(model)
    assert sorted(verify_checksums(model)) == ["config.json", MARKER]
    out = tmp_path / "copy"
    assert install_shipped(out, model) == {"label": "x"}
    assert (out / CHECKSUMS).is_file()
    (model / "config.json").write_text('{"changed": true}')
    with pytest.raises(FinetuneError, match=r"config\.json does not match its checksum"):
        install_shipped(tmp_path / "again", model)
    (model / "config.json").unlink()
    with pytest.raises(FinetuneError, match="missing"):
        verify_checksums(model)


@pytest.mark.skipif(not (SHIPPED / MARKER).is_file(), reason="no shipped demo model")
def test_the_shipped_model_is_intact_small_and_labelled():
    names = verify_checksums(SHIPPED)
    size = sum((SHIPPED / n).stat().st_size for n in names)
    assert size <= 50 * 2**20
    report = json.loads((SHIPPED / MARKER).read_text())
    assert "DEMO MODEL" in report["label"]
    assert report["grounded"]["answer_loss_after"] < report["grounded"]["answer_loss_before"]
    config = json.loads((SHIPPED / "config.json").read_text())
    assert config["hidden_size"] // config["num_attention_heads"] in (64, 128)


@pytest.mark.skipif(not (SHIPPED / MARKER).is_file(), reason="no shipped demo model")
def test_demo_model_command_copies_the_shipped_weights(tmp_path):
    run = [sys.executable, "-m", "assistant", "demo-model", "--output", str(tmp_path / "m")]
    first = subprocess.run([*run, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout.strip().splitlines()[-1])
    assert result["shipped"] is True and result["built"] is True
    assert "checksums verified" in first.stderr
    again = subprocess.run([*run, "--json"], capture_output=True, text=True, cwd=ROOT)
    assert json.loads(again.stdout.strip().splitlines()[-1])["built"] is False
    assert "already built" in again.stderr


def test_heldout_conversations_become_questions_of_unknown_gold():
    from assistant.evaluation.finetune_answers import flat, heldout_questions

    asked = {"role": "user", "content": " vpn down "}
    records = [
        {"messages": [asked, {"role": "assistant", "content": "ok"}]},
        {"messages": [{"role": "assistant", "content": "hello"}]},
    ]
    (q,) = heldout_questions(records, "held-out")
    assert q.text == "vpn down" and q.gold is None and q.line == 1
    runs = {"before": {"faithfulness": 0.1}, "after": {"faithfulness": 0.9}}
    row = flat(runs)
    assert row["answers_faithfulness_before"] == 0.1 and row["answers_faithfulness_after"] == 0.9
    assert row["answers_gold_source_cited_after"] is None


def test_a_question_of_unknown_gold_is_scored_without_gold_or_abstention():
    from assistant.evaluation.metrics import Evidence, score_answer, summarize

    class Nothing:
        def check(self, sentences, evidence):
            return [[type("V", (), {"ok": True, "cosine": 1.0, "overlap": 1.0})()
                     for _ in evidence] for _ in sentences]  # fmt: skip

    class Flat:
        def embed(self, texts):
            return [[1.0, 0.0] for _ in texts]

    source = {"rank": 1, "source": "vpn-error-codes.md", "snippet": "wired port 20 minutes"}
    record = score_answer(
        question="vpn TP-204", gold=None, answer="Use a wired port for 20 minutes [1].",
        sources=[source], evidence=[Evidence.of(source)], grounded=True,
        support=Nothing(), embedder=Flat(),
    )  # fmt: skip
    assert record["gold_source_cited"] is None and record["abstention_correct"] is None
    assert record["faithfulness"] == 1.0
    summary = summarize([{**record, "gold": None, "latency_ms": 5.0}], "test")
    assert summary["abstention_correct"] is None and summary["n_offtopic"] == 0


def test_eval_questions_without_eval_answers_is_one_clear_error(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "finetune", "--data", "data/transcripts",
         "--base", "x", "--output", str(tmp_path / "o"), "--eval-questions",
         "data/eval/dev/answerable-dev.jsonl"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 1
    assert "--eval-questions goes with --eval-answers" in result.stderr
