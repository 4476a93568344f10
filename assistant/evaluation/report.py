"""Results of `assistant eval-answers`: the summary table, the files of --out, --compare."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from assistant.errors import UserError

# What each number of the summary means, in the order the table shows them.
MEANINGS = {
    "gold_source_cited": "answers citing [n] a source whose file is a gold file",
    "faithfulness": "answer sentences supported by some returned source (mean per answer)",
    "citation_validity": "[n] citations naming a returned source that supports the sentence",
    "answer_relevance": "answers that address the question (declining ones excluded)",
    "abstention_correct": "off-topic: grounded false + says it does not know; else answers",
    "abstention_offtopic": "the same, on the questions with gold []",
    "abstention_answerable": "the same, on the questions with gold files",
    "key_fact_stated": "answers stating the question's key fact (questions with one: n_key_facts)",
    "empty_answers": "answers that state nothing: only citations, or too short to check",
    "latency_p50_ms": "time per answer, median (ms)",
    "latency_p95_ms": "time per answer, 95th percentile (ms)",
    "tokens_per_answer": "completion tokens per answer (mean)",
}
SHARES = {"gold_source_cited", "faithfulness", "citation_validity", "answer_relevance",
          "abstention_correct", "abstention_offtopic", "abstention_answerable",
          "key_fact_stated", "empty_answers"}  # fmt: skip
FILES = ("answers.jsonl", "summary.json", "summary.md", "summary.png")


def _value(key: str, value) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.3f}" if key in SHARES else f"{value:.1f}"


def table(summary: dict) -> str:
    """The summary as a Markdown table (plain enough to read in a terminal)."""
    lines = [
        f"{summary['n']} questions ({summary.get('n_offtopic', 0)} off-topic), "
        f"{summary['errors']} failed; support judged by {summary['method']}",
        "",
        "| metric | value | meaning |",
        "| --- | ---: | --- |",
    ]
    for key, meaning in MEANINGS.items():
        lines.append(f"| {key} | {_value(key, summary.get(key))} | {meaning} |")
    return "\n".join(lines)


def failures(records: list[dict]) -> list[str]:
    return [f"{r['file']}:{r['line']}: {r['error']}" for r in records if r.get("error")]


def write_run(out: Path, records: list[dict], summary: dict, log: Callable[[str], None]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with (out / "answers.jsonl").open("w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(table(summary) + "\n", encoding="utf-8")
    if not plot(records, summary, out / "summary.png"):
        log("matplotlib is not installed: no summary.png (pip install matplotlib)")
    log(f"wrote {', '.join(FILES)} to {out}")


def plot(records: list[dict], summary: dict, path: Path) -> bool:
    """The five shares as bars, and the latency of each answer as a histogram."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    names = ["gold_source_cited", "faithfulness", "citation_validity", "answer_relevance",
             "abstention_correct"]  # fmt: skip
    values = [summary.get(n) for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(range(len(names)), [v or 0 for v in values], color="#2a7")
    for x, v in enumerate(values):
        left.text(x, (v or 0) + 0.02, _value(names[x], v), ha="center", fontsize=8)
    left.set_xticks(range(len(names)), [n.replace("_", "\n") for n in names], fontsize=8)
    left.set_ylim(0, 1.1)
    left.set_title(f"answer quality ({summary['answered']} answers, {summary['method']})")
    latencies = [r["latency_ms"] for r in records if r.get("latency_ms") is not None]
    right.hist(latencies or [0], bins=20, color="#27a")
    right.set_xlabel("ms per answer")
    right.set_title(f"latency p50 {_value('', summary.get('latency_p50_ms'))} ms, "
                    f"p95 {_value('', summary.get('latency_p95_ms'))} ms")  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def read_summary(path: Path) -> dict:
    """A summary.json, or the --out folder holding one."""
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read a summary from '{path}': {exc}") from None
    if not isinstance(data, dict) or "faithfulness" not in data:
        raise UserError(f"'{path}' is not an eval-answers summary")
    return data


def compare(a: dict, b: dict) -> dict:
    """Every number of both runs, with B minus A."""
    rows = {}
    for key in [*MEANINGS, "n", "errors"]:
        va, vb = a.get(key), b.get(key)
        delta = round(vb - va, 4) if isinstance(va, int | float) and isinstance(vb, int | float) \
            else None  # fmt: skip
        rows[key] = {"a": va, "b": vb, "delta": delta}
    return rows


def compare_table(rows: dict, a_name: str, b_name: str, a: dict, b: dict) -> str:
    lines = [
        f"A: {a_name} ({a.get('model', '?')}, {a.get('method', '?')})",
        f"B: {b_name} ({b.get('model', '?')}, {b.get('method', '?')})",
        "",
        f"{'metric':<24}{'A':>10}{'B':>10}{'B - A':>10}",
    ]
    for key, row in rows.items():
        delta = row["delta"]
        shown = "n/a" if delta is None else f"{delta:+.3f}" if key in SHARES else f"{delta:+.1f}"
        lines.append(f"{key:<24}{_value(key, row['a']):>10}{_value(key, row['b']):>10}"
                     f"{shown:>10}")  # fmt: skip
    if a.get("method") != b.get("method"):
        lines.append("\nnote: the runs judged support differently; faithfulness and citation "
                     "validity are not comparable")  # fmt: skip
    return "\n".join(lines)
