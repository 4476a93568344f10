"""A blind sample of answer sentences for labelling by hand: how often does each way of
checking support (the built-in embedder+overlap check, an LLM judge) agree with a person?

    python bench/judge_sample.py --run DIR HOME DOCS [--run ...] --per-answer 3 \
        --answers 70 --seed 7 --out bench/results/judge-sample.jsonl

Each ``--run`` is an `assistant eval-answers` result folder (its answers.jsonl), the
ASSISTANT_HOME the gateway answered from (its answer log holds the snippets of the sources
the model saw) and the documents folder those sources name. The sample holds, per
sentence, the question, the passages as the scorer reads them (heading and text, located by
snippet as `eval-answers` does) and the sentence: no verdict of any checker, so whoever
labels it cannot lean on one. `bench/judge_agreement.py` scores the labels.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
from pathlib import Path

from assistant.evaluation.harness import locate
from assistant.evaluation.metrics import Evidence, is_claim, split_sentences, strip_citations
from retrieval.loaders import LoadError, load


def logged_sources(home: Path) -> dict[tuple[str, str], list[dict]]:
    """(question, answer) -> the sources (with snippets) the answer log kept for it."""
    db = sqlite3.connect(home / "answers.sqlite")
    rows = db.execute("SELECT messages, answer, sources FROM answers").fetchall()
    found = {}
    for messages, answer, sources in rows:
        turns = json.loads(messages)
        question = next((m["content"] for m in reversed(turns) if m["role"] == "user"), "")
        found[(question, answer)] = json.loads(sources)
    return found


class Documents:
    def __init__(self, root: Path) -> None:
        self.root, self.texts = root, {}

    def text(self, name: str) -> str | None:
        if name not in self.texts:
            try:
                self.texts[name] = load(self.root / name, name).text
            except (LoadError, OSError):
                self.texts[name] = None
        return self.texts[name]


def candidates(run: Path, home: Path, docs: Path) -> list[dict]:
    """Every answer of the run with claims and passages, ready to label."""
    logged, documents = logged_sources(home), Documents(docs)
    out = []
    for line in (run / "answers.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record.get("error") or not record.get("sources"):
            continue
        sources = logged.get((record["question"], record["answer"]))
        if not sources:
            continue
        passages = []
        for s in sources:
            body = locate(documents.text(s["source"]), s.get("snippet") or "")
            passages.append(Evidence.of(s, body).text)
        claims = [strip_citations(s) for s in split_sentences(record["answer"]) if is_claim(s)]
        if claims:
            out.append(
                {
                    "run": run.name,
                    "question": record["question"],
                    "answer": record["answer"],
                    "passages": passages,
                    "claims": claims,
                }
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run", nargs=3, action="append", required=True, metavar=("RESULTS", "HOME", "DOCS")
    )
    parser.add_argument("--answers", type=int, default=70, help="answers to sample")
    parser.add_argument("--per-answer", type=int, default=3, help="sentences per answer, at most")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    pool = [c for run, home, docs in args.run
            for c in candidates(Path(run), Path(home), Path(docs))]  # fmt: skip
    rng = random.Random(args.seed)
    chosen = rng.sample(pool, min(args.answers, len(pool)))
    rows = []
    for answer_no, c in enumerate(chosen, start=1):
        claims = c["claims"]
        picked = sorted(rng.sample(range(len(claims)), min(args.per_answer, len(claims))))
        for i in picked:
            rows.append(
                {
                    "id": f"a{answer_no:03d}s{i + 1}",
                    "run": c["run"],
                    "question": c["question"],
                    "passages": c["passages"],
                    "answer": c["answer"],
                    "sentence": claims[i],
                }
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(
        f"{len(pool)} answers with claims and passages; sampled {len(chosen)} answers, "
        f"{len(rows)} sentences -> {args.out}"
    )


if __name__ == "__main__":
    main()
