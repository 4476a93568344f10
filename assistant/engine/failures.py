"""vLLM's start-up log read back as one sentence a user can act on."""

from __future__ import annotations

import re

# Lines in vLLM's log that name a start-up failure, and the advice we give for each.
_KNOWN_FAILURES = [
    (
        ("no available memory for the cache blocks", "kv cache", "insufficient memory",
         "not enough memory", "out of memory", "cannot allocate memory"),
        "vLLM could not reserve memory for the KV cache; lower ASSISTANT_KV_CACHE_SPACE_GIB, "
        "ASSISTANT_GPU_MEMORY_UTILIZATION or ASSISTANT_MAX_MODEL_LEN",
    ),
    (
        ("repository not found", "we couldn't connect", "offline mode is enabled",
         "does not appear to have a file named", "is not a local folder"),
        "vLLM could not load the model: it is neither a local folder nor reachable on the hub",
    ),
    (("address already in use",), "vLLM's port is already in use"),
]  # fmt: skip
# The line of a Python exception as a traceback ends: "ValueError: ...", "pydantic...Error: ..."
_EXCEPTION = re.compile(r"^(\(\w+ pid=\d+\) )?[\w.]*(Error|Exception): ")


# Words in vLLM's final exception that put the blame on speculative decoding.
_SPECULATIVE_WORDS = ("speculative", "spec_decode", "suffix decoding", "arctic", "ngram", "draft")


def explain_failure(log_tail: str, engine: str = "vLLM") -> str:
    """One sentence for a failed start: our advice (for vLLM's known failures), and the
    engine's own words for the cause."""
    lines = [line.strip() for line in log_tail.splitlines()]
    advice = _vllm_advice(lines) if engine == "vLLM" else None
    if advice:
        return advice
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("File ")]
    last = f": {errors[-1][:300]}" if errors else ""
    return f"{engine} exited during start-up" + last


def _vllm_advice(lines: list[str]) -> str | None:
    # An engine process's exception is followed by the server's generic "Engine core
    # initialization failed": look at every exception raised, not only the last.
    raised = [i for i, line in enumerate(lines) if _EXCEPTION.match(line)]
    blamed = [i for i in raised if any(w in lines[i].lower() for w in _SPECULATIVE_WORDS)]
    if blamed:
        said = lines[blamed[-1]]
        if "validation error" in said and blamed[-1] + 1 < len(lines):  # pydantic: the reason
            said += ": " + lines[blamed[-1] + 1].split(" [type=")[0]  # is on the next line
        return (
            "vLLM cannot run the speculative decoding set in ASSISTANT_SPECULATIVE with this "
            f"backend, model or LoRA adapters; set ASSISTANT_SPECULATIVE=off (vLLM said: "
            f"{said[:300]})"
        )
    for needles, advice in _KNOWN_FAILURES:
        hits = [line for line in lines if any(n in line.lower() for n in needles)]
        if hits:
            return f"{advice} (vLLM said: {hits[-1][:300]})"
    return None
