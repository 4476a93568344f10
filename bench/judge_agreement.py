"""How often each support check agrees with a person: the built-in embedder+overlap check of
`assistant eval-answers`, and an LLM judge served behind any OpenAI-compatible URL.

    python bench/judge_agreement.py --sample bench/results/judge/sample.jsonl \
        --labels bench/results/judge/labels.jsonl \
        [--judge-url http://127.0.0.1:8000 --judge-model NAME [--gateway]] \
        [--out bench/results/judge]

The sample comes from `bench/judge_sample.py`; the labels were written by hand before
either check ran on it (``supported`` / ``unsupported`` / ``no_claim``, and which passage
alone supports the sentence). A sentence counts as supported by a check when the check
accepts it against at least one of its passages, as `eval-answers` scores faithfulness.
``no_claim`` sentences are left out of the agreement (neither check is asked to find claims).
Writes agreement.json and agreement.png under --out; the last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.evaluation import metrics as am  # noqa: E402
from assistant.evaluation.harness import judge  # noqa: E402


def evidence(text: str) -> am.Evidence:
    """The passage as the sample wrote it (``Evidence.text``: heading line, then body)."""
    heading, _, body = text.partition("\n")
    return am.Evidence(heading, body)


def agreement(truth: list[bool], said: list[bool]) -> dict:
    """Accuracy, Cohen's kappa, and precision / recall of "supported"."""
    n = len(truth)
    tp = sum(t and s for t, s in zip(truth, said, strict=True))
    tn = sum(not t and not s for t, s in zip(truth, said, strict=True))
    fp = sum(not t and s for t, s in zip(truth, said, strict=True))
    fn = n - tp - tn - fp
    observed = (tp + tn) / n
    p_yes = ((tp + fn) / n) * ((tp + fp) / n)
    p_no = ((tn + fp) / n) * ((tn + fn) / n)
    expected = p_yes + p_no
    kappa = (observed - expected) / (1 - expected) if expected < 1 else 1.0
    return {
        "n": n,
        "accuracy": round(observed, 3),
        "kappa": round(kappa, 3),
        "precision_supported": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall_supported": round(tp / (tp + fn), 3) if tp + fn else None,
        "said_supported": round((tp + fp) / n, 3),
        "confusion": {"supported_said_yes": tp, "supported_said_no": fn,
                      "unsupported_said_yes": fp, "unsupported_said_no": tn},
    }  # fmt: skip


def verdicts(support, rows: list[dict]) -> tuple[list[bool], float]:
    """Per sentence: supported by at least one passage; and seconds per sentence."""
    said, start = [], time.perf_counter()
    for number, row in enumerate(rows, start=1):
        found = support.check([row["sentence"]], [evidence(p) for p in row["passages"]])[0]
        said.append(any(v.ok for v in found))
        print(f"[{number}/{len(rows)}] {support.method}: {said[-1]}", file=sys.stderr)
    return said, (time.perf_counter() - start) / max(len(rows), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--judge-url")
    parser.add_argument("--judge-model")
    parser.add_argument(
        "--gateway",
        action="store_true",
        help="--judge-url is an `assistant serve`: its retrieval is turned off",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "judge")
    args = parser.parse_args()
    sample = [json.loads(line) for line in args.sample.read_text().splitlines() if line.strip()]
    lines = [json.loads(line) for line in args.labels.read_text().splitlines() if line.strip()]
    labels = {row["id"]: row for row in lines}
    missing = [r["id"] for r in sample if r["id"] not in labels]
    if missing:
        raise SystemExit(f"no label for {len(missing)} sentences, e.g. {missing[0]}")
    rows = [r for r in sample if labels[r["id"]]["label"] != "no_claim"]
    truth = [labels[r["id"]]["label"] == "supported" for r in rows]

    from retrieval.embeddings import SentenceTransformerEmbedder

    minilm = SentenceTransformerEmbedder(am.EMBEDDER_MODEL)
    checks = {"embedder+overlap": am.EmbedderSupport(minilm)}
    if args.judge_url:
        ask = judge(args.judge_url, args.judge_model, None, 300.0, args.gateway)
        checks[f"judge:{args.judge_model}"] = am.JudgeSupport(ask, args.judge_model)
    result = {"sentences": len(sample), "no_claim": len(sample) - len(rows),
              "labelled_supported": sum(truth), "checks": {}}  # fmt: skip
    for name, support in checks.items():
        said, seconds = verdicts(support, rows)
        timing = {"seconds_per_sentence": round(seconds, 2)}
        result["checks"][name] = agreement(truth, said) | timing
        per_run = {}
        for row, t, s in zip(rows, truth, said, strict=True):
            per_run.setdefault(row["run"], ([], []))
            per_run[row["run"]][0].append(t)
            per_run[row["run"]][1].append(s)
        result["checks"][name]["by_run"] = {run: agreement(t, s)["accuracy"]
                                            for run, (t, s) in per_run.items()}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    name = "agreement" + (f"-{args.judge_model}" if args.judge_model else "")
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / f"{name}.png")
    print(json.dumps(result))


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["checks"])
    metrics = ("accuracy", "kappa", "precision_supported", "recall_supported")
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [result["checks"][name][m] or 0 for m in metrics]
        ax.bar([j + i * width for j in range(len(metrics))], values, width, label=name)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(metrics))], metrics)
    ax.set_ylim(0, 1)
    ax.set_title(f"Support checks against hand labels ({result['sentences'] - result['no_claim']} "
                 "sentences)")  # fmt: skip
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
