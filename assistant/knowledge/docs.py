"""The docs folder over HTTP: serve indexed files read-only, take admin uploads.

Every path is resolved inside the docs root; nothing outside it is ever read or written
(``..``, absolute paths and symlinks pointing out are refused). A source link serves only
what a reindex of the docs folder could have cited, by the indexer's own rule
(``retrieval.indexer.indexed_path``): hidden files and folders, the access rules, files in
linked folders, unsupported and oversized files answer 404 like missing ones.
"""

from __future__ import annotations

import contextlib
import errno
import mimetypes
import re
from pathlib import Path, PurePosixPath

from assistant.errors import APIError
from retrieval.indexer import indexed_path
from retrieval.loaders import SUFFIXES

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file name with no folders, no leading dots and only [A-Za-z0-9._-]."""
    base = PurePosixPath(name.replace("\\", "/")).name
    stem, dot, suffix = base.rpartition(".")
    if not dot:
        stem, suffix = base, ""
    stem = _SAFE.sub("-", stem).strip(".-_")[:120]
    suffix = _SAFE.sub("", suffix).lower()
    if not stem:
        raise APIError(400, f"'{name}' is not a usable file name")
    return f"{stem}.{suffix}" if suffix else stem


class DocsService:
    def __init__(self, docs_dir: Path, max_upload_bytes: int) -> None:
        self.root = Path(docs_dir)
        self.max_upload_bytes = max_upload_bytes

    def _inside(self, relative: str) -> Path:
        root = self.root.resolve()
        try:
            candidate = (root / relative).resolve()
        except (OSError, ValueError):  # a NUL byte, a symlink loop: no such file either
            raise APIError(404, "no such document", code="document_not_found") from None
        if candidate != root and root not in candidate.parents:
            raise APIError(404, "no such document", code="document_not_found")
        return candidate

    def open(self, relative: str) -> tuple[Path, str]:
        """The file for ``relative`` (a source path as cited) and its media type."""
        path = self._inside(relative)
        try:
            found = indexed_path(self.root, relative) is not None
        except OSError:  # e.g. a name too long for the file system
            found = False
        if not found:
            raise APIError(404, "no such document", code="document_not_found")
        if path.suffix.lower() in {".md", ".markdown", ".txt"}:
            return path, "text/plain; charset=utf-8"
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return path, media

    def save(self, name: str, data: bytes, folder: str | None = None) -> str:
        """Write an uploaded document; returns its path relative to the docs root."""
        clean = safe_name(name)
        suffix = PurePosixPath(clean).suffix.lower()
        if suffix not in SUFFIXES:
            allowed = ", ".join(sorted(SUFFIXES))
            raise APIError(400, f"'{name}': only {allowed} files can be added")
        if len(data) > self.max_upload_bytes:
            raise APIError(413, f"'{name}' is larger than {self.max_upload_bytes} bytes")
        if not data.strip():
            raise APIError(400, f"'{name}' is empty")
        target_dir = self._inside(folder) if folder else self.root.resolve()
        target = target_dir / clean
        tmp = target.with_name(f".{clean}.uploading")
        try:
            target_dir.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(data)
            tmp.replace(target)  # a reindex never sees half a file
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            where = f"{folder}/{clean}" if folder else clean
            raise APIError(400, f"'{where}' cannot be written: {exc.strerror}") from None
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise  # disk full, read-only: the server's problem, not the request's
            raise APIError(400, f"'{folder or clean}': the name is too long") from None
        return target.relative_to(self.root.resolve()).as_posix()
