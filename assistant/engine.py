"""The managed vLLM engine: vLLM's own OpenAI server as a supervised child process.

The child listens on a private loopback port. ``EngineProcess`` starts it, waits until it
answers ``/health``, restarts it with backoff when it dies, and turns the usual start-up
failures (missing model, no memory for the KV cache) into one clear sentence.
"""

from __future__ import annotations

import contextlib
import errno
import os
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
        start_timeout_s=settings.engine_start_timeout_s,
        log_file=settings.logs_dir / "vllm.log",
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


def explain_failure(log_tail: str) -> str:
    """One sentence for a failed start: our advice, and vLLM's own words for the cause."""
    lines = [line.strip() for line in log_tail.splitlines()]
    for needles, advice in _KNOWN_FAILURES:
        hits = [line for line in lines if any(n in line.lower() for n in needles)]
        if hits:
            return f"{advice} (vLLM said: {hits[-1][:300]})"
    errors = [line for line in lines if "error" in line.lower() and not line.startswith("File ")]
    last = f": {errors[-1][:300]}" if errors else ""
    return "vLLM exited during start-up" + last


class EngineProcess:
    """Start, watch and restart one vLLM OpenAI server on a loopback port."""

    def __init__(self, config: EngineConfig, *, max_restarts: int = 5) -> None:
        self.config = config
        self.port = config.port or free_port()
        self.max_restarts = max_restarts
        self.restarts = 0
        self.state = "stopped"  # starting | ready | restarting | failed | stopped
        self._proc: subprocess.Popen | None = None
        self._stopping = threading.Event()
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
        self._stopping.clear()
        self._spawn()
        if wait:
            self.wait_ready()
        self._watcher = threading.Thread(target=self._watch, name="engine-watch", daemon=True)
        self._watcher.start()

    def _spawn(self) -> None:
        self.config.log_file.parent.mkdir(parents=True, exist_ok=True)
        # A fresh start truncates the log, so a failure is read from this run's lines only.
        mode = "ab" if self.state == "restarting" else "wb"
        log = open(self.config.log_file, mode)  # noqa: SIM115 - handed to the child
        self.state = "starting"
        self._proc = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        log.close()

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.start_timeout_s
        while time.monotonic() < deadline:
            if self._stopping.is_set():
                return
            if self._proc is None or self._proc.poll() is not None:
                self.state = "failed"
                raise UserError(f"{explain_failure(self.log_tail())} (see {self.config.log_file})")
            if self.healthy():
                self.state = "ready"
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
        return self._proc is not None and self._proc.poll() is None

    def _watch(self) -> None:
        """Restart the child when it dies, with exponential backoff, up to max_restarts."""
        while not self._stopping.wait(1.0):
            if self.alive():
                continue
            if self.restarts >= self.max_restarts:
                self.state = "failed"
                return
            if time.monotonic() - self._ready_since > 300:
                self.restarts = 0  # it ran well for a while: start the backoff afresh
            self.state = "restarting"
            if self._proc is not None:
                # The dead server's engine workers share its process group: end them too,
                # or they keep the model's memory.
                _signal_group(self._proc, signal.SIGKILL)
            delay = min(30.0, 2.0**self.restarts)
            self.restarts += 1
            if self._stopping.wait(delay):
                return
            self._spawn()
            try:
                self.wait_ready()
            except UserError:
                continue

    def stop(self, timeout: float = 20) -> None:
        self._stopping.set()
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            _signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)
        self.state = "stopped"

    def kill(self) -> None:
        """Kill the child abruptly (tests use it to check restarts)."""
        if self._proc is not None:
            _signal_group(self._proc, signal.SIGKILL)

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
