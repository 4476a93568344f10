"""One figure of the retrieval defaults chosen on dev questions: hybrid MRR per corpus for each
keyword weight tried (MiniLM), and per embedder and precision (keyword weight 0.1).

    python bench/retrieval_choices.py [--results bench/results] [--out bench/results]

Reads the `bench/retrieval_quality.py --set dev` results kept under --results
(retrieval_quality-minilm-dev45-w*.json, retrieval_quality-{mpnet,minilm-int8,mpnet-int8}-
dev45*.json) and writes retrieval_choices.png; the last line printed is the table as JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ("debian-handbook", "apache-httpd", "debian-reference", "gnome-help", "debian-faq")
WEIGHTS = ("0.05", "0.1", "0.2", "0.3")
EMBEDDERS = {
    "MiniLM float32": "retrieval_quality-minilm-dev45-w0.1.json",
    "MiniLM int8": "retrieval_quality-minilm-int8-dev45.json",
    "mpnet float32": "retrieval_quality-mpnet-dev45-w0.1.json",
    "mpnet int8": "retrieval_quality-mpnet-int8-dev45.json",
}


def mrr(path: Path, mode: str = "hybrid") -> dict[str, float]:
    corpora = json.loads(path.read_text())["corpora"]
    return {name: c["modes"][mode]["mrr"] for name, c in corpora.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    weights = {f"hybrid {w}": mrr(args.results / f"retrieval_quality-minilm-dev45-w{w}.json")
               for w in WEIGHTS}  # fmt: skip
    base = args.results / "retrieval_quality-minilm-dev45-w0.1.json"
    weights = {"naive": mrr(base, "naive"), "dense": mrr(base, "dense"), **weights}
    embedders = {label: mrr(args.results / name) for label, name in EMBEDDERS.items()}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for ax, table, title in (
        (axes[0], weights, "MiniLM: keyword weight of the fusion (0.1 chosen)"),
        (axes[1], embedders, "Embedder and precision, hybrid, weight 0.1"),
    ):
        width = 0.8 / len(table)
        for i, (label, row) in enumerate(table.items()):
            xs = [j + i * width for j, c in enumerate(CORPORA) if c in row]
            ax.bar(xs, [row[c] for c in CORPORA if c in row], width, label=label)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(CORPORA))],
                      [c.replace("debian-", "") for c in CORPORA])  # fmt: skip
        ax.set_ylim(0.5, 1.0)
        ax.set_ylabel("dev MRR (45 questions per corpus)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "retrieval_choices.png", dpi=110)
    print(json.dumps({"weights": weights, "embedders": embedders}))


if __name__ == "__main__":
    main()
