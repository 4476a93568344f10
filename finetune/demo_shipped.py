"""The demo model shipped in ``finetune/demo_weights``: its checksums, and copying it into
place (``assistant demo-model`` without ``--rebuild``)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from finetune.demo_model import CHECKSUMS, MARKER, SHIPPED
from finetune.errors import FinetuneError


def write_checksums(folder: Path) -> None:
    """``SHA256SUMS`` (sha256sum's format) of every file in ``folder``."""
    folder = Path(folder)
    lines = [
        f"{_sha256(f)}  {f.name}"
        for f in sorted(folder.iterdir())
        if f.is_file() and f.name != CHECKSUMS
    ]
    (folder / CHECKSUMS).write_text("\n".join(lines) + "\n", encoding="utf-8")


def verify_checksums(folder: Path) -> list[str]:
    """The files ``SHA256SUMS`` names, after checking each; any mismatch is one sentence."""
    folder = Path(folder)
    listing = folder / CHECKSUMS
    if not listing.is_file():
        raise FinetuneError(f"{listing} is missing: the shipped demo model cannot be checked")
    names = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            raise FinetuneError(f"{path} is missing from the shipped demo model")
        if _sha256(path) != digest:
            raise FinetuneError(
                f"{path} does not match its checksum (damaged, or a Git LFS pointer?): run "
                "`assistant demo-model --rebuild` to train the demo model here instead"
            )
        names.append(name)
    return names


def install_shipped(output: Path, source: Path = SHIPPED) -> dict:
    """Copy the shipped, checksum-verified demo model to ``output``; returns its report."""
    names = verify_checksums(source)
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    (output / MARKER).unlink(missing_ok=True)
    for name in names:
        if name != MARKER:
            shutil.copyfile(source / name, output / name)
    shutil.copyfile(source / CHECKSUMS, output / CHECKSUMS)
    shutil.copyfile(source / MARKER, output / MARKER)  # last: marks a finished copy
    return json.loads((output / MARKER).read_text(encoding="utf-8"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
