"""Cross-encoder reranking: score each (question, passage) pair jointly.

Slower than the bi-encoder and BM25 (one forward pass per candidate) but more precise,
so it only reorders the fused candidates. Off by default: no small cross-encoder ships
offline; set ``reranker_model`` to a hub id such as cross-encoder/ms-marco-MiniLM-L-6-v2
or to a local folder.
"""

from __future__ import annotations

from retrieval.errors import RetrievalError


class CrossEncoderReranker:
    def __init__(self, name: str, device: str | None = None, batch_size: int = 32) -> None:
        from sentence_transformers import CrossEncoder

        self.name = name
        self.batch_size = batch_size
        try:
            self.model = CrossEncoder(name, device=device or "cpu")
        except OSError as exc:
            raise RetrievalError(f"cannot load reranker '{name}': {exc}") from None

    def score(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        scores = self.model.predict(
            [(query, text) for text in texts],
            batch_size=self.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return [float(s) for s in scores.reshape(len(texts), -1)[:, 0]]
