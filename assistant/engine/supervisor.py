"""The managed vLLM engine: vLLM's own OpenAI server as a supervised child process.

The child listens on a private loopback port. ``EngineProcess`` starts it, waits until it
answers ``/health``, restarts it with backoff when it dies, and turns the usual start-up
failures (missing model, no memory for the KV cache) into one clear sentence.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import UserError


@dataclass(frozen=True)
class EngineConfig:
    """What the vLLM child needs; built from Settings by ``engine_config``."""

    model: str
    served_name: str
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
        log_file=settings.logs_dir / "vllm.log",
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


def check_model_source(model: str) -> None:
    """A local-looking model path must exist and hold a config; hub ids pass through."""
    path = Path(model)
    looks_local = path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1
    if not looks_local:
        return
    path = path.expanduser()
    if not path.is_dir():
        raise UserError(f"model folder '{model}' does not exist")
    if not (path / "config.json").is_file():
        raise UserError(f"'{model}' is not a model folder (no config.json in it)")


def check_adapters(adapters: dict[str, str]) -> None:
    for name, folder in adapters.items():
        if not (Path(folder) / "adapter_config.json").is_file():
            raise UserError(f"adapter '{name}': '{folder}' has no adapter_config.json")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host: str, port: int) -> None:
    """One sentence when ``host:port`` cannot be listened on (IPv4 or IPv6, e.g. ``::1``)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror:
        raise UserError(f"'{host}' is not an address this machine can listen on") from None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(
                    f"port {port} on {host} is already in use; choose another with --port"
                ) from None
            raise UserError(f"cannot listen on {host} port {port}: {exc.strerror}") from None


def url_host(host: str) -> str:
    """A host as it goes in a URL: IPv6 addresses in brackets (``[::1]``)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


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


def explain_failure(log_tail: str) -> str:
    """One sentence for a failed start: our advice, and vLLM's own words for the cause."""
    lines = [line.strip() for line in log_tail.splitlines()]
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
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("File ")]
    last = f": {errors[-1][:300]}" if errors else ""
    return "vLLM exited during start-up" + last


class EngineProcess:
    """Start, watch and restart one vLLM OpenAI server on a loopback port.

    ``stop`` can come from any thread at any moment of a restart: ``_lock`` makes "stopping?
    then spawn" in the watcher and "stopping! then take the child" in ``stop`` one step each,
    so no child is ever started after ``stop`` took the last one, and the watcher never
    changes the state once stopping; ``stop`` then waits for the watcher to end, so a later
    ``start`` never runs beside an old watcher.
    """

    poll_s = 1.0  # how often the watcher looks at the child
    backoff_s = 1.0  # the first restart's delay; it doubles each time, up to 30 s

    def __init__(self, config: EngineConfig, *, max_restarts: int = 5) -> None:
        self.config = config
        self.port = config.port or free_port()
        self.max_restarts = max_restarts
        self.restarts = 0
        self.state = "stopped"  # starting | ready | restarting | failed | stopped
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # _proc, and state while stopping (see the docstring)
        self._watcher: threading.Thread | None = None
        self._ready_since = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        c = self.config
        cmd = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server",
            "--model", c.model,
            "--served-model-name", c.served_name,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--max-model-len", str(c.max_model_len),
            "--gpu-memory-utilization", str(c.gpu_memory_utilization),
            "--dtype", c.dtype,
        ]  # fmt: skip
        cmd.append(
            "--enable-prefix-caching" if c.enable_prefix_caching else "--no-enable-prefix-caching"
        )
        if c.adapters:
            cmd += [
                "--enable-lora",
                "--max-lora-rank",
                str(c.max_lora_rank),
                "--max-loras",
                str(c.max_loras),
                "--lora-modules",
            ]
            cmd += [f"{name}={path}" for name, path in c.adapters.items()]
        if c.speculative_config is not None:
            cmd += ["--speculative-config", c.speculative_config]
        return cmd + list(c.extra_args)

    def environment(self) -> dict[str, str]:
        """vLLM's environment: the gateway's, less every ASSISTANT_* setting (API and admin
        keys, the secret key, the OIDC client secret: vLLM needs none of them, and a child
        process's environment is readable by anything that can read /proc of it)."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("ASSISTANT_")}
        if self.config.kv_cache_space_gib is not None:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.config.kv_cache_space_gib)
        env.setdefault("VLLM_LOGGING_LEVEL", "INFO")
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        return env

    def start(self, *, wait: bool = True) -> None:
        """Start the child; with ``wait``, block until ready or raise ``UserError``."""
        check_model_source(self.config.model)
        check_adapters(self.config.adapters)
        check_speculative(self.config)
        if self._watcher is not None and self._watcher.is_alive():
            raise RuntimeError("the engine is already running; stop() it first")
        self._stopping.clear()
        self._spawn()
        if wait:
            self.wait_ready()
        self._watcher = threading.Thread(target=self._watch, name="engine-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> bool:
        """Start a child, unless ``stop`` has begun; whether one was started."""
        self.config.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._stopping.is_set():
                return False
            # A fresh start truncates the log, so a failure is read from this run's lines.
            mode = "ab" if self.state == "restarting" else "wb"
            with open(self.config.log_file, mode) as log:  # the child keeps its own copy
                self._proc = subprocess.Popen(
                    self.command(),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self.environment(),
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            self.state = "starting"
            return True

    def _set_state(self, state: str) -> bool:
        """Change the state, unless ``stop`` has begun (its "stopped" stays the truth)."""
        with self._lock:
            if self._stopping.is_set():
                return False
            self.state = state
            return True

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self._stopping.is_set():
                return
            proc = self._proc
            if proc is None or proc.poll() is not None:
                if not self._set_state("failed"):
                    return  # stop() took the child: that is no start-up failure
                raise UserError(f"{explain_failure(self.log_tail())} (see {self.config.log_file})")
            if self.healthy():
                if self._set_state("ready"):
                    self._ready_since = time.monotonic()
                return
            time.sleep(0.5)
        self.stop()
        self.state = "failed"
        raise UserError(
            f"vLLM did not become ready within {self.config.start_timeout_s:.0f} s "
            f"(see {self.config.log_file})"
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def alive(self) -> bool:
        proc = self._proc  # read once: stop() may take it meanwhile
        return proc is not None and proc.poll() is None

    def _watch(self) -> None:
        """Restart the child when it dies, with exponential backoff, up to max_restarts."""
        while not self._stopping.wait(self.poll_s):
            if self.alive():
                continue
            if self.restarts >= self.max_restarts:
                self._set_state("failed")
                return
            if time.monotonic() - self._ready_since > 300:
                self.restarts = 0  # it ran well for a while: start the backoff afresh
            if not self._set_state("restarting"):
                return
            dead = self._proc
            if dead is not None:
                # The dead server's engine workers share its process group: end them too,
                # or they keep the model's memory.
                _signal_group(dead, signal.SIGKILL)
            delay = min(30.0, self.backoff_s * 2.0**self.restarts)
            self.restarts += 1
            if self._stopping.wait(delay):
                return
            if not self._spawn():  # stop() began during the backoff
                return
            try:
                self.wait_ready()
            except UserError:
                continue

    def stop(self, timeout: float = 20) -> None:
        """Stop the child and the watcher; from any thread, at any time, more than once."""
        with self._lock:  # after this, the watcher starts no child and sets no state
            self._stopping.set()
            proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)
        watcher = self._watcher
        if watcher is not None and watcher is not threading.current_thread():
            watcher.join(timeout)  # at most one health check away (2 s)
        self.state = "stopped"

    def kill(self) -> None:
        """Kill the child abruptly (tests use it to check restarts)."""
        proc = self._proc
        if proc is not None:
            _signal_group(proc, signal.SIGKILL)

    def log_tail(self, max_bytes: int = 20_000) -> str:
        try:
            with open(self.config.log_file, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - max_bytes))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the gateway dies, even by SIGKILL (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
