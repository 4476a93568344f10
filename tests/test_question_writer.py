"""Questions a served model writes for the docs' passages (``finetune embeddings
--questions-url``): parsing its replies, the cache that makes a run resumable, and the
one-sentence error when no model answers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval.question_writer import parse_questions, write_questions

DATA = Path(__file__).resolve().parents[1] / "data"
PASSAGES = [
    "VPN error TP-204: the device certificate expired. Renew it in Fleetwarden.",
    "Printers on floor 2 are added with the Papercut client; pick FL2-COLOR.",
    "Passwords expire every 180 days; change yours at https://keyloop.example/reset.",
]


def test_parse_strips_numbering_bullets_quotes_and_preambles():
    reply = (
        "Here are two questions:\n"
        '1. "my vpn says TP-204, what now?"\n'
        "2) how do i renew the vpn certificate\n"
        "- how do i renew the vpn certificate\n"
        "ok\n"
        "* third one that is not wanted\n"
    )
    assert parse_questions(reply, 2) == [
        "my vpn says TP-204, what now?",
        "how do i renew the vpn certificate",
    ]
    assert parse_questions("Sure!\n\n", 2) == []
    junk = (
        "Answer: The easiest way is to let a backup application do it.\n"
        "What is GNOME Classic? > Window list\n"
        "If you suspend your computer, the driver may not support it.\n"
        "wifi keeps dropping every 15 minutes on my laptop\n"
    )
    assert parse_questions(junk, 5) == [
        "What is GNOME Classic?",
        "wifi keeps dropping every 15 minutes on my laptop",
    ]


class Writer:
    def __init__(self, fail_at: int | None = None) -> None:
        self.prompts: list[str] = []
        self.fail_at = fail_at

    def __call__(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if self.fail_at is not None and len(self.prompts) == self.fail_at:
            raise ConnectionError("server went away")
        passage = prompt.split("PASSAGE:\n", 1)[1].split("\n", 1)[0]
        return f"1. what about {passage[:20]}?\n2. second question on {passage[:12]}"


def test_questions_per_passage_and_a_seeded_sample(tmp_path):
    writer = Writer()
    pairs = write_questions(PASSAGES, writer, per_passage=2)
    assert [i for i, _ in pairs] == [0, 0, 1, 1, 2, 2]
    assert "2 different questions" in writer.prompts[0] and PASSAGES[0] in writer.prompts[0]
    some = write_questions(PASSAGES, Writer(), per_passage=1, limit=2, seed=3)
    assert len(some) == 2 and some == write_questions(
        PASSAGES, Writer(), per_passage=1, limit=2, seed=3
    )


def test_an_interrupted_run_resumes_from_the_cache_and_a_rerun_asks_nothing(tmp_path):
    cache = tmp_path / "q.jsonl"
    with pytest.raises(ConnectionError):
        write_questions(PASSAGES, Writer(fail_at=3), cache=cache)
    assert len(cache.read_text().splitlines()) == 2  # the two replies before the failure
    with cache.open("a") as f:
        f.write('{"key": "cut sho')  # a line cut short by a killed run
    resumed = Writer()
    pairs = write_questions(PASSAGES, resumed, cache=cache)
    assert len(resumed.prompts) == 1 and PASSAGES[2] in resumed.prompts[0]
    assert len(pairs) == 6
    again = Writer()
    assert write_questions(PASSAGES, again, cache=cache) == pairs and again.prompts == []


def test_no_model_at_the_url_is_one_sentence_naming_the_option(tmp_path):
    out = tmp_path / "adapted"
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "finetune", "embeddings", "--docs",
         str(DATA / "docs"), "--output", str(out), "--transcripts", str(tmp_path / "none"),
         "--questions-url", "http://127.0.0.1:9", "--questions-model", "qwen",
         "--questions-limit", "2"],
        capture_output=True, text=True, timeout=600,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert "--questions-url" in last and "127.0.0.1:9" in last and "Traceback" not in result.stderr
    assert not out.exists()


def test_url_and_model_go_together(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "finetune", "embeddings", "--docs",
         str(DATA / "docs"), "--output", str(tmp_path / "o"), "--questions-url", "http://x"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "go together" in result.stderr


def test_the_cache_records_what_was_asked(tmp_path):
    cache = tmp_path / "q.jsonl"
    write_questions(PASSAGES[:1], Writer(), per_passage=2, cache=cache)
    row = json.loads(cache.read_text())
    assert row["reply"].startswith("1. what about VPN error")  # raw: parsed again each run
    assert row["key"].endswith(":2")


def test_written_questions_train_the_embedder_held_out_by_document(tmp_path):
    """``adapt_embedder`` with questions from a writer and no transcripts: pairs held out by
    document, judged before and after, the report says how many were written."""
    import shutil

    from retrieval import adapt
    from retrieval.embeddings import SentenceTransformerEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    for name in sorted(p.name for p in (DATA / "docs").glob("*.md"))[:6]:
        shutil.copy(DATA / "docs" / name, docs / name)

    def generate(passages: list[str]) -> list[tuple[int, str]]:
        # a stand-in writer: the passage's first words as a question
        return [(i, " ".join(p.split()[3:12]) + "?") for i, p in enumerate(passages)]

    embedder = SentenceTransformerEmbedder("all-MiniLM-L6-v2")
    report = adapt.adapt_embedder(
        embedder, "all-MiniLM-L6-v2", docs, [], tmp_path / "out",
        chunk_tokens=200, chunk_overlap=30, eval_fraction=0.4, progress=False,
        log=lambda line: None, generate=generate,
    )  # fmt: skip
    assert report.written == report.pairs == report.passages
    assert report.conversations == 0 and 0 < report.train_pairs < report.pairs
    assert report.probes == report.pairs - report.train_pairs
    summary = report.summary()
    assert summary["written_questions"] == report.written
    assert summary["kept"] == (tmp_path / "out" / "config_sentence_transformers.json").exists()
