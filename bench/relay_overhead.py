"""What the gateway's relay costs by itself: SSE events per CPU-second, and added latency.

No model: a synthetic upstream (a small ASGI app in its own process) streams pre-built
OpenAI chat-completion events as fast as the reader takes them. `assistant serve
--llm-url` relays them (retrieval off, so only the relay works), and a load client in this
process reads streams at each concurrency, straight from the upstream and through the
gateway, interleaved, in one run:

    python bench/relay_overhead.py [--concurrency 1 16 64 256] [--events 256] [--rounds 3]

Reports, per concurrency: events relayed per CPU-second of the gateway process (its user +
system time from /proc while the gateway streams, and nothing else; the upstream sends as
fast as it is read), time to the first event direct and through the gateway; then, with
the upstream pacing its events (``--paced-ms``, a decoding pace), the delay of each event
from the moment the upstream sent it (a monotonic stamp in the event) to the moment the
client read it, p50 and p99, direct and through the gateway: their difference is what the
relay adds to each token.
Writes bench/results/relay_overhead.json and .png. The client reads bytes and splits
events; it never parses JSON, so its own cost stays low (on a 2-core machine the client
and the gateway still share the CPU: compare ratios within one run, not across machines).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL = "relay-bench"

UPSTREAM = r"""
import asyncio, json, sys, time
EVENTS = int(sys.argv[2])

def event(i):
    chunk = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0,
             "model": "relay-bench", "t": 0.0,
             "choices": [{"index": 0, "delta": {"content": f" tok{i}"}, "finish_reason": None}]}
    return f"data: {json.dumps(chunk)}\n\n".encode()

BODY = [event(i) for i in range(EVENTS)]
DONE = b"data: [DONE]\n\n"
MODELS = json.dumps({"object": "list", "data": [{"id": "relay-bench", "object": "model"}]}).encode()

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    raw = b""
    while True:
        message = await receive()
        raw += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/v1/models" or scope["path"] == "/health":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": MODELS})
        return
    interval = json.loads(raw).get("bench_interval_ms", 0) / 1000
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream")]})
    for piece in BODY:
        # the time the event was sent (CLOCK_MONOTONIC: the same clock in every process)
        stamped = piece.replace(b'"t": 0.0', b'"t": %.6f' % time.monotonic(), 1)
        await send({"type": "http.response.body", "body": stamped, "more_body": True})
        if interval:
            await asyncio.sleep(interval)
    await send({"type": "http.response.body", "body": DONE, "more_body": True})
    await send({"type": "http.response.body", "body": b""})

import uvicorn
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 300) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process (Linux /proc), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_STAMP = re.compile(rb'"t": ([0-9.]+)')


async def one_stream(client, url: str, gateway: bool, interval_ms: float) -> dict:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "relay"}], "stream": True,
            "bench_interval_ms": interval_ms}  # fmt: skip
    if gateway:
        body["retrieval"] = {"enabled": False}
    start = time.perf_counter()
    first, events, buffer, delays = None, 0, b"", []
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for chunk in resp.aiter_raw():
            now = time.monotonic()
            first = first or time.perf_counter()
            buffer += chunk
            parts = buffer.split(b"\n\n")
            buffer = parts.pop()
            for part in parts:
                stamp = _STAMP.search(part)
                if stamp:
                    events += 1
                    delays.append(now - float(stamp.group(1)))
    return {"first": first - start, "seconds": time.perf_counter() - start, "events": events,
            "delays": delays}  # fmt: skip


async def run_round(url: str, concurrency: int, gateway: bool, interval_ms: float = 0) -> list:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        return await asyncio.gather(
            *(one_stream(client, url, gateway, interval_ms) for _ in range(concurrency))
        )


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64, 256])
    parser.add_argument("--events", type=int, default=256, help="events per stream")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--min-streams", type=int, default=64, help="at least this many streams per concurrency"
    )
    parser.add_argument(
        "--paced-ms",
        type=float,
        default=20,
        help="then one round with the upstream sending an event every N ms per stream "
        "(20: 50 tokens/s, a GPU's pace per stream), for the added latency per event; 0: skip",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    up_port, gw_port = free_port(), free_port()
    script = work / "upstream.py"
    script.write_text(UPSTREAM)
    upstream = subprocess.Popen([sys.executable, str(script), str(up_port), str(args.events)])
    env = {**os.environ, "ASSISTANT_HOME": str(work), "ASSISTANT_RETRIEVAL_ENABLED": "false",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    gateway = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", "--llm-url", f"http://127.0.0.1:{up_port}",
         "--port", str(gw_port)],
        cwd=ROOT, env=env, stdout=(work / "serve.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    direct, through = f"http://127.0.0.1:{up_port}", f"http://127.0.0.1:{gw_port}"
    results = []
    try:
        wait_http(direct + "/health")
        wait_http(through + "/health")
        asyncio.run(run_round(through, 4, True))  # warm up: first requests build caches
        for concurrency in args.concurrency:
            row = {"concurrency": concurrency, "direct": [], "gateway": [], "cpu_s": 0.0}
            # enough streams at low concurrency for /proc's 10 ms CPU ticks to resolve
            for _ in range(max(args.rounds, math.ceil(args.min_streams / concurrency))):
                row["direct"] += asyncio.run(run_round(direct, concurrency, False))
                before = cpu_seconds(gateway.pid)
                row["gateway"] += asyncio.run(run_round(through, concurrency, True))
                row["cpu_s"] += cpu_seconds(gateway.pid) - before
            if args.paced_ms:  # events at a decoding pace: what the relay adds to each
                row["paced_direct"] = asyncio.run(
                    run_round(direct, concurrency, False, args.paced_ms)
                )
                row["paced_gateway"] = asyncio.run(
                    run_round(through, concurrency, True, args.paced_ms)
                )
            results.append(summarise(row, args.events))
            print(json.dumps(results[-1]), flush=True)
    finally:
        for proc in (gateway, upstream):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    report = {"events_per_stream": args.events, "rounds": args.rounds,
              "min_streams": args.min_streams, "paced_ms": args.paced_ms, "results": results,
              "cpus": os.cpu_count()}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "relay_overhead.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out / "relay_overhead.png")
    print(json.dumps(report))


def summarise(row: dict, events: int) -> dict:
    direct, gateway = row["direct"], row["gateway"]
    relayed = sum(r["events"] for r in gateway)
    out = {
        "concurrency": row["concurrency"],
        "streams": len(gateway),
        "events_relayed": relayed,
        "complete_streams": sum(r["events"] == events for r in gateway),
        "gateway_cpu_s": round(row["cpu_s"], 3),
        "events_per_cpu_s": round(relayed / row["cpu_s"]) if row["cpu_s"] else None,
        "first_event_ms_p50": {
            "direct": round(statistics.median(r["first"] for r in direct) * 1e3, 2),
            "gateway": round(statistics.median(r["first"] for r in gateway) * 1e3, 2),
        },
        "stream_s_p50": {
            "direct": round(statistics.median(r["seconds"] for r in direct), 4),
            "gateway": round(statistics.median(r["seconds"] for r in gateway), 4),
        },
    }
    if "paced_gateway" in row:
        delays = {
            key: [d for r in row["paced_" + key] for d in r["delays"]]
            for key in ("direct", "gateway")
        }
        out["paced_event_delay_ms"] = {
            key: {q: round(pct(values, p) * 1e3, 3) for q, p in (("p50", 0.5), ("p99", 0.99))}
            for key, values in delays.items()
        }
        out["paced_added_ms"] = {
            q: round(
                out["paced_event_delay_ms"]["gateway"][q]
                - out["paced_event_delay_ms"]["direct"][q],
                3,
            )
            for q in ("p50", "p99")
        }
    return out


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = report["results"]
    xs = [r["concurrency"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(xs, [r["events_per_cpu_s"] for r in rows], marker="o", label="gateway")
    left.axhline(50_000, color="grey", linestyle="--", label="target 50,000")
    left.set(xscale="log", xlabel="concurrent streams", ylabel="events per gateway CPU-second",
             title="Relay cost (synthetic upstream)")  # fmt: skip
    left.legend()
    paced = [r for r in rows if "paced_event_delay_ms" in r]
    if paced:
        px = [r["concurrency"] for r in paced]
        for key, label in (("direct", "direct"), ("gateway", "through the gateway")):
            for q, style in (("p50", "-"), ("p99", ":")):
                right.plot(px, [r["paced_event_delay_ms"][key][q] for r in paced], style,
                           marker="o", label=f"{label} {q}")  # fmt: skip
        title = f"Delay per event, one every {report['paced_ms']:g} ms per stream"
        right.set(xscale="log", yscale="log", xlabel="concurrent streams",
                  ylabel="event sent -> client read (ms)", title=title)  # fmt: skip
    else:
        for key, label in (("direct", "direct"), ("gateway", "through the gateway")):
            right.plot(xs, [r["first_event_ms_p50"][key] for r in rows], marker="o", label=label)
        right.set(xscale="log", yscale="log", xlabel="concurrent streams",
                  ylabel="first event p50 (ms)", title="Time to first event")  # fmt: skip
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
