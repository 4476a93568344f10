"""LoRA training speed and effect on the demo model (or any --base), in one run.

    python bench/finetune_bench.py [--base .assistant/demo-model] [--steps 30]
        [--batch-sizes 1 4 8] [--ranks 8 16 32] [--out bench/results]

For each (batch size, LoRA rank): train tokens/s over --steps steps, and the held-out
loss before and after (data/eval/heldout.jsonl). Writes finetune_bench.json and .png;
the last line printed is the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", default=".assistant/demo-model")
    parser.add_argument("--data", type=Path, default=Path("data/transcripts"))
    parser.add_argument("--eval", type=Path, default=Path("data/eval/heldout.jsonl"))
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--ranks", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from finetune.prepare import prepare, read_prepared
    from finetune.train import TrainConfig, train_lora

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        prepare(args.data, tmp / "prepared", eval_fraction=0.0, log=lambda _: None)
        prepare(args.eval, tmp / "held", eval_fraction=0.0, log=lambda _: None)
        train = read_prepared(tmp / "prepared" / "train.jsonl")
        held = read_prepared(tmp / "held" / "train.jsonl")
        grid = [(b, 16) for b in args.batch_sizes] + [(4, r) for r in args.ranks if r != 16]
        for batch, rank in grid:
            config = TrainConfig(
                max_steps=args.steps,
                batch_size=batch,
                lora_r=rank,
                lora_alpha=2 * rank,
                learning_rate=args.learning_rate,
                max_length=1024,
                save_steps=10_000,
            )
            report = train_lora(
                args.base, train, held, tmp / f"b{batch}-r{rank}", config,
                progress=False, log=lambda _: None,
            )  # fmt: skip
            row = {
                "batch_size": batch,
                "lora_r": rank,
                "steps": report["steps"],
                "train_tokens_per_s": report["train_tokens_per_s"],
                "eval_loss_before": report["eval_loss_before"],
                "eval_loss_after": report["eval_loss_after"],
                "trainable_params": report["trainable_params"],
            }
            runs.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "base": args.base,
        "steps": args.steps,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(result, args.out / "finetune_bench.png")
    print(json.dumps(result))


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no PNG")
        return
    runs = result["runs"]
    labels = [f"b{r['batch_size']} r{r['lora_r']}" for r in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(labels, [r["train_tokens_per_s"] for r in runs], color="#2a7")
    left.set_ylabel("train tokens / s")
    left.set_title(f"LoRA training speed ({result['steps']} steps)")
    x = range(len(runs))
    right.bar([i - 0.2 for i in x], [r["eval_loss_before"] for r in runs], 0.4, label="before")
    right.bar([i + 0.2 for i in x], [r["eval_loss_after"] for r in runs], 0.4, label="after")
    right.set_xticks(list(x), labels)
    right.set_ylabel("held-out loss (assistant tokens)")
    right.set_title("Held-out loss before / after")
    right.legend()
    fig.suptitle(f"{result['base']} on {result['machine']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
