"""What the vLLM child is started with: ``EngineConfig`` from the settings, and the
speculative decoding set-up (checked before vLLM starts)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import UserError


@dataclass(frozen=True)
class EngineConfig:
    """What the vLLM child needs; built from Settings by ``engine_config``."""

    model: str
    served_name: str
    kind: str = "vllm"  # or "llama.cpp" (assistant.engine.llamacpp)
    threads: int | None = None  # llama.cpp's CPU threads; None: every core
    adapters: dict[str, str] = field(default_factory=dict)
    port: int = 0
    max_model_len: int = 2048
    gpu_memory_utilization: float = 0.25
    kv_cache_space_gib: int | None = None
    enable_prefix_caching: bool = True
    max_lora_rank: int = 16
    max_loras: int = 4
    dtype: str = "auto"
    extra_args: tuple[str, ...] = ()
    speculative_config: str | None = None  # JSON for vLLM's --speculative-config
    start_timeout_s: float = 600
    log_file: Path = Path(".assistant/logs/vllm.log")


def engine_config(settings) -> EngineConfig:
    return EngineConfig(
        model=settings.model_path,
        served_name=settings.model_name,
        kind=settings.engine,
        threads=settings.engine_threads,
        adapters=dict(settings.adapters),
        port=settings.engine_port,
        max_model_len=settings.max_model_len,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        kv_cache_space_gib=settings.kv_cache_space_gib,
        enable_prefix_caching=settings.enable_prefix_caching,
        max_lora_rank=settings.max_lora_rank,
        max_loras=settings.max_loras,
        dtype=settings.dtype,
        extra_args=tuple(settings.engine_extra_args),
        speculative_config=speculative_config(settings.speculative, settings.speculative_tokens),
        start_timeout_s=settings.engine_start_timeout_s,
        log_file=settings.logs_dir / ("vllm.log" if settings.engine == "vllm" else "llamacpp.log"),
    )


# Prompt lookup: a draft is the continuation of the last 2-4 answer tokens where they
# occur earlier in the prompt, i.e. in a retrieved source the answer is quoting.
NGRAM_LOOKUP = {"prompt_lookup_min": 2, "prompt_lookup_max": 4}


def speculative_config(choice: str, tokens: int = 4) -> str | None:
    """The JSON for vLLM's --speculative-config from the ``speculative`` setting."""
    if choice == "off":
        return None
    if choice == "ngram":
        return json.dumps({"method": "ngram", "num_speculative_tokens": tokens, **NGRAM_LOOKUP})
    if choice == "suffix":
        return json.dumps({"method": "suffix", "num_speculative_tokens": tokens})
    return choice  # a JSON object, validated by Settings, passed through


def check_speculative(config: EngineConfig) -> None:
    """Refuse, before vLLM starts, the speculative set-ups known not to run."""
    if config.speculative_config is None:
        return
    if "--speculative-config" in config.extra_args:
        raise UserError(
            "speculative decoding is set twice, by ASSISTANT_SPECULATIVE and by "
            "--speculative-config in ASSISTANT_ENGINE_EXTRA_ARGS; keep one"
        )
    method = json.loads(config.speculative_config).get("method")
    if method == "suffix" and importlib.util.find_spec("arctic_inference") is None:
        raise UserError(
            "ASSISTANT_SPECULATIVE=suffix needs the arctic-inference package, which is not "
            "installed (vLLM's suffix decoding lives in it); use ASSISTANT_SPECULATIVE=ngram "
            "or off"
        )
