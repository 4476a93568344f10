"""What HyDE costs: time to first answer token with and without it, in one interleaved run.

    python bench/hyde_latency.py --url http://127.0.0.1:8000 [--questions FILE] [--n 20]
        [--max-tokens 64] [--key KEY] [--out bench/results]

Against a running `assistant serve`: each question is asked twice in turn, once with
``"retrieval": {"hyde": false}`` and once with ``{"hyde": true}`` (the per-request override
of the retrieval_hyde setting), streamed, with the official openai client. HyDE asks the
served model for a passage before the search, so its cost is the time to the first answer
token; the answer itself is unchanged in length. Writes hyde_latency.json and .png; the
last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def ask(client, model: str, question: str, hyde: bool, max_tokens: int) -> tuple[float, float]:
    """(seconds to the first content token, seconds to the end) of one streamed answer."""
    start = time.perf_counter()
    first = None
    stream = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": question}],
        max_tokens=max_tokens,
        stream=True,
        extra_body={"retrieval": {"hyde": hyde}},
    )
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    return (first if first is not None else total), total


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--questions", type=Path, default=Path("data/eval/retrieval.jsonl"))
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--key", default="none")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()

    from openai import OpenAI

    client = OpenAI(base_url=args.url.rstrip("/") + "/v1", api_key=args.key)
    model = client.models.list().data[0].id
    lines = args.questions.read_text().splitlines()
    questions = [json.loads(line)["question"] for line in lines if line.strip()][: args.n]
    ask(client, model, questions[0], True, 4)  # warm both paths
    ask(client, model, questions[0], False, 4)
    runs: dict[str, dict[str, list[float]]] = {
        "off": {"ttft": [], "total": []},
        "hyde": {"ttft": [], "total": []},
    }
    for i, question in enumerate(questions):
        order = (False, True) if i % 2 == 0 else (True, False)  # interleaved, alternating
        for hyde in order:
            ttft, total = ask(client, model, question, hyde, args.max_tokens)
            runs["hyde" if hyde else "off"]["ttft"].append(ttft)
            runs["hyde" if hyde else "off"]["total"].append(total)
    summary = {
        name: {
            f"{kind}_{q}_ms": round(pct(values, p) * 1000, 1)
            for kind, values in data.items()
            for q, p in (("p50", 0.5), ("p95", 0.95))
        }
        for name, data in runs.items()
    }
    summary["ttft_p50_ratio"] = round(
        statistics.median(runs["hyde"]["ttft"]) / statistics.median(runs["off"]["ttft"]), 2
    )
    summary["added_ttft_p50_ms"] = round(
        (statistics.median(runs["hyde"]["ttft"]) - statistics.median(runs["off"]["ttft"])) * 1000,
        1,
    )
    report = {"url": args.url, "model": model, "questions": len(questions), **summary}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "hyde_latency.json").write_text(json.dumps(report, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.6))
        labels = ["TTFT p50", "TTFT p95", "total p50", "total p95"]
        keys = ["ttft_p50_ms", "ttft_p95_ms", "total_p50_ms", "total_p95_ms"]
        for j, name in enumerate(("off", "hyde")):
            ax.bar([x + j * 0.4 for x in range(4)], [summary[name][k] for k in keys], 0.4,
                   label="HyDE" if name == "hyde" else "without")  # fmt: skip
        ax.set_xticks([x + 0.2 for x in range(4)], labels)
        ax.set_ylabel("ms")
        ax.set_title(f"HyDE cost, {model}, {len(questions)} questions", fontsize=9)
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.out / "hyde_latency.png", dpi=110)
    except ImportError:
        print("matplotlib not installed: no PNG")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
