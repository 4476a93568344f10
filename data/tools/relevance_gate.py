"""How the relevance gate (settings.retrieval_min_top_score) was chosen, on dev sets alone.

A maintenance script, not part of the product (about a minute on 2 cores):
    python data/tools/relevance_gate.py [--embedding-model M] [--docs DIR]

The gateway grounds an answer only when the best passage's cosine similarity reaches the
gate; below it the answer says the docs do not cover the question ("grounded": false).
On-topic questions: each employee's first message in data/transcripts (the sample
company's docs were written to answer them). Off-topic questions: data/eval/dev/
off-topic-dev.jsonl, written for this choice and never reported. For each gate the share of
on-topic questions kept and off-topic ones declined is printed, then the chosen gate: the
lowest one whose sum of the two is within one off-topic question (1/n) of the largest sum
(declining an answerable question costs a ticket; a difference of one question is noise).
Nothing from the test sets in data/eval is used. Another embedding model has its own
cosine scale: run this with it, on your docs and your own off-topic questions, and set
ASSISTANT_RETRIEVAL_MIN_TOP_SCORE.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.knowledge.factories import index_into, make_embedder, make_retriever  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from finetune.transcripts import ReadReport, read_transcripts  # noqa: E402
from retrieval.store import open_client  # noqa: E402

GRID = [round(0.20 + 0.01 * i, 2) for i in range(26)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=Path, default=ROOT / "data" / "docs")
    parser.add_argument("--transcripts", type=Path, default=ROOT / "data" / "transcripts")
    parser.add_argument(
        "--off-topic", type=Path, default=ROOT / "data" / "eval" / "dev" / "off-topic-dev.jsonl"
    )
    parser.add_argument("--embedding-model", default=None)
    args = parser.parse_args()

    on_topic = []
    for conversation in read_transcripts(args.transcripts, ReadReport()):
        first = [m["content"] for m in conversation.messages if m["role"] == "user"]
        if first:
            on_topic.append(first[0])
    off_topic = [
        json.loads(line)["question"]
        for line in args.off_topic.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    with tempfile.TemporaryDirectory() as home:
        extra = {"embedding_model": args.embedding_model} if args.embedding_model else {}
        settings = Settings(home=Path(home), **extra)
        embedder = make_embedder(settings)
        client = open_client(Path(home) / "index")
        index_into(settings, client, embedder, [args.docs])
        retriever = make_retriever(settings, client, embedder)

        def best(question: str) -> float:
            hits = retriever.search(question, settings.retrieval_k)
            return max((h.score for h in hits), default=-1.0)

        on = [best(q) for q in on_topic]
        off = [best(q) for q in off_topic]
    print(f"{len(on)} on-topic (transcripts), {len(off)} off-topic (dev set)")
    print("gate   on-topic kept   off-topic declined")
    rows = []
    for gate in GRID:
        kept = sum(s >= gate for s in on) / len(on)
        declined = sum(s < gate for s in off) / len(off)
        rows.append((kept + declined, -gate, gate, kept, declined))
        print(f"{gate:.2f}   {kept:13.3f}   {declined:18.3f}")
    top = max(r[0] for r in rows)
    _, _, gate, kept, declined = max(r for r in rows if r[0] >= top - 1 / len(off) - 1e-9)
    print(f"chosen: {gate:.2f} (kept {kept:.3f}, declined {declined:.3f})")
    print(f"in force: {Settings().retrieval_min_top_score}")


if __name__ == "__main__":
    main()
