"""Structure-aware splitting: Markdown headings first, then size with overlap in tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from retrieval.loaders import Document

HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]


@dataclass
class Chunk:
    id: str
    text: str
    source: str
    title: str
    section: str  # heading path, e.g. "VPN > Troubleshooting"
    page: int | None
    content_hash: str  # hash of the whole file this chunk came from

    def embedding_text(self, headers: bool) -> str:
        """What is embedded: with ``headers``, the document title and heading path first
        (contextual chunk headers), so a passage that never names its topic still has it."""
        if not headers:
            return self.text
        return "\n".join(p for p in (self.title, self.section, self.text) if p)

    def metadata(self) -> dict:
        meta = {
            "source": self.source,
            "title": self.title,
            "section": self.section,
            "content_hash": self.content_hash,
        }
        if self.page is not None:
            meta["page"] = self.page
        return meta


class Chunker:
    """Splits documents into chunks no longer than ``chunk_tokens`` embedding tokens."""

    def __init__(
        self, count_tokens: Callable[[str], int], chunk_tokens: int = 200, overlap_tokens: int = 30
    ) -> None:
        from langchain_text_splitters import (
            MarkdownHeaderTextSplitter,
            RecursiveCharacterTextSplitter,
        )

        self._headers = MarkdownHeaderTextSplitter(HEADERS, strip_headers=False)
        self._sizer = RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=min(overlap_tokens, chunk_tokens // 2),
            length_function=count_tokens,
            separators=["\n\n", "\n", ". ", " ", ""],
        )

    def split(self, doc: Document, content_hash: str) -> list[Chunk]:
        pieces: list[tuple[str, str, int | None]] = []
        if doc.pages:
            for number, page in enumerate(doc.pages, start=1):
                pieces += [(text, "", number) for text in self._sizer.split_text(page)]
        else:
            for section in self._headers.split_text(doc.text):
                path = " > ".join(
                    section.metadata[key] for _, key in HEADERS if key in section.metadata
                )
                pieces += [
                    (text, path, None) for text in self._sizer.split_text(section.page_content)
                ]
        chunks = []
        for i, (text, section, page) in enumerate(p for p in pieces if p[0].strip()):
            chunk_id = hashlib.sha1(f"{doc.source}\x00{content_hash}\x00{i}".encode()).hexdigest()
            chunks.append(
                Chunk(chunk_id, text.strip(), doc.source, doc.title, section, page, content_hash)
            )
        return chunks
