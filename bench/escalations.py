"""Escalations under a ticket system that is fast, slow, or down for a minute.

    python bench/escalations.py [--n 1000] [--outage-s 60] [--clients 1,8] [--out bench/results]

Starts the real server (``assistant serve`` in a fresh HOME, with ``--llm-url`` pointing at
nothing: tickets never touch the model) with the webhook connector aimed at a ticket system
on loopback (tests/ticket_receiver.py: it creates one ticket per ``Idempotency-Key``, like
Zendesk), the delivery settings left at their defaults (first retry after 5 s, doubling).
Escalations are posted with ``messages`` through the HTTP API, one client at a time, then
by several at once (--clients: each number of clients in turn, in each phase):

1. *up*: --warm escalations while the ticket system answers at once;
2. *down*: the ticket system stops (connections refused); --n escalations are posted; it
   stays down until --outage-s seconds have passed since it stopped, then comes back on the
   same port. The run waits for the outbox to drain (``/metrics``) and checks that every
   one of the --n escalations got exactly one ticket: its ``GET /v1/escalations/{id}`` says
   ``sent`` with the reference of the ticket the system created for its key, no ticket was
   created twice, and none is missing; deliveries repeated with the same key (the system
   answered 200 for a repeat) are counted apart;
3. *slow*: the ticket system takes --slow-s seconds per ticket; --warm escalations.

For each phase the latency of ``POST /v1/escalations`` (p50, p95, p99, max), measured by
the client: the target is under 20 ms at p95 whatever the ticket system does. Writes
escalations.json and escalations.png under --out; the last line printed is the JSON.
Timings, not assertions: run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
ADMIN_KEY = "bench-admin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, receiver_port: int) -> subprocess.Popen:
    env = {
        **os.environ,
        "ASSISTANT_HOME": str(home),
        "ASSISTANT_ADMIN_KEY": ADMIN_KEY,
        "ASSISTANT_ESCALATION_WEBHOOK_URL": f"http://127.0.0.1:{receiver_port}/tickets",
        "ASSISTANT_DOCS_DIR": str(home / "docs"),
        "HF_HUB_OFFLINE": "1",
    }
    log = open(home / "server.log", "w")  # noqa: SIM115 - the server's whole life
    command = [
        sys.executable,
        "-m",
        "assistant",
        "serve",
        "--port",
        str(port),
        "--llm-url",
        "http://127.0.0.1:9/v1",
    ]
    return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_ready(http, proc: subprocess.Popen, home: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit("the server stopped:\n" + (home / "server.log").read_text()[-3000:])
        try:
            if http.get("/metrics").status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.5)
    sys.exit("the server did not come up in time: see " + str(home / "server.log"))


def post_many(http_factory, n: int, clients: int, tag: str) -> tuple[list[float], list[str]]:
    """``n`` escalations from ``clients`` threads (one keep-alive client each): the latency
    of each in ms, and the ids, in order of creation."""
    local = threading.local()
    latencies: list[float] = [0.0] * n
    ids: list[str] = [""] * n

    def one(i: int) -> None:
        if not hasattr(local, "http"):
            local.http = http_factory()
        http = local.http
        body = {
            "messages": [
                {"role": "user", "content": f"{tag} {i}: my laptop will not boot"},
                {"role": "assistant", "content": "I do not know."},
            ],
            "summary": f"{tag} {i}",
            "priority": "normal",
        }
        start = time.perf_counter()
        resp = http.post("/v1/escalations", json=body)
        latencies[i] = (time.perf_counter() - start) * 1000
        if resp.status_code != 201:
            raise RuntimeError(f"POST /v1/escalations: {resp.status_code} {resp.text[:200]}")
        ids[i] = resp.json()["id"]

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, range(n)))
    return latencies, ids


def summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)

    return {
        "n": len(ordered),
        "p50_ms": at(0.50),
        "p95_ms": at(0.95),
        "p99_ms": at(0.99),
        "max_ms": round(ordered[-1], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
    }


def states(http) -> dict[str, int]:
    text = http.get("/metrics").text
    found = re.findall(r'assistant_escalations\{state="(\w+)"\} ([0-9.e+]+)', text)
    return {state: int(float(value)) for state, value in found}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="escalations during the outage")
    parser.add_argument("--outage-s", type=float, default=60.0, help="how long it is down")
    parser.add_argument("--warm", type=int, default=300, help="escalations in the up/slow phases")
    parser.add_argument("--slow-s", type=float, default=3.0, help="seconds per slow ticket")
    parser.add_argument("--clients", default="1,8", help="clients posting at once, per run")
    parser.add_argument("--drain-timeout-s", type=float, default=900.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.clients.split(",")]

    def phase(name: str, n: int, tag: str) -> list[str]:
        """``n`` escalations shared by the levels of ``--clients``; their latencies kept
        as ``accept_<name>`` per level; the ids."""
        ids = []
        for i, level in enumerate(levels):
            share = n // len(levels) + (i < n % len(levels))
            latencies, made = post_many(client, share, level, f"{tag}-c{level}")
            result.setdefault(f"accept_{name}", {})[f"{level} clients"] = summary(latencies)
            ids += made
        return ids

    import httpx

    from tests.ticket_receiver import Receiver

    home = Path(tempfile.mkdtemp(prefix="bench-escalations-"))
    (home / "docs").mkdir()
    port, receiver_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"

    def client() -> httpx.Client:
        return httpx.Client(base_url=base, timeout=60)

    admin = httpx.Client(
        base_url=base, timeout=60, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    )
    receiver = Receiver(port=receiver_port)
    proc = start_server(home, port, receiver_port)
    result: dict = {
        "n": args.n,
        "outage_s": args.outage_s,
        "clients": args.clients,
        "retry": "defaults: first retry after 5 s, doubling to 600 s, jitter",
    }
    try:
        wait_ready(admin, proc, home)
        print("server up; phase 1: the ticket system answers at once", flush=True)
        phase("up", args.warm, "up")
        deadline = time.monotonic() + 120
        while states(admin).get("sent", 0) < args.warm and time.monotonic() < deadline:
            time.sleep(0.2)

        print(f"phase 2: the ticket system goes down; {args.n} escalations", flush=True)
        receiver.close()
        down_at = time.monotonic()
        ids = phase("down", args.n, "outage")
        posted_s = time.monotonic() - down_at
        timeline = []  # (seconds since it went down, sent, queued)

        def sample() -> dict:
            now = states(admin)
            timeline.append(
                (round(time.monotonic() - down_at, 2), now.get("sent", 0), now.get("queued", 0))
            )
            return now

        while time.monotonic() - down_at < args.outage_s:
            sample()
            time.sleep(min(0.5, max(0.0, args.outage_s - (time.monotonic() - down_at))))
        receiver = Receiver(port=receiver_port)
        back_at = time.monotonic()
        print(f"the ticket system is back after {back_at - down_at:.0f} s; draining", flush=True)
        while time.monotonic() - back_at < args.drain_timeout_s:
            if sample().get("queued", 0) == 0:
                break
            time.sleep(0.5)
        drained_s = time.monotonic() - back_at

        # exactly once: each escalation 'sent' with the one ticket made for its key
        tickets = dict(receiver.tickets)  # Idempotency-Key -> ticket, created once per key
        keys: dict[str, set] = {}  # escalation -> the keys its deliveries carried
        repeats = 0
        seen = set()
        for request in receiver.requests:
            key = request["headers"].get("Idempotency-Key")
            keys.setdefault(request["headers"].get("X-Assistant-Escalation"), set()).add(key)
            repeats += key in seen
            seen.add(key)
        missing, wrong, not_sent = [], [], []
        asker = client()
        for esc in ids:
            item = asker.get(f"/v1/escalations/{esc}").json()
            made = [tickets[k] for k in keys.get(esc, ()) if k in tickets]
            if item.get("state") != "sent":
                not_sent.append((esc, item.get("state"), item.get("reason")))
            elif len(made) != 1:
                missing.append((esc, made))
            elif item.get("reference") != made[0]:
                wrong.append((esc, item.get("reference"), made[0]))
        result["outage"] = {
            "posted_in_s": round(posted_s, 2),
            "down_for_s": round(back_at - down_at, 2),
            "drained_after_back_s": round(drained_s, 2),
            "delivered": args.n - len(not_sent),
            "tickets_created": len(tickets),
            "not_sent": not_sent[:10],
            "not_one_ticket": missing[:10],
            "reference_mismatch": wrong[:10],
            "repeat_deliveries_deduplicated": repeats,
            # the ticket system came back empty: every ticket it holds is one of the n
            "exactly_once": not (not_sent or missing or wrong) and len(tickets) == args.n,
            "timeline": timeline,
        }

        print(f"phase 3: the ticket system takes {args.slow_s} s per ticket", flush=True)
        receiver.answer = lambda request: receiver.create(request, delay=args.slow_s)
        phase("slow", args.warm, "slow")
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        receiver.close()
    result["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "escalations.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "escalations.png")
    print(
        json.dumps(
            {k: v for k, v in result.items() if k != "outage"}
            | {"outage": {k: v for k, v in result["outage"].items() if k != "timeline"}}
        )
    )
    return result


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    phases = [("up", "accept_up"), ("down", "accept_down"), ("slow", "accept_slow")]
    names = [f"ticket system\n{label}" for label, _ in phases]
    levels = list(result["accept_up"])
    width = 0.8 / (2 * len(levels))
    colours = iter(["#27a", "#8bd", "#d62", "#f9a", "#2a7", "#9d9"])
    for j, level in enumerate(levels):
        for k, q in enumerate(("p50_ms", "p95_ms")):
            offset = (2 * j + k - len(levels) + 0.5) * width
            values = [result[key][level][q] for _, key in phases]
            left.bar(
                [i + offset for i in range(len(phases))],
                values,
                width,
                label=f"{q[:3]}, {level}",
                color=next(colours),
            )
    left.axhline(20, color="#999", linestyle="--", label="target p95 20 ms")
    left.set_xticks(list(range(len(phases))), names)
    left.set_ylabel("POST /v1/escalations, ms")
    left.set_title("Accepting an escalation (client side)")
    left.legend(fontsize=8)
    outage = result["outage"]
    times = [t for t, _, _ in outage["timeline"]]
    right.plot(times, [s for _, s, _ in outage["timeline"]], label="sent (all phases)")
    right.plot(times, [q for _, _, q in outage["timeline"]], label="queued")
    right.axvspan(0, outage["down_for_s"], color="#eee", label="ticket system down")
    right.set_xlabel("seconds since the ticket system went down")
    right.set_title(
        f"{result['n']} escalations, outage of {outage['down_for_s']:.0f} s: "
        f"{'exactly once' if outage['exactly_once'] else 'NOT exactly once'}"
    )
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
