"""Incremental indexing of a docs folder into a Chroma collection.

The collection mirrors the folders given. Each chunk carries its file's ``source`` and
``content_hash`` and the file's chunk count, so the manifest (source -> hash -> chunk ids)
is read back from Chroma itself: there is no second file that could disagree with it.
A changed file's new chunks are written before its old ones are deleted, so a run killed
half-way leaves the old version whole; the next run finishes the job.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from retrieval.chunking import Chunk, Chunker
from retrieval.embeddings import Embedder
from retrieval.errors import RetrievalError
from retrieval.loaders import SUFFIXES, LoadError, load

MAX_FILE_BYTES = 50 * 1024 * 1024


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0  # chunks in the collection after the run
    embedded: int = 0  # chunks embedded by this run
    skipped: list[dict] = field(default_factory=list)  # {"source", "reason"}
    dry_run: bool = False

    def counts(self) -> dict:
        data = asdict(self)
        data["skipped"] = len(self.skipped)
        return data


@dataclass
class _Stored:
    """One stored version of a file: the chunk count it was written with, and its chunk ids."""

    n_chunks: int | None
    ids: list[str] = field(default_factory=list)


@dataclass
class _File:
    path: Path
    source: str
    digest: str


def scan(roots: Iterable[Path], report: IndexReport) -> dict[str, _File]:
    """Supported files under ``roots`` keyed by source (path relative to its root)."""
    files: dict[str, _File] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise RetrievalError(f"'{root}' does not exist")
        base = root.parent if root.is_file() else root
        candidates = [root] if root.is_file() else sorted(root.rglob("*"))
        candidates = [p for p in candidates if p.is_file()]
        for path in candidates:
            rel = path.relative_to(base).as_posix()
            if any(part.startswith(".") for part in Path(rel).parts):
                continue
            if path.suffix.lower() not in SUFFIXES:
                reason = f"unsupported type '{path.suffix}'"
                report.skipped.append({"source": rel, "reason": reason})
                continue
            if path.stat().st_size > MAX_FILE_BYTES:
                report.skipped.append({"source": rel, "reason": "larger than 50 MiB"})
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files[rel] = _File(path, rel, digest)
    return files


class Indexer:
    def __init__(self, collection, embedder: Embedder, chunker: Chunker) -> None:
        self.collection = collection
        self.embedder = embedder
        self.chunker = chunker

    def manifest(self) -> dict[str, dict[str, _Stored]]:
        """source -> content_hash -> its stored chunks, read in one pass over the collection."""
        stored = self.collection.get(include=["metadatas"])
        manifest: dict[str, dict[str, _Stored]] = defaultdict(dict)
        for chunk_id, meta in zip(stored["ids"], stored["metadatas"], strict=True):
            version = manifest[meta["source"]].setdefault(
                meta["content_hash"], _Stored(meta.get("n_chunks"))
            )
            version.ids.append(chunk_id)
        return manifest

    @staticmethod
    def _complete(versions: dict[str, _Stored], digest: str) -> bool:
        """The stored version ``digest`` is whole and alone (no half or stale copies)."""
        if set(versions) != {digest}:
            return False
        return versions[digest].n_chunks == len(versions[digest].ids)

    def run(
        self,
        roots: list[Path],
        *,
        dry_run: bool = False,
        progress: bool = True,
        log: Callable[[str], None] = print,
    ) -> IndexReport:
        report = IndexReport(dry_run=dry_run)
        files = scan(roots, report)
        manifest = self.manifest()
        todo: list[tuple[_File, bool]] = []  # (file, existed before)
        for source, file in files.items():
            if source in manifest and self._complete(manifest[source], file.digest):
                report.unchanged += 1
            else:
                todo.append((file, source in manifest))
        gone = [source for source in manifest if source not in files]

        from tqdm import tqdm

        bar = tqdm(total=len(todo), desc="indexing", unit="file", disable=not progress or not todo)
        for file, existed in todo:
            bar.set_postfix_str(file.source[-40:])
            try:
                chunks = self._chunks(file)
            except LoadError as exc:
                report.skipped.append({"source": file.source, "reason": str(exc)})
                bar.update(1)
                continue
            if not dry_run:
                self._replace(file.source, chunks, manifest.get(file.source, {}))
                report.embedded += len(chunks)
            if existed:
                report.updated += 1
            else:
                report.added += 1
            bar.update(1)
        bar.close()
        for source in gone:
            if not dry_run:
                ids = [i for version in manifest[source].values() for i in version.ids]
                self.collection.delete(ids=ids)
            report.removed += 1
        for item in report.skipped:
            log(f"skipped {item['source']}: {item['reason']}")
        report.chunks = self.collection.count()
        return report

    def _chunks(self, file: _File) -> list[Chunk]:
        doc = load(file.path, file.source)
        chunks = self.chunker.split(doc, file.digest)
        if not chunks:
            raise LoadError("no text to index")
        return chunks

    def _replace(self, source: str, chunks: list[Chunk], old: dict[str, _Stored]) -> None:
        """Write the new version first, then delete every other stored version."""
        for start in range(0, len(chunks), 256):
            batch = chunks[start : start + 256]
            vectors = self.embedder.embed([c.text for c in batch])
            self.collection.upsert(
                ids=[c.id for c in batch],
                documents=[c.text for c in batch],
                embeddings=vectors,
                metadatas=[{**c.metadata(), "n_chunks": len(chunks)} for c in batch],
            )
        keep = {c.id for c in chunks}
        stale = [i for version in old.values() for i in version.ids if i not in keep]
        if stale:
            self.collection.delete(ids=stale)
