"""Checks before the engine starts: the model folder, the adapters, the ports."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

from assistant.errors import UserError


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
