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
    assert row["questions"][0].startswith("what about VPN error")
    assert row["key"].endswith(":2")
