"""Retrieval quality floors on a public manual nobody here wrote (the Debian handbook).

The 45 questions of data/eval/public/debian-handbook.jsonl were written from the manual
before any retrieval result was seen, and are never tuned on (tuning uses the .dev set).
The floors sit a little under what docs/RETRIEVAL.md reports, so a regression fails CI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")
QUESTIONS = ROOT / "data" / "eval" / "public" / "debian-handbook.jsonl"

# Measured (docs/RETRIEVAL.md): hybrid recall@5 0.978, MRR 0.861; dense 1.0, 0.920.
FLOORS = {"hybrid": (0.93, 0.83), "dense": (0.95, 0.87)}

pytestmark = pytest.mark.skipif(
    not HANDBOOK.is_dir(),
    reason="the Debian handbook is not installed (apt-get install debian-handbook; "
    "`make test` installs it when it runs as root)",
)


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> dict:
    store = tmp_path_factory.mktemp("handbook-store")
    result = subprocess.run(
        [
            sys.executable, "-m", "assistant", "eval-retrieval", "--docs", str(HANDBOOK),
            "--questions", str(QUESTIONS), "--compare", "--json", "--store", str(store),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=1500,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_default_mode_is_hybrid_and_each_mode_keeps_its_floor(scores):
    assert scores["mode"] == "hybrid" and scores["n"] == 45
    for mode, (recall, mrr) in FLOORS.items():
        measured = scores["modes"][mode]
        assert measured["recall@5"] >= recall and measured["mrr"] >= mrr, (mode, measured)


def test_the_naive_baseline_is_scored_beside_the_product(scores):
    """The report always carries the yardstick. (On this manual it is still ahead of the
    default hybrid mode: docs/RETRIEVAL.md says so; this test does not hide it.)"""
    naive = scores["modes"]["naive"]
    assert 0.5 < naive["mrr"] <= 1 and 0.5 < naive["recall@5"] <= 1


def test_the_whole_manual_is_indexed_and_keywords_alone_are_weaker(scores):
    assert scores["chunks"] > 2000  # every page, DocBook's notes included
    assert 0 < scores["modes"]["keyword"]["mrr"] < scores["modes"]["hybrid"]["mrr"]
