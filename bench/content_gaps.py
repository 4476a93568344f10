"""How long the content-gap report takes over 10,000 stored questions.

    python bench/content_gaps.py [--n 10000] [--days 7] [--all-gaps] [--out bench/results]

Builds a fresh HOME: data/docs indexed with the default embedder (all-MiniLM-L6-v2), then
--n synthetic questions recorded through the server's own stores (``AnswerLog.record``, so
each question is PII-scrubbed as it is stored; ``FeedbackStore``, ``EscalationStore``) and
spread over --days days:

- 80 % about the docs: a template over a heading of data/docs ("How do I <heading>?",
  "<heading> not working", ...) with an optional greeting or context; 85 % of those grounded
  (citing the heading's file), the rest not (a section the docs answer badly);
- 20 % about what the docs do not cover (expenses, parking, Salesforce, ...): not grounded;
- 5 % carry personal data (a name, an e-mail, a phone number); 4 % of answers are disliked;
  3 % of conversations are escalated.

Then ``AnalyticsService.report`` over those days, as ``GET /v1/admin/analytics`` runs it
(real embedder, real Chroma index for the nearest documents), three ways:

- cold: an empty vector cache, every distinct gap question embedded by the report (a
  HOME whose server never ran the warmer, e.g. the first report after an upgrade);
- warmed: as a running server has it: ``GapWarmer`` has embedded the not-grounded
  questions in the background (its time is reported apart, it is off the report's clock),
  the report embeds only disliked or escalated questions that were grounded;
- repeat: the same report again, everything cached (the admin tab reloading).

A sweep of the clustering threshold against the topics the questions were made from
(purity, topic recall) shows what ``analytics_gap_threshold`` trades.
--all-gaps makes every question a gap (none grounded): the worst case, 10,000 questions
to embed and cluster. Writes content_gaps.json (or content_gaps_all.json) and the PNG
under --out; the last line printed is the JSON. Timings, not assertions: the target is
under 30 s on the 2-core build machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sqlite3
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = [
    "How do I {h}?", "{h} not working", "Help with {h} please", "Where do I find {h}?",
    "I have a problem with {h}", "What is the process for {h}?", "{h}: what should I do?",
    "Can you explain {h}?", "question about {h}", "Is there a guide for {h}?",
    "{h} keeps failing since this morning", "who can help me with {h}",
]  # fmt: skip
OFF_TOPIC = [
    "submitting expense reports", "a parking permit for the garage", "the canteen menu",
    "my holiday allowance", "a Salesforce licence", "installing Adobe Acrobat Pro",
    "an invite to the Slack workspace", "setting up a Linux workstation",
    "printing A3 posters from an iPad", "two-factor login for GitHub", "a Zoom webinar licence",
    "creating a Jira project", "a Docker Desktop licence", "blocked VS Code extensions",
    "updating the firmware of the coffee machine", "booking a company car",
    "the payroll portal", "ordering business cards", "my pension statement",
    "the office plant watering schedule", "a Figma seat for the design team",
    "migrating my Gmail contacts", "renewing the SSL certificate of our website",
    "the Tableau dashboard refresh", "connecting a 3D printer",
]  # fmt: skip
PREFIXES = ["", "", "", "hi, ", "Hello! ", "quick question: ", "urgent: ", "sorry to bother, "]
SUFFIXES = ["", "", "", " on my laptop", " from home", " since the update", " on my Mac",
            " for a new colleague", " (Windows 11)"]  # fmt: skip
PERSONAL = [" I'm Priya Sharma, call me on +44 7700 900123.", " my email is j.doe@example.com",
            " - Marcus Brody, ext 4411"]  # fmt: skip


def headings(docs: Path) -> list[tuple[str, str]]:
    """(heading, file name) of every markdown and HTML heading in the docs."""
    found = []
    for path in sorted(docs.iterdir()):
        text = path.read_text("utf-8", "ignore") if path.suffix in {".md", ".html"} else ""
        titles = re.findall(r"^#{1,3} (.+)$", text, re.M)
        titles += re.findall(r"<h[1-3][^>]*>(.*?)</h[1-3]>", text)
        found += [(re.sub(r"<[^>]+>|\(.*?\)", "", t).strip(), path.name) for t in titles]
    return [(t, name) for t, name in found if len(t) > 3]


def questions(n: int, docs: Path, all_gaps: bool, rng: random.Random) -> list[dict]:
    known = headings(docs)
    made = []
    for _ in range(n):
        off = rng.random() < 0.2
        topic, source = (rng.choice(OFF_TOPIC), None) if off else rng.choice(known)
        text = rng.choice(TEMPLATES).format(h=topic[0].lower() + topic[1:] if off else topic)
        text = rng.choice(PREFIXES) + text + rng.choice(SUFFIXES)
        if rng.random() < 0.05:
            text += rng.choice(PERSONAL)
        grounded = not off and not all_gaps and rng.random() < 0.85
        made.append({"question": text, "source": source if grounded else None,
                     "grounded": grounded, "topic": topic})  # fmt: skip
    return made


def build_home(home: Path, n: int, days: int, all_gaps: bool, seed: int) -> dict:
    from assistant.chat.answer_log import AnswerLog
    from assistant.chat.feedback_store import FeedbackStore
    from assistant.escalation.store import EscalationStore

    rng = random.Random(seed)
    made = questions(n, ROOT / "data" / "docs", all_gaps, rng)
    log = AnswerLog(home / "answers.sqlite")
    feedback = FeedbackStore(home / "feedback.sqlite")
    outbox = EscalationStore(home / "escalations.sqlite")
    now = time.time()
    times, rated, escalated, disliked, escalated_rows = {}, [], [], [], []
    for i, q in enumerate(made):
        messages = [{"role": "user", "content": q["question"]}]
        sources = [{"rank": 1, "source": q["source"], "title": q["source"], "score": 0.6}]
        answer = f"answer {i}"
        conversation = log.record(
            id=f"chatcmpl-{i}", user=f"user{i % 300}", model="bench", messages=messages,
            answer=answer, sources=sources if q["grounded"] else [], grounded=q["grounded"],
        )  # fmt: skip
        times[f"chatcmpl-{i}"] = now - rng.random() * days * 86400
        if rng.random() < 0.04:
            row = feedback.add(model="bench", messages=messages, answer=answer, rating=-1,
                               user=f"user{i % 300}", completion_id=f"chatcmpl-{i}")  # fmt: skip
            rated.append((row, times[f"chatcmpl-{i}"] + 60))
            disliked.append(i)
        if rng.random() < 0.03:
            ticket = {"id": outbox.new_id(), "conversation_id": conversation,
                      "transcript": messages}  # fmt: skip
            outbox.add(ticket, f"user{i % 300}", ["webhook"])
            escalated.append((ticket["id"], times[f"chatcmpl-{i}"] + 120))
            escalated_rows.append(i)
    log.close(), feedback.close(), outbox.close()
    for path, sql, rows in (
        ("answers.sqlite", "UPDATE answers SET created_at = ? WHERE id = ?",
         [(t, i) for i, t in times.items()]),
        ("feedback.sqlite", "UPDATE feedback SET created_at = ? WHERE id = ?",
         [(t, i) for i, t in rated]),
        ("escalations.sqlite", "UPDATE escalations SET created_at = ? WHERE id = ?",
         [(t, i) for i, t in escalated]),
    ):  # fmt: skip
        with sqlite3.connect(home / path) as db:
            db.executemany(sql, rows)
    gaps = {i for i, q in enumerate(made) if not q["grounded"]} | {*disliked, *escalated_rows}
    topics = {i: made[i]["topic"] for i in gaps}
    stored = {"stored": n, "disliked": len(rated), "escalated": len(escalated)}
    return stored, topics


def timed_report(service, days: int) -> dict:
    from datetime import date, timedelta

    today = date.today()
    start = time.perf_counter()
    report = service.report((today - timedelta(days=days)).isoformat(), today.isoformat(), 20)
    seconds = time.perf_counter() - start
    gaps = report["content_gaps"]
    return {"seconds": round(seconds, 2), **{k: gaps["timings"].get(k) for k in
            ("embed_s", "cluster_s", "nearest_documents_s")},
            "questions": report["totals"]["questions"], "gap_questions": gaps["questions"],
            "distinct_gap_questions": gaps["distinct"], "clusters": gaps["clusters_total"],
            "top_clusters": [(c["size"], c["representative"], (c["nearest_document"] or {})
                              .get("source")) for c in gaps["clusters"][:8]]}  # fmt: skip


def quality(home: Path, topics: dict[int, str], service, thresholds) -> list[dict]:
    """How well clusters match the topics the questions were made from, per threshold:
    purity (share of questions in a cluster whose most common topic is theirs) and topic
    recall (per topic, the share of its questions in its largest cluster; mean)."""
    from collections import Counter, defaultdict

    from assistant.analytics.clustering import agglomerate

    with sqlite3.connect(home / "answers.sqlite") as db:
        rows = dict(db.execute("SELECT id, question FROM answers").fetchall())
    ids = sorted(topics)
    vectors = service.gaps.cache.embed(service.gaps.embedder,
                                       [rows[f"chatcmpl-{i}"] for i in ids])  # fmt: skip
    found = []
    for threshold in thresholds:
        labels = agglomerate(vectors, threshold)
        members, spread = defaultdict(Counter), defaultdict(Counter)
        for i, label in zip(ids, labels, strict=True):
            members[label][topics[i]] += 1
            spread[topics[i]][label] += 1
        purity = sum(c.most_common(1)[0][1] for c in members.values()) / len(ids)
        recall = sum(c.most_common(1)[0][1] / sum(c.values()) for c in spread.values())
        found.append({"threshold": threshold, "clusters": len(members), "topics": len(spread),
                      "purity": round(purity, 3),
                      "topic_recall": round(recall / len(spread), 3)})  # fmt: skip
    return found


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = ["cold", "warmed", "repeat"]
    parts = ["embed_s", "cluster_s", "nearest_documents_s"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    bottom = [0.0] * len(runs)
    for part in parts:
        values = [result[r][part] or 0.0 for r in runs]
        ax.bar(runs, values, bottom=bottom, label=part.removesuffix("_s").replace("_", " "))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    other = [result[r]["seconds"] - b for r, b in zip(runs, bottom, strict=True)]
    ax.bar(runs, other, bottom=bottom, label="read, count, scrub old rows", color="#bbb")
    for x, r in enumerate(runs):
        ax.text(x, result[r]["seconds"], f" {result[r]['seconds']:.1f} s", ha="center",
                va="bottom")  # fmt: skip
    ax.axhline(30, color="#d62", ls="--", label="target 30 s")
    ax.set_ylabel("seconds")
    ax.set_xticks(range(len(runs)), ["cold (nothing cached)", "server-warmed (usual)",
                                     "repeat (all cached)"])  # fmt: skip
    cold = result["cold"]
    ax.set_title(f"Content-gap report over {cold['questions']:,} stored questions "
                 f"({cold['gap_questions']:,} gaps, {cold['distinct_gap_questions']:,} distinct)"
                 f"\n{result['machine']}", fontsize=10)  # fmt: skip
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--all-gaps", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from assistant.analytics.gap_warmer import GapWarmer
    from assistant.analytics.service import make_analytics
    from assistant.knowledge.factories import index_into, make_embedder, make_retriever
    from assistant.settings import load_settings
    from retrieval.store import open_client

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        settings = load_settings(home=home)
        embedder = make_embedder(settings)
        client = open_client(settings.index_dir)
        index_into(settings, client, embedder, [ROOT / "data" / "docs"])
        start = time.perf_counter()
        stored, topics = build_home(home, args.n, args.days, args.all_gaps, args.seed)
        stored["store_s"] = round(time.perf_counter() - start, 1)
        index = make_retriever(settings, client, embedder)
        index.search("warm up", k=1)
        service = make_analytics(settings, embedder=embedder, index=index)
        result = {"stored": stored, "cold": timed_report(service, args.days)}
        result["repeat"] = timed_report(service, args.days)
        service.gaps.cache.close()  # as a running server has it: the warmer went first
        settings.analytics_cache_path.unlink()
        service = make_analytics(settings, embedder=embedder, index=index)
        warmer = GapWarmer.of(service, 30)
        start = time.perf_counter()
        while warmer.run_once():
            pass
        result["warmer_background_s"] = round(time.perf_counter() - start, 1)
        result["warmed"] = timed_report(service, args.days)
        result["threshold"] = settings.analytics_gap_threshold
        result["quality"] = quality(home, topics, service, (0.4, 0.45, 0.5, 0.55, 0.6, 0.7))
    load = os.getloadavg()[0]
    result["machine"] = f"{os.cpu_count()} CPU cores, load average {load:.1f} at the end"
    result["target_s"] = 30
    args.out.mkdir(parents=True, exist_ok=True)
    name = "content_gaps_all" if args.all_gaps else "content_gaps"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / f"{name}.png")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
