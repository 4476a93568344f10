"""Search the indexed docs: passages with score, source, title, section and page for citing.

Three modes: ``dense`` (embedding similarity in Chroma), ``keyword`` (BM25 over the same
chunks) and ``hybrid`` (both, fused as ``retrieval.fusion`` describes), optionally reranked
by a cross-encoder; then at most ``per_document`` passages of each document are kept. The
query is first cleaned of greetings and sign-offs (``retrieval.query``). Only live chunks
are returned (see ``retrieval.manifest``), so a reindex in progress or one that was killed
never shows two versions of a document. Given the caller's ``groups``, only chunks those
groups may read take part (``retrieval.access``): a Chroma filter on the dense side, a row
mask on the keyword side, so a hidden document never shapes a ranking. Every hit's
``score`` is the cosine similarity of its chunk to the query, whatever ranked it, so one
abstain threshold works in every mode.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import asdict, dataclass
from typing import Protocol

import numpy as np

from retrieval.access import FLAG, where
from retrieval.embeddings import Embedder
from retrieval.errors import RetrievalError
from retrieval.fusion import FUSIONS, convex, diversify, rrf
from retrieval.keyword import BM25
from retrieval.manifest import SUFFIX, Manifest, get_all
from retrieval.query import clean_query
from retrieval.store import check_dimension

MODES = ("dense", "keyword", "hybrid")
SLACK = 10  # extra dense results fetched in case some are not live


@dataclass
class Hit:
    rank: int
    source: str
    title: str
    section: str
    page: int | None
    score: float  # cosine similarity of the chunk to the query, 1 is identical
    text: str

    @property
    def snippet(self) -> str:
        text = " ".join(self.text.split())
        return text if len(text) <= 240 else text[:237].rsplit(" ", 1)[0] + "..."

    def citation(self) -> dict:
        """The public form, as returned in the API's ``sources``."""
        data = asdict(self)
        data.pop("text")
        data["score"] = round(self.score, 4)
        data["snippet"] = self.snippet
        return data


class Reranker(Protocol):
    def score(self, query: str, texts: list[str]) -> list[float]: ...


@dataclass
class _Chunk:
    text: str
    meta: dict
    cosine: float


@dataclass(frozen=True)
class _Keywords:
    """One build of the keyword index: BM25, the chunk id of each row, who may read each."""

    bm25: BM25
    ids: list[str]
    readers: dict[str, np.ndarray]  # group -> rows it may read

    def allowed(self, groups: frozenset[str] | None) -> np.ndarray | None:
        """The rows ``groups`` may read (``None``: no restriction)."""
        if groups is None:
            return None
        mask = np.zeros(len(self.ids), dtype=bool)
        for group in groups:
            rows = self.readers.get(group)
            if rows is not None:
                mask |= rows
        return mask


def _readers(metas: list[dict]) -> dict[str, np.ndarray]:
    readers: dict[str, np.ndarray] = {}
    for row, meta in enumerate(metas):
        for key, value in meta.items():
            if key.startswith(FLAG) and value:
                group = key[len(FLAG) :]
                readers.setdefault(group, np.zeros(len(metas), dtype=bool))[row] = True
    return readers


class _KeywordIndex:
    """BM25 over a collection's live chunks; rebuilt when the index changes.

    With ``background=True`` (the server) a stale index keeps answering while a fresh one
    is built in a thread; its hits are checked for liveness like any other.
    """

    def __init__(self, chunks, manifest: Manifest, background: bool) -> None:
        self.chunks = chunks
        self.manifest = manifest
        self.background = background
        self.built: _Keywords | None = None
        self.signature: tuple | None = None
        self._lock = threading.Lock()
        self._building = False

    def current(self, signature: tuple[int, int] | None = None) -> _Keywords:
        """The index for the collection as it is; ``signature`` is (manifest revision, chunk
        count) when the caller already read them."""
        signature = signature or (self.manifest.revision(), self.chunks.count())
        if signature != self.signature:
            if self.built is None or not self.background:
                self._build(signature)
            elif not self._building:
                self._building = True
                threading.Thread(target=self._build, args=(signature,), daemon=True).start()
        return self.built  # type: ignore[return-value]

    def _build(self, signature: tuple) -> None:
        try:
            with self._lock:
                if signature == self.signature:
                    return
                live = {s: e.content_hash for s, e in self.manifest.all().items()}
                found = get_all(self.chunks, include=["documents", "metadatas"])
                ids, texts, metas = [], [], []
                for chunk_id, text, meta in zip(
                    found["ids"], found["documents"], found["metadatas"], strict=True
                ):
                    if live.get(meta["source"]) == meta["content_hash"]:
                        ids.append(chunk_id)
                        texts.append(f"{meta.get('title', '')}\n{meta.get('section', '')}\n{text}")
                        metas.append(meta)
                self.built = _Keywords(BM25(texts), ids, _readers(metas))
                self.signature = signature
        finally:
            self._building = False


class _View:
    """One collection as the retriever sees it: chunks, manifest and keyword index."""

    def __init__(self, client, name: str, background: bool) -> None:
        try:
            self.chunks = client.get_collection(name)
        except Exception:  # chromadb raises NotFoundError or ValueError by version
            raise RetrievalError(f"collection '{name}' does not exist; index it first") from None
        try:
            client.get_collection(name + SUFFIX)
        except Exception:
            raise RetrievalError(
                f"collection '{name}' was built by an older version without a manifest; "
                "run `assistant index` (or POST /v1/admin/reindex) again"
            ) from None
        self.manifest = Manifest(client, name)
        self.keyword = _KeywordIndex(self.chunks, self.manifest, background)
        self.state: tuple[int, int] | None = None  # (manifest revision, chunk count)
        # Whether the chunks carry reader flags: an index built before permissions existed
        # has none, and is searched unfiltered until its next reindex writes them.
        self.permissions = False

    def size(self) -> int:
        """The chunk count, counted again only after a reindex run (``count()`` costs ~10 ms
        at 100k chunks, a fifth of a query); ``state`` keeps the revision it belongs to."""
        revision, access = self.manifest.state()
        if self.state is None or self.state[0] != revision:
            self.state = (revision, self.chunks.count())
            self.permissions = access is not None
        return self.state[1]


class Retriever:
    """Top-k live passages of a collection for a query."""

    def __init__(
        self,
        client,
        embedder: Embedder,
        default_collection: str = "docs",
        *,
        mode: str = "hybrid",
        candidates: int = 20,
        fusion: str = "convex",
        keyword_weight: float = 0.1,
        code_weight: float = 0.3,
        per_document: int | None = 1,
        reranker: Reranker | None = None,
        background_refresh: bool = False,
    ) -> None:
        _check_mode(mode)
        if fusion not in FUSIONS:
            raise RetrievalError(f"fusion must be one of {', '.join(FUSIONS)}, not '{fusion}'")
        self.client = client
        self.embedder = embedder
        self.default_collection = default_collection
        self.mode = mode
        self.candidates = candidates
        self.fusion = fusion
        self.keyword_weight = keyword_weight
        self.code_weight = code_weight
        self.per_document = per_document
        self.reranker = reranker
        self.background_refresh = background_refresh
        self._views: dict[str, _View] = {}
        self._lock = threading.Lock()

    def _view(self, name: str) -> _View:
        with self._lock:
            if name not in self._views:
                view = _View(self.client, name, self.background_refresh)
                stored = (view.chunks.metadata or {}).get("embedding_model")
                if stored and stored != self.embedder.name:
                    raise RetrievalError(
                        f"collection '{name}' was built with '{stored}', not '{self.embedder.name}'"
                    )
                check_dimension(view.chunks, self.embedder)
                self._views[name] = view
            return self._views[name]

    def warm(self, collection: str | None = None) -> None:
        """Build the keyword index now (seconds at 100k chunks) rather than on a first query."""
        with contextlib.suppress(RetrievalError):  # not indexed yet: nothing to build
            self._view(collection or self.default_collection).keyword.current()

    def search(
        self,
        query: str,
        k: int = 4,
        collection: str | None = None,
        mode: str | None = None,
        groups: frozenset[str] | None = None,
    ) -> list[Hit]:
        """Top ``k`` passages; with ``groups``, only from documents those groups may read
        (``None``: all documents, for admins and internal use)."""
        name = collection or self.default_collection
        try:
            return self._search(self._view(name), query, k, mode or self.mode, groups)
        except RetrievalError:
            raise
        except Exception:
            # The collection may have been dropped and rebuilt (``index --full``): reopen once.
            with self._lock:
                self._views.pop(name, None)
            return self._search(self._view(name), query, k, mode or self.mode, groups)

    def readable(
        self, source: str, groups: frozenset[str] | None, collection: str | None = None
    ) -> bool:
        """Whether ``source`` is live in the index and readable by ``groups``."""
        view = self._view(collection or self.default_collection)
        view.size()  # reads the rules' state
        if not view.manifest.live({source}):
            return False
        if groups is None or not view.permissions:
            return True
        clause = {"$and": [{"source": source}, where(groups)]}
        return bool(view.chunks.get(where=clause, limit=1, include=[])["ids"])

    def _search(
        self, view: _View, query: str, k: int, mode: str, groups: frozenset[str] | None = None
    ) -> list[Hit]:
        _check_mode(mode)
        query = clean_query(query)
        size = view.size() if query else 0
        if size == 0 or k <= 0:
            return []
        scope = groups if view.permissions else None
        n = max(k, self.candidates)
        vector = np.asarray(self.embedder.embed_query([query])[0], dtype=np.float32)
        found: dict[str, _Chunk] = {}
        dense: list[str] = []
        keyword: dict[str, float] = {}
        live: dict[str, str] = {}  # source -> live content hash, filled as sources are seen
        weight = self.keyword_weight
        if mode in {"dense", "hybrid"}:
            result = view.chunks.query(
                query_embeddings=[vector.tolist()],
                n_results=min(n + SLACK, size),
                include=["documents", "metadatas", "distances"],
                where=where(scope) if scope is not None else None,
            )
            for chunk_id, text, meta, distance in zip(
                result["ids"][0],
                result["documents"][0],
                result["metadatas"][0],
                result["distances"][0],
                strict=True,
            ):
                found[chunk_id] = _Chunk(text, meta, 1.0 - float(distance))
                dense.append(chunk_id)
        if mode in {"keyword", "hybrid"}:
            built = view.keyword.current(view.state)  # read by size(): no second read
            top = built.bm25.top(query, n, built.allowed(scope))
            keyword = {built.ids[row]: score for row, score in top}
            if built.bm25.rare_codes(query):
                weight = max(weight, self.code_weight)
            missing = [i for i in keyword if i not in found]
            if mode == "hybrid" and self.fusion == "convex" and self.reranker is None:
                live = view.manifest.live({found[i].meta["source"] for i in dense})
                missing = self._worth_fetching(missing, dense, found, live, keyword, weight, k)
            self._fetch(view, missing, vector, found)
        unknown = {c.meta["source"] for c in found.values()} - set(live)
        live |= view.manifest.live(unknown)

        def alive(chunk_id: str) -> bool:
            chunk = found.get(chunk_id)
            if chunk is None:
                return False
            return live.get(chunk.meta["source"]) == chunk.meta["content_hash"]

        dense = [i for i in dense if alive(i)][:n]
        ranked = [i for i in keyword if alive(i)][:n]  # BM25 order, best first
        if mode == "dense":
            order = dense
        elif mode == "keyword":
            order = ranked
        elif self.fusion == "rrf":
            order = rrf([dense, ranked])
        else:
            candidates = {i: found[i].cosine for i in dict.fromkeys(dense + ranked)}
            best = max(keyword.values(), default=0.0)
            order = convex(candidates, {i: keyword[i] for i in ranked}, weight, best)
        if self.reranker is not None and order:
            scores = self.reranker.score(query, [found[i].text for i in order])
            order = [i for _, i in sorted(zip(scores, order, strict=True), key=lambda p: -p[0])]
        order = diversify(order, lambda i: found[i].meta["source"], self.per_document)
        return [_hit(rank, found[i]) for rank, i in enumerate(order[:k], start=1)]

    def _worth_fetching(
        self, missing: list[str], dense: list[str], found: dict, live: dict, keyword: dict,
        weight: float, k: int,
    ) -> list[str]:  # fmt: skip
        """The keyword-only candidates that could still reach the top k (exact pruning).

        A chunk the dense search did not return has a cosine at most that of the last one
        it did return, so its fused score is at most that cosine plus its keyword share.
        Fetching its vector (the costly part at 100k chunks) is pointless when even that
        bound is below the k-th document already in hand.
        """
        if not missing or not dense or not keyword:
            return missing
        best = max(keyword.values())
        current = [
            (found[i].cosine + weight * keyword.get(i, 0.0) / best, i)
            for i in dense
            if live.get(found[i].meta["source"]) == found[i].meta["content_hash"]
        ]
        current.sort(reverse=True)
        kept = diversify(
            (i for _, i in current), lambda i: found[i].meta["source"], self.per_document
        )
        if len({found[i].meta["source"] for i in kept[:k]}) < k:
            return missing  # too few documents in hand to bound anything
        score = dict((i, f) for f, i in current)
        threshold = score[kept[k - 1]]
        floor = min(found[i].cosine for i in dense)
        return [i for i in missing if floor + weight * keyword[i] / best > threshold]

    @staticmethod
    def _fetch(view: _View, ids: list[str], vector: np.ndarray, found: dict) -> None:
        if not ids:
            return
        got = view.chunks.get(ids=ids, include=["documents", "metadatas", "embeddings"])
        for chunk_id, text, meta, embedding in zip(
            got["ids"], got["documents"], got["metadatas"], got["embeddings"], strict=True
        ):
            cosine = float(np.dot(np.asarray(embedding, dtype=np.float32), vector))
            found[chunk_id] = _Chunk(text, meta, cosine)


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise RetrievalError(f"retrieval mode must be one of {', '.join(MODES)}, not '{mode}'")


def _hit(rank: int, chunk: _Chunk) -> Hit:
    meta = chunk.meta
    return Hit(
        rank=rank,
        source=meta["source"],
        title=meta.get("title", meta["source"]),
        section=meta.get("section", ""),
        page=meta.get("page"),
        score=chunk.cosine,
        text=chunk.text,
    )
