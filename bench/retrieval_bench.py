"""Retrieval speed: indexing throughput against raw encoding, and query latency by mode.

    python bench/retrieval_bench.py [--docs data/docs] [--questions data/eval/retrieval.jsonl]
        [--synthetic 100000] [--out bench/results]

In one run, on the same chunks:
- raw: ``SentenceTransformer.encode`` of every chunk text (batch 64, normalized): the floor;
- indexer: ``Indexer.run`` into a fresh Chroma folder (load, split, embed, write, commit).
  The indexer's overhead is 1 - indexer chunks/s / raw chunks/s. Each is timed twice,
  interleaved, and the faster of the two kept.
- query latency p50/p95 per mode (dense, keyword, hybrid) over the questions, on the docs
  collection and on a synthetic collection of --synthetic chunks (texts recombined from the
  docs' sentences, embeddings the docs' own vectors plus noise, so no hours of encoding).

Writes retrieval_bench.json and retrieval_bench.png under --out; the last line printed is
the JSON.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

MODES = ("dense", "keyword", "hybrid")


def chunk_texts(docs: Path, embedder) -> list[str]:
    from retrieval.chunking import Chunker
    from retrieval.indexer import IndexReport, scan
    from retrieval.loaders import LoadError, load

    chunker = Chunker(embedder.count_tokens, 200, 30)
    texts = []
    for file in scan([docs], IndexReport()).values():
        try:
            chunks = chunker.split(load(file.path, file.source), file.digest)
            texts += [c.embedding_text(True) for c in chunks]  # what the indexer embeds
        except LoadError:
            continue
    return texts


def time_raw(embedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.model.encode(texts, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    return time.perf_counter() - start


def time_indexer(embedder, docs: Path, store: Path):
    from retrieval.progress import ConsoleObserver
    from retrieval.store import build_indexer, open_client

    client = open_client(store)
    indexer = build_indexer(
        client=client, collection="docs", embedder=embedder, chunk_tokens=200,
        chunk_overlap_tokens=30,
    )  # fmt: skip
    report = indexer.run([docs], observer=ConsoleObserver(bar=False))
    return report, client


def latencies(retriever, questions: list[str], collection: str, repeat: int) -> dict:
    out = {}
    for mode in MODES:
        retriever.search(questions[0], 5, collection, mode=mode)  # warm: BM25 build, caches
        times = []
        for _ in range(repeat):
            for q in questions:
                start = time.perf_counter()
                retriever.search(q, 5, collection, mode=mode)
                times.append((time.perf_counter() - start) * 1000)
        times.sort()
        out[mode] = {
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
            "n": len(times),
        }
    return out


def build_synthetic(client, embedder, texts: list[str], size: int, seed: int = 0) -> float:
    """A collection of ``size`` live chunks made from the real ones; returns seconds taken."""
    from retrieval.manifest import Manifest
    from retrieval.store import get_collection

    rng = random.Random(seed)
    sentences = [s.strip() for t in texts for s in t.replace("\n", " ").split(". ") if s.strip()]
    base = np.asarray(embedder.embed(texts), dtype=np.float32)
    started = time.perf_counter()
    chunks = get_collection(client, "synthetic", embedder.name)
    manifest = Manifest(client, "synthetic")
    per_doc, batch = 10, 5000
    noise = np.random.default_rng(seed)
    for start in range(0, size, batch):
        n = min(batch, size - start)
        vectors = base[noise.integers(0, len(base), n)] + noise.normal(0, 0.05, (n, base.shape[1]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = [f"syn-{start + i}" for i in range(n)]
        docs = [". ".join(rng.sample(sentences, 4)) for _ in range(n)]
        metas = [
            {"source": f"synthetic/doc-{(start + i) // per_doc}.md", "title": "Synthetic",
             "section": "", "content_hash": "h"}
            for i in range(n)
        ]  # fmt: skip
        chunks.add(ids=ids, embeddings=vectors.tolist(), documents=docs, metadatas=metas)
        first, last = start // per_doc, (start + n - 1) // per_doc
        manifest.commit([(f"synthetic/doc-{d}.md", "h", per_doc) for d in range(first, last + 1)])
        print(f"  synthetic: {start + n}/{size} chunks", flush=True)
    manifest.bump()
    return time.perf_counter() - started


def plot(report: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    idx = report["indexing"]
    left.bar(["raw encode", "indexer"], [idx["raw_chunks_per_s"], idx["indexer_chunks_per_s"]],
             color=["#888", "#2a7"])  # fmt: skip
    left.set_ylabel("chunks / s")
    left.set_title(f"Indexing {idx['chunks']} chunks: overhead {idx['overhead']:.0%}")
    scales = [k for k in ("docs", "synthetic") if k in report["query_latency"]]
    width = 0.8 / max(len(scales) * 2, 1)
    x = np.arange(len(MODES))
    for i, scale in enumerate(scales):
        lat = report["query_latency"][scale]
        label = f"{scale} ({lat['chunks']} chunks)"
        right.bar(x + (2 * i) * width, [lat[m]["p50_ms"] for m in MODES], width,
                  label=f"{label} p50")  # fmt: skip
        right.bar(x + (2 * i + 1) * width, [lat[m]["p95_ms"] for m in MODES], width,
                  label=f"{label} p95", alpha=0.6)  # fmt: skip
    right.set_xticks(x + width * (len(scales) * 2 - 1) / 2, MODES)
    right.set_ylabel("ms per query")
    right.set_title("Query latency (top 5)")
    right.legend(fontsize=7)
    fig.suptitle(f"Retrieval on {report['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    import os
    import platform

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=Path, default=Path("data/docs"))
    parser.add_argument("--questions", type=Path, default=Path("data/eval/retrieval.jsonl"))
    parser.add_argument("--synthetic", type=int, default=100_000, help="0 to skip")
    parser.add_argument("--repeat", type=int, default=3, help="passes over the questions")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from retrieval.embeddings import SentenceTransformerEmbedder
    from retrieval.evaluation import load_questions
    from retrieval.retriever import Retriever

    embedder = SentenceTransformerEmbedder("sentence-transformers/all-MiniLM-L6-v2")
    questions = [q.text for q in load_questions(args.questions)]
    texts = chunk_texts(args.docs, embedder)
    embedder.model.encode(texts[:64], batch_size=64)  # warm up
    raw, indexed = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(2):
            raw.append(time_raw(embedder, texts))
            report, client = time_indexer(embedder, args.docs, Path(tmp) / f"store{attempt}")
            indexed.append(report.seconds)
        assert report.embedded == len(texts), (report.embedded, len(texts))
        raw_rate = len(texts) / min(raw)
        idx_rate = report.embedded / min(indexed)
        result = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, no GPU",
            "embedding_model": embedder.name,
            "docs": str(args.docs),
            "indexing": {
                "chunks": len(texts),
                "raw_seconds": [round(s, 3) for s in raw],
                "indexer_seconds": [round(s, 3) for s in indexed],
                "raw_chunks_per_s": round(raw_rate, 1),
                "indexer_chunks_per_s": round(idx_rate, 1),
                "overhead": round(1 - idx_rate / raw_rate, 4),
            },
            "query_latency": {},
        }
        print(json.dumps(result["indexing"]))
        retriever = Retriever(client, embedder)
        result["query_latency"]["docs"] = {
            "chunks": report.chunks,
            **latencies(retriever, questions, "docs", args.repeat),
        }
        print(json.dumps(result["query_latency"]["docs"]))
        if args.synthetic:
            seconds = build_synthetic(client, embedder, texts, args.synthetic)
            start = time.perf_counter()
            retriever.search(questions[0], 5, "synthetic", mode="keyword")
            bm25_build = time.perf_counter() - start
            result["query_latency"]["synthetic"] = {
                "chunks": args.synthetic,
                "write_seconds": round(seconds, 1),
                "first_keyword_query_s": round(bm25_build, 2),
                **latencies(retriever, questions, "synthetic", 1),
            }
            print(json.dumps(result["query_latency"]["synthetic"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "retrieval_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'retrieval_bench.json'}")
    plot(result, args.out / "retrieval_bench.png")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
