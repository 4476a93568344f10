"""Retrieval quality on public manuals nobody here wrote, next to the naive baseline.

    python bench/retrieval_quality.py [--set test|dev] [--corpus NAME]... [--k 5]
        [--store-dir .assistant/eval-stores] [--out bench/results]

For each corpus of data/eval/public/corpora.json whose Debian packages are installed (the
others are listed as skipped, with the packages to install; a corpus with a ``prepare``
command, e.g. Mallard pages converted to HTML, is prepared first), and for the sample company:
links the corpus's files into a folder, runs `assistant eval-retrieval --compare --json`
on its questions (``<corpus>.jsonl``, or ``<corpus>.dev.jsonl`` with --set dev) and collects
recall@1, recall@5 and MRR of the naive baseline and of the dense, keyword and hybrid modes,
with the target the issue sets: halve the naive baseline's misses. Settings come from the
environment as for any `assistant` command (e.g. ASSISTANT_RETRIEVAL_KEYWORD_WEIGHT=0.3).

Writes retrieval_quality[-dev].json and .png under --out; the last line printed is the JSON.
The stores are kept under --store-dir, so a second run only re-embeds what changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ROOT / "data" / "eval" / "public"
ROWS = ("naive", "dense", "keyword", "hybrid")


def link_corpus(spec: dict, into: Path) -> int:
    """Symlink the corpus's files matching its ``include`` glob into ``into``; their count."""
    root = Path(spec["root"])
    count = 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and PurePosixPath(rel.as_posix()).match(spec["include"]):
            target = into / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
            count += 1
    return count


def installed(package: str) -> bool:
    done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                          capture_output=True, text=True, check=False)  # fmt: skip
    return done.returncode == 0 and "install ok installed" in done.stdout


def ready(spec: dict) -> str | None:
    """Why the corpus cannot be measured here (``None``: it can); runs its ``prepare``
    command when its packages are installed and its folder is not there yet."""
    if Path(spec["root"]).is_dir():
        return None
    packages = spec["package"].split()
    if spec.get("prepare") and shutil.which("dpkg-query") and all(map(installed, packages)):
        print(f"preparing: {spec['prepare']}", flush=True)
        done = subprocess.run(spec["prepare"], shell=True, capture_output=True, text=True)
        if done.returncode != 0 or not Path(spec["root"]).is_dir():
            return f"prepare failed: {done.stderr.strip()[-300:] or 'no folder'}"
        return None
    return f"not installed: apt-get install {spec['package']}"


def run_eval(docs: Path, questions: Path, store: Path, k: int) -> dict:
    command = [
        sys.executable, "-m", "assistant", "eval-retrieval", "--docs", str(docs),
        "--questions", str(questions), "--k", str(k), "--compare", "--json",
        "--store", str(store),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"eval-retrieval failed on {docs}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def target(naive: float) -> float:
    """The issue's bar: half of the naive baseline's misses gone."""
    return round(naive + (1 - naive) / 2, 4)


def plot(report: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    corpora = list(report["corpora"])
    fig, axes = plt.subplots(1, len(corpora), figsize=(3.6 * len(corpora), 4), squeeze=False)
    colors = {"naive": "#999", "dense": "#4a90d9", "keyword": "#e0a030", "hybrid": "#2a7"}
    for ax, name in zip(axes[0], corpora, strict=True):
        rows = report["corpora"][name]["modes"]
        for i, metric in enumerate(("recall@1", "recall@5", "mrr")):
            for j, row in enumerate(ROWS):
                ax.bar(i + (j - 1.5) * 0.2, rows[row][metric], 0.2, color=colors[row],
                       label=row if i == 0 else None)  # fmt: skip
            naive = rows["naive"][metric]
            if metric != "recall@1":
                ax.hlines(target(naive), i - 0.4, i + 0.4, colors="red", linestyles="dashed",
                          label="target" if metric == "recall@5" else None)  # fmt: skip
        ax.set_xticks(range(3), ["recall@1", f"recall@{report['k']}", "MRR"])
        ax.set_ylim(0, 1.05)
        info = report["corpora"][name]
        ax.set_title(f"{name}\n{info['questions']} questions, {info['chunks']} chunks", fontsize=9)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.suptitle(f"Retrieval quality ({report['set']} questions), top {report['k']}", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--set", choices=["test", "dev"], default="test")
    parser.add_argument("--corpus", action="append", help="only these corpora (repeatable)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--store-dir", type=Path, default=ROOT / ".assistant" / "eval-stores")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--no-sample", action="store_true", help="skip the sample company")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    specs = json.loads((PUBLIC / "corpora.json").read_text())
    suffix = ".dev.jsonl" if args.set == "dev" else ".jsonl"
    report: dict = {"set": args.set, "k": args.k, "corpora": {}, "skipped": {}}
    mine = ("ASSISTANT_RETRIEVAL", "ASSISTANT_EMBEDDING")
    settings = {k: v for k, v in os.environ.items() if k.startswith(mine)}
    report["settings"] = settings
    with tempfile.TemporaryDirectory(prefix="retrieval-quality-") as tmp:
        for name, spec in specs.items():
            if args.corpus and name not in args.corpus:
                continue
            reason = ready(spec)
            if reason is not None:
                report["skipped"][name] = reason
                print(f"skipping {name}: {report['skipped'][name]}", flush=True)
                continue
            docs = Path(tmp) / name
            files = link_corpus(spec, docs)
            print(f"{name}: {files} files", flush=True)
            result = run_eval(docs, PUBLIC / f"{name}{suffix}", args.store_dir / name, args.k)
            report["corpora"][name] = {
                "title": spec["title"], "files": files, "questions": result["n"],
                "chunks": result["chunks"], "modes": result["modes"],
            }  # fmt: skip
            print(json.dumps({name: result["modes"]}), flush=True)
        if not args.no_sample and (not args.corpus or "sample" in args.corpus):
            questions = ROOT / "data" / "eval" / "retrieval.jsonl"
            result = run_eval(ROOT / "data" / "docs", questions, args.store_dir / "sample", args.k)
            report["corpora"]["sample (written here)"] = {
                "title": "Fennmoor Logistics sample docs (written with the code: flatters us)",
                "files": None, "questions": result["n"], "chunks": result["chunks"],
                "modes": result["modes"],
            }  # fmt: skip
    for info in report["corpora"].values():
        naive, hybrid = info["modes"]["naive"], info["modes"]["hybrid"]
        info["targets"] = {
            "recall@5": target(naive["recall@5"]),
            "mrr": target(naive["mrr"]),
            "met": hybrid["recall@5"] >= target(naive["recall@5"])
            and hybrid["mrr"] >= target(naive["mrr"]),
            "hybrid_ge_dense": hybrid["recall@5"] >= info["modes"]["dense"]["recall@5"]
            and hybrid["mrr"] >= info["modes"]["dense"]["mrr"],
        }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "retrieval_quality" + ("-dev" if args.set == "dev" else "")
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    if report["corpora"]:
        plot(report, args.out / f"{stem}.png")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
