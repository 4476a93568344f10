"""Build a model with random weights from an architecture config, for speed benchmarks.

    python bench/random_model.py qwen2.5-1.5b .assistant/qwen2.5-1.5b-random
    python bench/random_model.py my/config.json OUT [--tokenizer DIR] [--dtype bfloat16]

CONFIG is a config.json (any architecture transformers knows, with its ``model_type``) or
the built-in name ``qwen2.5-1.5b``: the architecture of Qwen2.5-1.5B(-Instruct), 1.54 B
parameters. Nothing is downloaded: the weights are transformers' random initialisation
(``AutoModelForCausalLM.from_config``), saved in --dtype with safetensors, so vLLM loads
and runs the folder exactly as it would the real model, at the real model's speed. Its text
is noise: use it for tokens/s and latency, never for answers or acceptance rates.

The tokenizer is --tokenizer's (a model folder, e.g. .assistant/demo-model or a real
Qwen2.5 tokenizer) or, by default, a byte-level BPE with a ChatML template trained here in
seconds on --texts (data/docs and data/transcripts). Its vocabulary must fit the config:
more tokens than the config's ``vocab_size`` is refused (the model could be asked for ids
it has no embedding for); fewer is padded up to ``vocab_size`` with plain filler tokens
("[12345]") that decode to text, because a random model emits every id of its vocabulary
and an id the tokenizer does not know decodes to nothing.

Writes config.json, generation_config.json, model.safetensors, the tokenizer and
random-model.json (what was built, from what). Prints one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MARKER = "random-model.json"

# Qwen2.5-1.5B-Instruct's config.json (the numbers that set its speed are the first eight:
# 1,536 hidden, 28 layers, 12 query heads and 2 KV heads of 128, 8,960 MLP, 151,936 vocab,
# tied embeddings, QKV bias which Qwen2 always has). Token ids are set from the tokenizer.
QWEN2_5_1_5B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "hidden_size": 1536,
    "num_hidden_layers": 28,
    "num_attention_heads": 12,
    "num_key_value_heads": 2,
    "intermediate_size": 8960,
    "vocab_size": 151936,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "use_sliding_window": False,
    "sliding_window": 32768,
    "max_window_layers": 21,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
    "use_cache": True,
}
BUILTIN = {"qwen2.5-1.5b": QWEN2_5_1_5B}
TEXT_SUFFIXES = {".md", ".txt", ".jsonl", ".csv", ".log"}
DTYPES = ("bfloat16", "float16", "float32")


class BuildError(Exception):
    """A problem with the inputs, said in one sentence."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("config", help=f"a config.json, or one of: {', '.join(BUILTIN)}")
    parser.add_argument("output", type=Path, help="folder to write")
    parser.add_argument("--tokenizer", type=Path, help="copy this folder's tokenizer")
    parser.add_argument(
        "--texts",
        type=Path,
        nargs="+",
        default=[ROOT / "data" / "docs", ROOT / "data" / "transcripts"],
        help="without --tokenizer: files or folders to train the tokenizer on",
    )
    parser.add_argument(
        "--tokenizer-vocab",
        type=int,
        default=4096,
        help="without --tokenizer: BPE vocabulary to train (at most the config's) [4096]",
    )
    parser.add_argument("--dtype", choices=DTYPES, default="bfloat16")
    parser.add_argument("--device", default="cpu", help="where to initialise: cpu or cuda")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def load_config_dict(config: str) -> dict:
    if config in BUILTIN:
        return dict(BUILTIN[config])
    path = Path(config)
    if path.is_dir():
        path = path / "config.json"
    if not path.is_file():
        raise BuildError(f"'{config}' is neither a config.json nor one of {', '.join(BUILTIN)}")
    data = json.loads(path.read_text(encoding="utf-8"))
    if "model_type" not in data:
        raise BuildError(f"{path} has no model_type, so transformers cannot build it")
    return data


def read_texts(paths: list[Path]) -> list[str]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES)
        elif path.is_file():
            files.append(path)
    texts = [f.read_text(encoding="utf-8", errors="replace") for f in files]
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise BuildError(f"no text to train the tokenizer on in {', '.join(map(str, paths))}")
    return texts


def make_tokenizer(args: argparse.Namespace, vocab_size: int):
    from transformers import AutoTokenizer

    if args.tokenizer is not None:
        if not args.tokenizer.is_dir():
            raise BuildError(f"--tokenizer '{args.tokenizer}' is not a folder")
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        source = str(args.tokenizer)
    else:
        from finetune.demo_model import train_tokenizer

        size = min(args.tokenizer_vocab, vocab_size)
        tokenizer = train_tokenizer(read_texts(args.texts), size)
        source = f"byte-level BPE trained here ({size} tokens)"
    if len(tokenizer) > vocab_size:
        raise BuildError(
            f"the tokenizer has {len(tokenizer)} tokens but the config's vocab_size is "
            f"{vocab_size}: the tokenizer's vocabulary must fit the config"
        )
    if tokenizer.chat_template is None:
        from finetune.demo_model import CHAT_TEMPLATE

        tokenizer.chat_template = CHAT_TEMPLATE  # the gateway sends chat requests
    return tokenizer, source


def pad_tokenizer_file(path: Path, vocab_size: int) -> int:
    """Give every id below ``vocab_size`` a token in tokenizer.json; how many were added.

    Fillers go into the model's own vocabulary (no merge makes them, so encoding never
    produces them), not into the added tokens, which would slow every encode down.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    vocab = data.get("model", {}).get("vocab")
    if not isinstance(vocab, dict):
        raise BuildError(
            f"cannot pad a {data.get('model', {}).get('type')} tokenizer to the config's "
            "vocab_size; give a BPE or WordPiece tokenizer with --tokenizer"
        )
    used = set(vocab.values()) | {t["id"] for t in data.get("added_tokens", [])}
    taken = set(vocab) | {t["content"] for t in data.get("added_tokens", [])}
    added = 0
    for token_id in range(vocab_size):
        if token_id in used:
            continue
        token = f"[{token_id}]"
        if token in taken:
            raise BuildError(f"the tokenizer already has a token '{token}' at another id")
        vocab[token] = token_id
        added += 1
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return added


def build(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    data = load_config_dict(args.config)
    vocab_size = int(data["vocab_size"])
    tokenizer, tokenizer_source = make_tokenizer(args, vocab_size)

    bos = tokenizer.bos_token_id
    eos = tokenizer.eos_token_id
    data.update(
        bos_token_id=bos if bos is not None else eos,
        eos_token_id=eos,
        pad_token_id=tokenizer.pad_token_id,
    )
    model_type = data.pop("model_type")
    data.pop("architectures", None)
    for key in ("transformers_version", "torch_dtype", "dtype"):  # the weights set it
        data.pop(key, None)
    config = AutoConfig.for_model(model_type, **data)

    dtype = getattr(torch, args.dtype)
    torch.manual_seed(args.seed)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    params = sum(p.numel() for p in model.parameters())
    ends = [i for i in (eos, tokenizer.convert_tokens_to_ids("<|endoftext|>")) if i is not None]
    model.generation_config.eos_token_id = sorted(set(ends)) or None

    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).unlink(missing_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    del model
    tokenizer.save_pretrained(out)
    padded = pad_tokenizer_file(out / "tokenizer.json", vocab_size)
    tokens = len(AutoTokenizer.from_pretrained(out))
    if tokens != vocab_size:
        raise BuildError(f"the saved tokenizer has {tokens} tokens, not {vocab_size}")

    report = {
        "label": "RANDOM WEIGHTS - for speed measurements only; its text is noise",
        "config": args.config,
        "model_type": model_type,
        "parameters": params,
        "dtype": args.dtype,
        "vocab_size": vocab_size,
        "tokenizer": tokenizer_source,
        "tokenizer_tokens": len(tokenizer),
        "filler_tokens": padded,
        "seed": args.seed,
        "output": str(out),
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / MARKER).write_text(json.dumps(report, indent=2), encoding="utf-8")
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = build(args)
    except BuildError as exc:
        print(f"random_model.py: {exc}", file=sys.stderr)
        return 2
    print(
        f"built {report['parameters'] / 1e6:,.1f} M parameters ({report['dtype']}, random) "
        f"in {report['output']}; tokenizer: {report['tokenizer']}, "
        f"{report['filler_tokens']} filler tokens up to {report['vocab_size']}"
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
