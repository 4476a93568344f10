"""The sample corpus for the demo model: transcripts (finetune) plus docs (retrieval)."""

from __future__ import annotations

from pathlib import Path

from finetune.errors import FinetuneError
from finetune.transcripts import ReadReport, read_transcripts
from retrieval.indexer import IndexReport, scan
from retrieval.loaders import LoadError, load


def demo_corpus(transcripts: Path, docs: Path) -> tuple[list[list[dict]], list[str]]:
    for path in (transcripts, docs):
        if not path.exists():
            raise FinetuneError(f"'{path}' does not exist")
    report = ReadReport()
    conversations = [c.messages for c in read_transcripts(transcripts, report)]
    documents = []
    for file in scan([docs], IndexReport()).values():
        try:
            documents.append(load(file.path, file.source).text)
        except LoadError:
            continue
    return conversations, documents
