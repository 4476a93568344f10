"""vLLM's own serving benchmark (`vllm bench serve`), through the gateway and straight to
the vLLM behind it, in one run.

    assistant bench serve --model .assistant/demo-model [--concurrency 1 4 16 64]
        [--request-rate 2 8] [--workloads random helpdesk] [--speculative off ngram]
    assistant bench serve --gateway-url http://127.0.0.1:8000 --vllm-url http://127.0.0.1:PORT

With --model it indexes --docs into a temporary home, starts `assistant serve` on it (once
per --speculative value) and stops it at the end; with --gateway-url and --vllm-url it uses
running servers (`assistant serve` prints its vLLM's address as "vLLM ready at ...").

Every sweep point (a --concurrency limit, or a Poisson --request-rate with no limit) runs
vLLM's benchmark (vllm.benchmarks.serve, in this process) twice, once per path, the order
alternating from point to point, vLLM's prefix cache emptied before each (where vLLM runs
with VLLM_SERVER_DEV_MODE=1, as the started server does), greedy sampling. Workloads:
- random: vLLM's random prompts (--input-len tokens, --output-len tokens, EOS ignored); the
  gateway gets "retrieval": {"enabled": false}, so both paths decode the same prompts;
- helpdesk: the questions of --questions, through the gateway with "retrieval": {"enabled":
  true} (vLLM's --extra-body); the answers end where the model ends them (at most
  --output-len tokens). Straight to vLLM goes, to /v1/completions, the very prompt vLLM
  rendered for the gateway's request (asked once per question with return_prompt_text),
  so both paths decode the same tokens and the gateway's share is retrieval plus relay.

Reports TTFT, TPOT, ITL and end-to-end latency p50/p95/p99, output tokens/s, goodput under
--goodput SLOs, and vLLM's speculative-decoding acceptance (from its /metrics), per path,
with the ratio gateway/direct per point. Writes NAME.json and NAME.png under --out; the
last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = ("ttft", "tpot", "itl", "e2el")
SPECULATIVE_HELP = "with --model: ASSISTANT_SPECULATIVE values to compare, one server each"
RATIOS = ("ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "itl_p50_ms", "output_tok_s", "goodput")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="assistant bench serve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a = p.add_argument
    a("--model", help="start `assistant serve --model MODEL` for the run (folder or hub id)")
    a("--gateway-url", help="a running gateway, instead of --model")
    a("--vllm-url", help="the vLLM behind --gateway-url")
    key = os.environ.get("ASSISTANT_API_KEYS", "").split(",")[0].strip() or None
    a("--api-key", default=key, help="Bearer key for the gateway [first of ASSISTANT_API_KEYS]")
    a("--tokenizer", help="tokenizer for vLLM's benchmark [the model vLLM serves]")
    a("--workloads", nargs="+", default=["random", "helpdesk"], choices=["random", "helpdesk"])
    a("--concurrency", nargs="*", type=int, default=[1, 4, 16, 64], help="concurrency limits")
    a(
        "--request-rate",
        nargs="*",
        type=float,
        default=[2.0, 8.0],
        help="Poisson requests/s (none: no rate points)",
    )
    a("--num-prompts", type=int, help="requests per point [max(16, 4 x concurrency or rate)]")
    a("--input-len", type=int, default=512, help="random prompts: tokens [512]")
    a("--output-len", type=int, default=128, help="most tokens per answer [128]")
    a("--goodput", nargs="+", default=["ttft:1000", "tpot:100"], help="SLOs as KEY:ms")
    a("--questions", type=Path, default=ROOT / "data/eval/retrieval.jsonl")
    a("--docs", type=Path, default=ROOT / "data/docs", help="docs indexed for --model")
    a("--store", type=Path, help="with --model: serve this index instead of indexing --docs")
    a("--speculative", nargs="+", default=["off"], help=SPECULATIVE_HELP)
    a("--start-timeout", type=float, default=900, help="seconds for `assistant serve` to start")
    a("--out", type=Path, default=ROOT / "bench/results")
    a("--name", default="serve_bench", help="file name of the results [serve_bench]")
    a("--seed", type=int, default=0)
    a("--json", action="store_true", help="accepted: the last line printed is always the JSON")
    args = p.parse_args(argv)
    if bool(args.gateway_url) != bool(args.vllm_url) or bool(args.model) == bool(args.vllm_url):
        p.error("give --model, or both --gateway-url and --vllm-url")
    if args.vllm_url and args.speculative != ["off"]:
        p.error("--speculative starts servers: it needs --model")
    for name in ("model", "store"):  # `assistant serve` runs in the repository root
        value = getattr(args, name)
        if value and Path(value).exists():
            setattr(args, name, str(Path(value).resolve()))
    return args


# --- servers -----------------------------------------------------------------------------


def get_json(url: str, body: dict | None = None, key: str | None = None, timeout=600) -> dict:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.load(resp)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def started_server(args, home: Path, speculative: str):
    """`assistant serve` on --model with ASSISTANT_SPECULATIVE; yields (gateway, vLLM) URLs."""
    port, engine_port = free_port(), free_port()
    env = {
        **os.environ,
        "ASSISTANT_HOME": str(home),
        "ASSISTANT_ENGINE_PORT": str(engine_port),
        "ASSISTANT_SPECULATIVE": speculative,
        "VLLM_SERVER_DEV_MODE": "1",
    }
    if args.store:
        env["ASSISTANT_STORE_DIR"] = str(args.store)
    log = home / f"serve-{len(list(home.glob('serve-*.log')))}.log"
    cmd = [sys.executable, "-m", "assistant", "serve", "--model", args.model, "--port", str(port)]
    print(
        f"starting {' '.join(cmd[2:])} with ASSISTANT_SPECULATIVE={speculative} (log: {log})",
        file=sys.stderr,
    )
    with log.open("wb") as out:  # the child keeps its own copy
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
        )
    gateway = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + args.start_timeout
        while True:
            if proc.poll() is not None:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                raise SystemExit("assistant serve did not start: " + " | ".join(tail))
            try:
                get_json(gateway + "/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"assistant serve not ready in {args.start_timeout} s"
                    ) from None
                time.sleep(2)
        yield gateway, f"http://127.0.0.1:{engine_port}"
    finally:
        stop_server(proc)


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM as a service manager would; then make sure no vLLM process outlives it."""
    try:
        import psutil

        family = psutil.Process(proc.pid).children(recursive=True)
    except Exception:  # psutil missing, or already gone
        family = []
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    for child in family:
        if child.is_running():
            child.kill()


def index_docs(docs: Path, home: Path) -> None:
    env = {**os.environ, "ASSISTANT_HOME": str(home)}
    cmd = [sys.executable, "-m", "assistant", "index", str(docs), "--json"]
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"indexing {docs} failed: {done.stderr.strip()[-500:]}")
    print(f"indexed {docs}: {done.stdout.strip().splitlines()[-1]}", file=sys.stderr)


def served_model(vllm: str) -> tuple[str, str]:
    """The base model's name and its folder or hub id (for the tokenizer), from vLLM."""
    models = get_json(vllm + "/v1/models")["data"]
    base = next((m for m in models if not m.get("parent")), models[0])
    root = base.get("root") or base["id"]
    if not Path(root).is_absolute() and (ROOT / root).exists():
        root = str(ROOT / root)
    return base["id"], root


# --- workloads ---------------------------------------------------------------------------


def helpdesk_files(args, gateway: str, model: str, tmp: Path) -> tuple[Path, Path, int]:
    """One JSONL of questions for the gateway, one of the prompts vLLM rendered for them."""
    questions = []
    for line in args.questions.read_text(encoding="utf-8").splitlines():
        if line.strip():
            questions.append(json.loads(line)["question"])
    asked, rendered, grounded = tmp / "helpdesk-gateway.jsonl", tmp / "helpdesk-direct.jsonl", 0
    with asked.open("w") as fa, rendered.open("w") as fr:
        for q in questions:
            body = {
                "model": model,
                "max_tokens": 1,
                "return_prompt_text": True,
                "messages": [{"role": "user", "content": [{"type": "text", "text": q}]}],
                "retrieval": {"enabled": True},
            }
            answer = get_json(gateway + "/v1/chat/completions", body, args.api_key)
            if not answer.get("prompt_text"):
                raise SystemExit("vLLM returned no prompt_text (needs vLLM >= 0.11)")
            grounded += bool(answer.get("grounded"))
            fa.write(json.dumps({"prompt": q}) + "\n")
            fr.write(json.dumps({"prompt": answer["prompt_text"]}) + "\n")
    print(f"{len(questions)} help-desk questions, {grounded} grounded", file=sys.stderr)
    return asked, rendered, grounded


def flags(**options) -> list[str]:
    """``flags(max_concurrency=4, disable_tqdm=True)`` -> ``--max-concurrency 4 --disable-tqdm``."""
    argv = []
    for name, value in options.items():
        argv.append("--" + name.replace("_", "-"))
        if isinstance(value, list):
            argv += [str(v) for v in value]
        elif isinstance(value, dict):
            argv.append(json.dumps(value))
        elif value is not True:
            argv.append(str(value))
    return argv


def vllm_argv(args, w: dict, leg: str, load: tuple[str, float], n: int, tag: str) -> list[str]:
    """Arguments of vLLM's benchmark for one path at one sweep point."""
    argv = flags(
        base_url=w[leg], model=w["model"], served_model_name=w["model"],
        tokenizer=w["tokenizer"], num_prompts=n, seed=args.seed, temperature=0,
        percentile_metrics=",".join(METRICS), metric_percentiles="50,95,99",
        goodput=args.goodput, disable_tqdm=True, save_detailed=True, num_warmups=1,
        request_id_prefix=tag,
    )  # fmt: skip
    if load[0] == "concurrency":
        argv += flags(max_concurrency=int(load[1]))
    else:
        argv += flags(request_rate=load[1])
    if leg == "gateway" and args.api_key:
        argv += flags(header=[f"Authorization=Bearer {args.api_key}"])
    chat = flags(backend="openai-chat", endpoint="/v1/chat/completions")
    if w["name"] == "random":
        argv += chat + flags(
            dataset_name="random", random_input_len=args.input_len,
            random_output_len=args.output_len,
        )  # fmt: skip
        if leg == "gateway":  # the same prompts as direct: no grounding
            argv += flags(extra_body={"retrieval": {"enabled": False}})
        return argv
    argv += flags(dataset_name="custom", skip_chat_template=True, custom_output_len=args.output_len)
    if leg == "gateway":
        extra = {"retrieval": {"enabled": True}}
        return argv + chat + flags(dataset_path=w["asked"], extra_body=extra)
    completions = flags(backend="openai", endpoint="/v1/completions")
    # the prompt as rendered, special tokens included: no BOS added a second time
    extra = {"add_special_tokens": False}
    return argv + completions + flags(dataset_path=w["rendered"], extra_body=extra)


def run_vllm_bench(argv: list[str]) -> dict:
    """vLLM's `vllm bench serve`, in this process; its report goes to stderr."""
    import asyncio

    from vllm.benchmarks.serve import add_cli_args, main_async
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser()
    add_cli_args(parser)
    with redirect_stdout(sys.stderr):
        return asyncio.run(main_async(parser.parse_args(argv)))


def spec_counters(vllm: str) -> tuple[int, int, int] | None:
    """vLLM's speculative-decoding counters: drafts, draft tokens, accepted tokens."""
    import asyncio

    import aiohttp
    from vllm.benchmarks.serve import fetch_spec_decode_metrics

    async def fetch():
        async with aiohttp.ClientSession() as session:
            return await fetch_spec_decode_metrics(vllm, session)

    m = asyncio.run(fetch())
    return None if m is None else (m.num_drafts, m.num_draft_tokens, m.num_accepted_tokens)


def reset_prefix_cache(vllm: str) -> bool:
    try:
        req = urllib.request.Request(vllm + "/reset_prefix_cache", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status == 200
    except OSError:
        return False


def summarise(r: dict, before, after) -> dict:
    """The numbers kept from vLLM's result for one path at one point."""
    s = {
        "completed": r["completed"],
        "failed": r["failed"],
        "duration_s": r["duration"],
        "input_tokens": r["total_input_tokens"],
        "output_tokens": r["total_output_tokens"],
        "output_tok_s": r["output_throughput"],
        "request_per_s": r["request_throughput"],
        "goodput": r.get("request_goodput"),
    }
    for m in METRICS:
        s[f"{m}_mean_ms"] = r.get(f"mean_{m}_ms")
        for p in (50, 95, 99):
            s[f"{m}_p{p}_ms"] = r.get(f"p{p}_{m}_ms")
    errors = [e for e in r.get("errors", []) if e]
    if errors:
        s["first_error"] = errors[0].strip().splitlines()[-1][:300]
    if before is not None and after is not None:
        drafts, tokens, accepted = (b - a for a, b in zip(before, after, strict=True))
        if tokens > 0:
            s["spec_acceptance_rate"] = accepted / tokens
            s["spec_acceptance_length"] = 1 + accepted / max(drafts, 1)
    return s


def sweep(args, w: dict, speculative: str, log) -> list[dict]:
    loads = [("concurrency", c) for c in args.concurrency]
    loads += [("request_rate", r) for r in args.request_rate]
    for leg in ("direct", "gateway"):  # warm both paths (first requests, batch shapes); dropped
        run_vllm_bench(vllm_argv(args, w, leg, ("concurrency", 4), 8, f"warm-{time.time_ns()}-"))
    rows = []
    for i, load in enumerate(loads):
        n = args.num_prompts or max(16, int(4 * load[1]))
        legs = ("direct", "gateway") if i % 2 == 0 else ("gateway", "direct")
        row = {
            "speculative": speculative,
            "workload": w["name"],
            "load": load[0],
            "value": load[1],
            "num_prompts": n,
            "order": list(legs),
        }
        for leg in legs:
            row["prefix_cache_reset"] = reset_prefix_cache(w["vllm"])
            before = spec_counters(w["vllm"])
            tag = f"{w['name']}-{i}-{leg}-{time.time_ns()}-"
            result = run_vllm_bench(vllm_argv(args, w, leg, load, n, tag))
            row[leg] = summarise(result, before, spec_counters(w["vllm"]))
        d, g = row["direct"], row["gateway"]
        row["ratio"] = {k: round(g[k] / d[k], 3) if g.get(k) and d.get(k) else None for k in RATIOS}
        log(row)
        rows.append(row)
    return rows


def bench_servers(args, report: dict, urls: tuple[str, str], speculative: str, tmp: Path, log):
    gateway, vllm = urls
    model, root = served_model(vllm)
    report.update(model=model, tokenizer=args.tokenizer or root)
    w = {"gateway": gateway, "direct": vllm, "vllm": vllm, "model": model}
    w["tokenizer"] = report["tokenizer"]
    for name in args.workloads:
        w["name"] = name
        if name == "helpdesk":
            w["asked"], w["rendered"], grounded = helpdesk_files(args, gateway, model, tmp)
            report["helpdesk_grounded"] = grounded
        report["points"] += sweep(args, w, speculative, log)


# --- report ------------------------------------------------------------------------------


def plot(report: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG", file=sys.stderr)
        return
    rows = report["points"]
    workloads = list(dict.fromkeys(r["workload"] for r in rows))
    panels = (
        ("ttft_p50_ms", "TTFT p50 (ms)"),
        ("tpot_p50_ms", "TPOT p50 (ms)"),
        ("output_tok_s", "output tokens/s"),
    )
    fig, axes = plt.subplots(len(workloads), 3, figsize=(13, 3.6 * len(workloads)), squeeze=False)
    for axrow, workload in zip(axes, workloads, strict=True):
        for ax, (key, title) in zip(axrow, panels, strict=True):
            for n, spec in enumerate(dict.fromkeys(r["speculative"] for r in rows)):
                for leg, marker in (("direct", "o"), ("gateway", "s")):
                    name = leg + (f" (spec {spec[:20]})" if len(report["speculative"]) > 1 else "")
                    color = f"C{2 * n + (leg == 'gateway')}"
                    for load in ("concurrency", "request_rate"):  # one line each, same axis
                        sel = [r for r in rows if (r["workload"], r["speculative"], r["load"])
                               == (workload, spec, load)]  # fmt: skip
                        x = [("c" if load == "concurrency" else "rate ") + f"{r['value']:g}"
                             for r in sel]  # fmt: skip
                        ax.plot(x, [r[leg][key] for r in sel], marker=marker, color=color,
                                linestyle="--" if leg == "direct" else "-",
                                label=name if load == "concurrency" else None)  # fmt: skip
            ax.set_title(f"{workload}: {title}")
            ax.set_xlabel("concurrency limit / Poisson rate (req/s)")
            if key == "ttft_p50_ms":
                ax.set_yscale("log")
        axrow[0].legend(fontsize=8)
    fig.suptitle(f"vLLM's serving benchmark, gateway vs direct: {report['model']}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    args = parse_args(argv)
    # A service manager's SIGTERM (or `kill`) unwinds like Ctrl-C: the servers started stop.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def log(row: dict) -> None:
        d, g, r = row["direct"], row["gateway"], row["ratio"]
        print(
            f"[{row['speculative']}] {row['workload']} {row['load']}={row['value']:g}: "
            f"TTFT p50 {d['ttft_p50_ms']:.1f} -> {g['ttft_p50_ms']:.1f} ms, TPOT p50 "
            f"{d['tpot_p50_ms']:.1f} -> {g['tpot_p50_ms']:.1f} ms, {d['output_tok_s']:.1f} "
            f"-> {g['output_tok_s']:.1f} tok/s (x{r['output_tok_s']}), failed "
            f"{d['failed']}/{g['failed']}",
            file=sys.stderr,
        )

    report = {
        "command": "assistant bench serve " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "speculative": args.speculative,
        "workloads": args.workloads,
        "input_len": args.input_len,
        "output_len": args.output_len,
        "goodput_slo_ms": args.goodput,
        "questions": str(args.questions),
        "points": [],
    }
    with tempfile.TemporaryDirectory(prefix="serve-bench-") as tmp:
        tmp = Path(tmp)
        if args.vllm_url:
            urls = args.gateway_url.rstrip("/"), args.vllm_url.rstrip("/")
            bench_servers(args, report, urls, "as served", tmp, log)
        else:
            if not args.store:
                index_docs(args.docs, tmp)
            for speculative in args.speculative:
                with started_server(args, tmp, speculative) as urls:
                    bench_servers(args, report, urls, speculative, tmp, log)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    plot(report, args.out / f"{args.name}.png")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
