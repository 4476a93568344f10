"""Incremental, crash-safe indexing of a docs folder into a Chroma collection.

The collection mirrors the folders given: new files are added, changed ones re-embedded,
deleted ones removed, unchanged ones left alone. Chunks are embedded in batches across
files (small files do not make small batches), written, and only then made live by the
manifest (``retrieval.manifest``); the old version's chunks are deleted after that. A run
killed at any point leaves every document at its old or new version, and the next run
deletes the leftovers, reusing chunks that were already written. A run can also be
cancelled (``cancel``): it stops between files and between embedding batches, leaving the
index as a kill would, and the next run finishes the work.

Each chunk also carries the groups that may read its document (``retrieval.access``); when
only the rules changed, the run rewrites those flags in place and embeds nothing.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from retrieval.access import ACCESS_FILE, AccessRules, flag_changes, flags
from retrieval.chunking import Chunk, Chunker
from retrieval.embeddings import Embedder
from retrieval.errors import RetrievalError
from retrieval.loaders import SUFFIXES, LoadError, load
from retrieval.manifest import Manifest, get_all
from retrieval.progress import IndexObserver, Progress, QuietObserver

# What a store that cannot be written fails with: disk full, file too large, quota,
# read-only file system, no permission, I/O error.
_WRITE_ERRNOS = {28, 27, 122, 30, 13, 5}

MAX_FILE_BYTES = 50 * 1024 * 1024
FLUSH_CHUNKS = 256  # chunks embedded and written together


@dataclass
class IndexReport:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    access_updated: int = 0  # unchanged files whose readers changed (flags rewritten)
    chunks: int = 0  # live chunks in the collection after the run
    embedded: int = 0  # chunks embedded by this run
    skipped: list[dict] = field(default_factory=list)  # {"source", "reason"}
    dry_run: bool = False
    cancelled: bool = False  # stopped early by ``cancel``: the rest is left to the next run
    seconds: float = 0.0

    def counts(self) -> dict:
        data = asdict(self)
        data["skipped"] = len(self.skipped)
        data["seconds"] = round(self.seconds, 2)
        return data


@dataclass
class _File:
    path: Path
    source: str
    digest: str


def document_version(file_digest: str, recipe: str) -> str:
    """The version a document is indexed under: its bytes and the recipe that embedded them."""
    if not recipe:
        return file_digest
    return hashlib.sha256(f"{file_digest}|{recipe}".encode()).hexdigest()


def ignored(source: str) -> bool:
    """Files the indexer passes over without a word: hidden ones (any part of the path
    starts with '.', so everything under a hidden folder too) and the access rules."""
    return source == ACCESS_FILE or any(p.startswith(".") for p in PurePosixPath(source).parts)


def skip_reason(path: Path) -> str | None:
    """Why the indexer skips (and reports) the file at ``path``; ``None`` when it reads it."""
    if path.suffix.lower() not in SUFFIXES:
        return f"unsupported type '{path.suffix}'"
    if path.stat().st_size > MAX_FILE_BYTES:
        return "larger than 50 MiB"
    return None


def indexed_path(root: Path, source: str) -> Path | None:
    """The file that a run over the folder ``root`` indexes as ``source``, or ``None`` where
    it indexes nothing under that name (missing, hidden, the access rules, in a linked
    folder, an unsupported type, too large): what a citation of ``source`` can point at."""
    rel = PurePosixPath(source)
    if not rel.parts or rel.is_absolute() or ".." in rel.parts or ignored(rel.as_posix()):
        return None
    folder = Path(root)
    for part in rel.parts[:-1]:
        folder = folder / part
        if folder.is_symlink():  # the scan (Path.rglob) does not follow linked folders
            return None
    path = folder / rel.parts[-1]
    if not path.is_file() or skip_reason(path) is not None:
        return None
    return path


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
            if ignored(rel):
                continue
            reason = skip_reason(path)
            if reason is not None:
                report.skipped.append({"source": rel, "reason": reason})
                continue
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            files[rel] = _File(path, rel, digest)
    return files


class Indexer:
    def __init__(
        self,
        collection,
        manifest: Manifest,
        embedder: Embedder,
        chunker: Chunker,
        *,
        flush_chunks: int = FLUSH_CHUNKS,
        max_batch: int = 5000,
        headers: bool = True,
        recipe: str = "",
        access: AccessRules | None = None,
    ) -> None:
        self.collection = collection
        self.manifest = manifest
        self.embedder = embedder
        self.chunker = chunker
        self.flush_chunks = flush_chunks
        self.max_batch = max_batch  # Chroma's limit on records per call
        self.headers = headers  # embed title and heading path with each chunk
        # How text becomes vectors (loader version, chunk sizes, headers, prefix). It is part
        # of each document's version, so changing it re-embeds every file on the next run,
        # crash-safe like any other change, instead of leaving vectors of the old recipe.
        self.recipe = recipe
        self.access = access or AccessRules(None)
        self._readers: dict[tuple[str, str], set[str | None]] = {}  # stored "groups" values
        self._cancel: Callable[[], bool] = lambda: False

    def stored(self) -> dict[str, dict[str, list[str]]]:
        """source -> content hash -> ids of its chunks in the collection, live or not."""
        found = get_all(self.collection, include=["metadatas"])
        stored: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self._readers = defaultdict(set)
        for chunk_id, meta in zip(found["ids"], found["metadatas"], strict=True):
            stored[meta["source"]][meta["content_hash"]].append(chunk_id)
            self._readers[(meta["source"], meta["content_hash"])].add(meta.get("groups"))
        return stored

    def run(self, roots: list[Path], **options) -> IndexReport:
        """``_run`` (below), with a store that cannot be written (disk full, read-only,
        I/O error) reported in one sentence instead of the store's traceback."""
        import errno

        from chromadb.errors import ChromaError

        try:
            return self._run(roots, **options)
        except ChromaError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        except OSError as exc:
            if exc.errno not in _WRITE_ERRNOS:
                raise
            reason = errno.errorcode.get(exc.errno, "") + " " + (exc.strerror or "")
        raise RetrievalError(
            f"the index could not be written ({reason.strip()}): is the disk full or the store "
            "read-only? Documents made live before the error stay whole at their last "
            "complete version; free space or fix the store's permissions and index again: "
            "the run picks up where it stopped"
        ) from None

    def _run(
        self,
        roots: list[Path],
        *,
        full: bool = False,
        dry_run: bool = False,
        observer: IndexObserver | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> IndexReport:
        """Bring the collection in line with ``roots``; ``full`` re-embeds every file;
        ``observer`` hears how it goes (default: nobody).

        ``cancel`` (e.g. ``threading.Event().is_set``) is asked between files and between
        embedding batches; once it says yes the run stops where it is, with
        ``report.cancelled``: files made live so far stay live, the others stay at their
        old version, and nothing is removed."""
        started = time.perf_counter()
        self._cancel = cancel or (lambda: False)
        report = IndexReport(dry_run=dry_run)
        files = scan(roots, report)
        for file in files.values():
            file.digest = document_version(file.digest, self.recipe)
        live = self.manifest.all()
        stored = self.stored()
        todo, regroup = self._plan(files, live, stored, full, report)
        gone = sorted(source for source in live if source not in files)

        tell = observer or QuietObserver()
        state = Progress(files_total=len(todo))
        tell.started(state)
        batch = _Batch()
        try:
            for file, existed in todo:
                self._check_cancel()
                try:
                    chunks = self._chunks(file)
                except LoadError as exc:
                    report.skipped.append({"source": file.source, "reason": str(exc)})
                    state.files_done += 1
                    tell.advanced(state, 1)
                    continue
                if dry_run:
                    report.updated += existed
                    report.added += not existed
                    what = "update" if existed else "add"
                    tell.message(f"would {what} {file.source} ({len(chunks)} chunks)")
                    state.files_done += 1
                    tell.advanced(state, 1)
                    continue
                # Chunks a killed run already wrote are reused, except when --full re-embeds.
                written = set() if full else set(stored.get(file.source, {}).get(file.digest, []))
                batch.add(file, existed, chunks, written)
                if len(batch.pending) >= self.flush_chunks:
                    self._flush(batch, stored, report, state, tell)
            if batch.files:
                self._flush(batch, stored, report, state, tell)
        except _Cancelled:
            report.cancelled = True
        tell.finished(state)
        if report.cancelled:  # left as a kill would leave it: the next run clears leftovers
            live = self.manifest.all()
        else:
            report.removed = len(gone)
            report.access_updated = len(regroup)
            if dry_run:
                for source in gone:
                    tell.message(f"would remove {source}")
                for file in regroup:
                    tell.message(f"would change who may read {file.source}")
            else:
                self._regroup(regroup, stored)
                self.manifest.remove(gone)
                live = self.manifest.all()  # what this run left live: read once, used twice
                self._delete_leftovers(stored, live)
                self.manifest.bump(access=self.access.to_json())
        for item in report.skipped:
            tell.message(f"skipped {item['source']}: {item['reason']}")
        report.chunks = sum(entry.n_chunks for entry in live.values())
        report.seconds = time.perf_counter() - started
        return report

    def _plan(
        self, files: dict[str, _File], live: dict, stored, full: bool, report: IndexReport
    ) -> tuple[list[tuple[_File, bool]], list[_File]]:
        """The files to (re)index, each with whether it was live before this run, and the
        unchanged ones whose readers changed (counted in ``report.unchanged``): a file is
        unchanged when its live version is the one on disk, with all its chunks stored."""
        todo: list[tuple[_File, bool]] = []
        regroup: list[_File] = []
        for source, file in files.items():
            entry = live.get(source)
            whole = (
                entry is not None
                and entry.content_hash == file.digest
                and len(stored.get(source, {}).get(file.digest, [])) == entry.n_chunks
            )
            if whole and not full:
                report.unchanged += 1
                wanted = ",".join(self.access.groups_for(source))
                if self._readers.get((source, file.digest)) != {wanted}:
                    regroup.append(file)
            else:
                todo.append((file, entry is not None))
        return todo, regroup

    def _check_cancel(self) -> None:
        if self._cancel():
            raise _Cancelled

    def _embed(self, texts: list[str]) -> list[list[float]]:
        """Vectors in the embedder's own batches, asking ``cancel`` before each one."""
        step = max(1, int(getattr(self.embedder, "batch_size", 64)))
        vectors: list[list[float]] = []
        for start in range(0, len(texts), step):
            self._check_cancel()
            vectors += self.embedder.embed(texts[start : start + step])
        return vectors

    def _chunks(self, file: _File) -> list[Chunk]:
        chunks = self.chunker.split(load(file.path, file.source), file.digest)
        if not chunks:
            raise LoadError("no text to index")
        return chunks

    def _flush(self, batch: _Batch, stored, report, state: Progress, tell: IndexObserver) -> None:
        """Embed and write the batch's chunks, then make its files live, then drop old chunks."""
        pending = batch.pending
        for start in range(0, len(pending), self.max_batch):
            part = pending[start : start + self.max_batch]
            vectors = self._embed([c.embedding_text(self.headers) for c in part])
            self.collection.upsert(
                ids=[c.id for c in part],
                documents=[c.text for c in part],
                embeddings=vectors,
                metadatas=[
                    {**c.metadata(), **flags(self.access.groups_for(c.source))} for c in part
                ],
            )
        self.manifest.commit([(f.source, f.digest, len(ids)) for f, _, ids in batch.files])
        stale: list[str] = []
        for file, existed, ids in batch.files:
            versions = stored.get(file.source, {})
            stale += [i for digest, old in versions.items() if digest != file.digest for i in old]
            stored[file.source] = {file.digest: ids}
            report.updated += existed
            report.added += not existed
        self._delete(stale)
        report.embedded += len(pending)
        state.chunks += len(pending)
        state.files_done += len(batch.files)
        tell.advanced(state, len(batch.files))
        batch.clear()

    def _regroup(self, files: list[_File], stored) -> None:
        """Rewrite the reader flags of unchanged files' chunks; no text is embedded again."""
        for file in files:
            old = self._readers.get((file.source, file.digest), set())
            new = self.access.groups_for(file.source)
            changes: dict = {}
            for previous in old:
                changes.update(flag_changes(previous, new))
            ids = stored[file.source][file.digest]
            for start in range(0, len(ids), self.max_batch):
                part = ids[start : start + self.max_batch]
                self.collection.update(ids=part, metadatas=[dict(changes) for _ in part])

    def _delete_leftovers(self, stored, live: dict) -> None:
        """Chunks that no live version owns: a killed run's writes, or files gone before."""
        stale = [
            chunk_id
            for source, versions in stored.items()
            for digest, ids in versions.items()
            if source not in live or live[source].content_hash != digest
            for chunk_id in ids
        ]
        self._delete(stale)

    def _delete(self, ids: list[str]) -> None:
        for start in range(0, len(ids), self.max_batch):
            self.collection.delete(ids=ids[start : start + self.max_batch])


class _Cancelled(Exception):
    """Raised inside a run when ``cancel`` says stop."""


class _Batch:
    """Chunks waiting to be embedded, and the files they complete."""

    def __init__(self) -> None:
        self.pending: list[Chunk] = []
        self.files: list[tuple[_File, bool, list[str]]] = []  # (file, existed, chunk ids)

    def add(self, file: _File, existed: bool, chunks: list[Chunk], written: set[str]) -> None:
        self.pending += [c for c in chunks if c.id not in written]
        self.files.append((file, existed, [c.id for c in chunks]))

    def clear(self) -> None:
        self.pending = []
        self.files = []
