"""An analytics report (``AnalyticsService.report``) as CSV tables, plot data and files.

``tables`` and ``to_csv`` back ``GET /v1/admin/analytics?format=csv&table=...`` and the CSV
files of ``assistant report``; ``figures`` is what every plot shows, as plain lists (the
admin tab draws them from the JSON report, ``assistant.analytics.plots`` draws them as
PNG); ``write_report`` writes the whole set into a folder.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from assistant.analytics.plots import write_pngs

TABLES = ("summary", "daily", "top_sources", "content_gaps")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    """Text as a spreadsheet shows it, never as a formula (questions are user input)."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return "" if value is None else value


def tables(report: dict) -> dict[str, list[list]]:
    """Each table as rows, the header first."""
    totals = report["totals"]
    summary = [["metric", "value"], ["from", report["from"]], ["to", report["to"]],
               ["timezone", report["timezone"]]]  # fmt: skip
    summary += [[name, value] for name, value in totals.items()]
    daily_columns = [c for c in report["daily"][0] if c != "date"] if report["daily"] else []
    daily = [["date", *daily_columns]]
    daily += [[row["date"], *(row[c] for c in daily_columns)] for row in report["daily"]]
    sources = [["rank", "source", "title", "answers"]]
    sources += [[n, s["source"], s["title"], s["answers"]]
                for n, s in enumerate(report["top_sources"], 1)]  # fmt: skip
    gaps = [["rank", "size", "distinct", "not_grounded", "disliked", "escalated",
             "representative", "action", "nearest_source", "nearest_title", "nearest_score",
             "examples"]]  # fmt: skip
    for c in report["content_gaps"]["clusters"]:
        near = c.get("nearest_document") or {}
        gaps.append([c["rank"], c["size"], c["distinct"], c["not_grounded"], c["disliked"],
                     c["escalated"], c["representative"], c.get("action"), near.get("source"),
                     near.get("title"), near.get("score"), " | ".join(c["examples"])])  # fmt: skip
    return {"summary": summary, "daily": daily, "top_sources": sources, "content_gaps": gaps}


def to_csv(rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return buffer.getvalue()


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def figures(report: dict) -> dict[str, dict]:
    """The data of each plot: ``kind`` (``bars`` over days, stacked, or ``ranking``), a
    title, and ``x`` with one list per series, or ``labels`` with ``values``."""
    days = [row["date"] for row in report["daily"]]

    def series(*names: str) -> dict[str, list[int]]:
        return {name.replace("_", " "): [row[name] for row in report["daily"]] for name in names}

    totals = report["totals"]
    share = totals["grounded_share"]
    clusters = report["content_gaps"]["clusters"]
    return {
        "questions_per_day": {
            "kind": "bars",
            "title": "Questions per day"
            + (f" ({share:.0%} grounded in the docs)" if share is not None else ""),
            "x": days,
            "series": series("grounded", "not_grounded", "retrieval_off"),
        },
        "feedback_per_day": {
            "kind": "bars",
            "title": f"Ratings per day ({totals['liked']} up, {totals['disliked']} down)",
            "x": days,
            "series": series("liked", "disliked"),
        },
        "escalations_per_day": {
            "kind": "bars",
            "title": "Tickets asked for per day"
            + (
                f" (deflection {totals['deflection_rate']:.0%})"
                if totals["deflection_rate"] is not None
                else ""
            ),
            "x": days,
            "series": series("escalations"),
        },
        "top_sources": {
            "kind": "ranking",
            "title": "Documents cited by most answers",
            "labels": [_short(s["title"]) for s in report["top_sources"]],
            "values": [s["answers"] for s in report["top_sources"]],
        },
        "content_gaps": {
            "kind": "ranking",
            "title": "Content gaps: questions the docs fail, by cluster",
            "labels": [_short(c["representative"]) for c in clusters],
            "values": [c["size"] for c in clusters],
        },
    }


def write_report(report: dict, out: Path, log: Callable[[str], None] = print) -> list[Path]:
    """report.json, one CSV per table and one PNG per figure (when matplotlib is there)."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.json"]
    written[0].write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    for name, rows in tables(report).items():
        path = out / f"{name}.csv"
        path.write_text(to_csv(rows), encoding="utf-8")
        written.append(path)
    pngs = write_pngs(figures(report), out)
    if pngs is None:
        log("matplotlib is not installed: CSV only, no PNG plots (pip install matplotlib)")
    else:
        written += pngs
    return written
