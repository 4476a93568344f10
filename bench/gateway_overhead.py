"""Time to first token and output tokens/s: through the gateway vs straight to its vLLM.

Run against a running `assistant serve`; --vllm is the child's address, which serve prints
as "vLLM ready at ...":

    python bench/gateway_overhead.py --gateway http://127.0.0.1:8000 \\
        --vllm http://127.0.0.1:PORT --model helpdesk-demo --concurrency 1 16

Writes bench/results/gateway_overhead.json and .png. Both paths get the same requests
(retrieval off, so the prompt is identical), interleaved round by round, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

PROMPTS = [
    "My VPN says TP-204 after a long holiday, what should I do?",
    "How do I release a print job at a FollowMe printer?",
    "My account is locked with FID-423 again, why does this keep happening?",
    "How can a visitor get on the guest Wi-Fi for a week?",
]


async def one_stream(
    client, url: str, model: str, prompt: str, max_tokens: int, gateway: bool
) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "min_tokens": max_tokens,
        "stream": True,
        "temperature": 0.7,
    }
    if gateway:
        body["retrieval"] = {"enabled": False}
    start = time.perf_counter()
    first, chunks = None, 0
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: {"):
                continue
            delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
            if delta:
                chunks += 1
                first = first or time.perf_counter()
    end = time.perf_counter()
    return {"ttft": first - start, "seconds": end - start, "tokens": chunks}


async def round_(url: str, model: str, concurrency: int, max_tokens: int, gateway: bool):
    import httpx

    async with httpx.AsyncClient(timeout=600) as client:
        start = time.perf_counter()
        results = await asyncio.gather(
            *[
                one_stream(client, url, model, PROMPTS[i % len(PROMPTS)], max_tokens, gateway)
                for i in range(concurrency)
            ],
            return_exceptions=True,
        )
        wall = time.perf_counter() - start
    ok = [r for r in results if isinstance(r, dict)]
    return {
        "ttft": [r["ttft"] for r in ok],
        "tokens": sum(r["tokens"] for r in ok),
        "wall": wall,
        "errors": [f"{type(r).__name__}: {r}" for r in results if not isinstance(r, dict)],
    }


def summarise(rounds: list[dict]) -> dict:
    ttft = [t for r in rounds for t in r["ttft"]]
    ttft.sort()
    return {
        "ttft_p50_ms": round(1000 * statistics.median(ttft), 1),
        "ttft_p95_ms": round(1000 * ttft[max(0, int(len(ttft) * 0.95) - 1)], 1),
        "output_tokens_per_s": round(
            sum(r["tokens"] for r in rounds) / sum(r["wall"] for r in rounds), 1
        ),
        "requests": len(ttft),
        "errors": [e for r in rounds for e in r["errors"]],
    }


async def main_async(args) -> dict:
    report = {
        "model": args.model,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "results": [],
    }
    for concurrency in args.concurrency:
        # warm both paths
        await round_(args.vllm, args.model, concurrency, 8, False)
        await round_(args.gateway, args.model, concurrency, 8, True)
        direct, via = [], []
        for _ in range(args.rounds):  # interleaved, so drift hits both equally
            direct.append(await round_(args.vllm, args.model, concurrency, args.max_tokens, False))
            via.append(await round_(args.gateway, args.model, concurrency, args.max_tokens, True))
        d, g = summarise(direct), summarise(via)
        row = {
            "concurrency": concurrency,
            "direct": d,
            "gateway": g,
            "ttft_p50_ratio": round(g["ttft_p50_ms"] / d["ttft_p50_ms"], 3),
            "throughput_ratio": round(g["output_tokens_per_s"] / d["output_tokens_per_s"], 3),
        }
        print(json.dumps(row))
        report["results"].append(row)
    return report


def plot(report: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    rows = report["results"]
    labels = [str(r["concurrency"]) for r in rows]
    x = range(len(rows))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in (
        (a, "ttft_p50_ms", "TTFT p50 (ms)"),
        (b, "output_tokens_per_s", "output tokens/s"),
    ):
        ax.bar([i - 0.2 for i in x], [r["direct"][key] for r in rows], 0.4, label="vLLM direct")
        ax.bar([i + 0.2 for i in x], [r["gateway"][key] for r in rows], 0.4, label="gateway")
        ax.set_xticks(list(x), labels)
        ax.set_xlabel("concurrent streams")
        ax.set_title(title)
    a.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gateway", required=True)
    parser.add_argument("--vllm", required=True)
    parser.add_argument("--model", default="helpdesk-demo")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    report = asyncio.run(main_async(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gateway_overhead.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / "gateway_overhead.png")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
