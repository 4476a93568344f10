"""Embedding speed on this CPU, per model and precision, in one run: query latency (one
question at a time, as a search embeds it), passage throughput (batches, as the indexer
embeds), and how far the int8 vectors drift from the float32 ones.

    python bench/embedder_speed.py --model NAME_OR_DIR [--model ...] [--precision float32 int8]
        [--questions FILE]... [--docs data/docs] [--passages 256] [--out bench/results]

Questions default to every dev question of data/eval/public (typed by people, 5-25 words);
passages are the chunks of --docs as the indexer cuts them. Each model and precision is
measured twice, interleaved, and the faster run kept (this machine is shared and noisy).
Writes embedder_speed.json and .png under --out; the last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retrieval.embeddings import SentenceTransformerEmbedder  # noqa: E402


def questions(files: list[Path]) -> list[str]:
    return [json.loads(line)["question"] for f in files for line in f.read_text().splitlines()
            if line.strip()]  # fmt: skip


def passages(docs: Path, embedder, limit: int) -> list[str]:
    """The chunks of ``docs`` as the indexer embeds them (with headers), at most ``limit``."""
    from retrieval_bench import chunk_texts  # bench/ is this script's folder, on sys.path

    return chunk_texts(docs, embedder)[:limit]


def measure(embedder, qs: list[str], ps: list[str]) -> dict:
    embedder.embed_query(qs[:4])  # warm
    times = []
    for q in qs:
        start = time.perf_counter()
        embedder.embed_query([q])
        times.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    embedder.embed(ps)
    seconds = time.perf_counter() - start
    times.sort()
    return {"query_p50_ms": round(statistics.median(times), 2),
            "query_p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
            "passages_per_s": round(len(ps) / seconds, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True)
    parser.add_argument("--precision", nargs="+", default=["float32", "int8"])
    parser.add_argument("--questions", type=Path, action="append")
    parser.add_argument("--docs", type=Path, default=ROOT / "data" / "docs")
    parser.add_argument("--passages", type=int, default=256)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    files = args.questions or sorted((ROOT / "data/eval/public").glob("*.dev.jsonl"))
    qs = questions(files)
    rows = []
    for model in args.model:
        embedders = {p: SentenceTransformerEmbedder(model, precision=p) for p in args.precision}
        ps = passages(args.docs, embedders[args.precision[0]], args.passages)
        runs = {p: [] for p in args.precision}
        for _ in range(2):
            for p, e in embedders.items():
                runs[p].append(measure(e, qs, ps))
        base = np.array(embedders[args.precision[0]].embed(ps[:64]))
        for p, e in embedders.items():
            best = min(runs[p], key=lambda r: r["query_p50_ms"])
            drift = np.sum(base * np.array(e.embed(ps[:64])), axis=1)
            rows.append(
                {
                    "model": Path(model).name,
                    "precision": p,
                    **best,
                    "cosine_to_first_precision_min": round(float(drift.min()), 4),
                    "cosine_to_first_precision_mean": round(float(drift.mean()), 4),
                }
            )
            print(rows[-1], file=sys.stderr)
    result = {
        "machine": "x86_64, 2 CPUs, no GPU",
        "questions": len(qs),
        "passages": len(ps),
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedder_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, args.out / "embedder_speed.png")
    print(json.dumps(result))


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['model']}\n{r['precision']}" for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(rows))
    a.bar(x - 0.2, [r["query_p50_ms"] for r in rows], 0.4, label="p50")
    a.bar(x + 0.2, [r["query_p95_ms"] for r in rows], 0.4, label="p95")
    a.set_xticks(x, labels, fontsize=8)
    a.set_ylabel("ms per query (one at a time)")
    a.legend()
    b.bar(x, [r["passages_per_s"] for r in rows])
    b.set_xticks(x, labels, fontsize=8)
    b.set_ylabel("passages / s (batch 64)")
    fig.suptitle("Embedding on this 2-core CPU")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
