"""The managed vLLM engine: vLLM's own OpenAI server as a supervised child process.

The child listens on a private loopback port. ``EngineProcess`` starts it, waits until it
answers ``/health``, restarts it with backoff when it dies, and turns the usual start-up
failures (missing model, no memory for the KV cache) into one clear sentence
(``failures``). Its configuration is ``config.EngineConfig``; ``checks`` run first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from assistant.engine.checks import check_adapters, check_model_source, free_port
from assistant.engine.config import EngineConfig, check_speculative
from assistant.engine.failures import explain_failure
from assistant.engine.llamacpp import check_llamacpp, llamacpp_command
from assistant.errors import UserError


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
        if c.kind == "llama.cpp":
            return llamacpp_command(c, self.port)
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
        if self.config.kind == "llama.cpp":
            check_llamacpp(self.config)
        else:
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
                engine = "llama.cpp" if self.config.kind == "llama.cpp" else "vLLM"
                said = explain_failure(self.log_tail(), engine)
                raise UserError(f"{said} (see {self.config.log_file})")
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
            # llama-cpp-python's server has no /health; its model list answers once loaded
            path = "/v1/models" if self.config.kind == "llama.cpp" else "/health"
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
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
