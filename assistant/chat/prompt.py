"""Grounding a conversation in retrieved passages: the search query and the prompt."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from retrieval.text import passage_body

TEMPLATES = Path(__file__).parent / "templates" / "grounding.yaml"
FOLLOW_UP_WORDS = 12  # a last question this short is read together with the one before


class Passage(Protocol):
    rank: int
    source: str
    title: str
    section: str
    page: int | None
    text: str


class Index(Protocol):
    """The docs index as the gateway sees it (``retrieval.retriever.Retriever``)."""

    def search(
        self,
        query: str,
        k: int = 4,
        collection: str | None = None,
        groups: frozenset[str] | None = None,
    ) -> list:
        """Passages from documents ``groups`` may read (``None``: every document)."""
        ...

    def readable(
        self, source: str, groups: frozenset[str] | None, collection: str | None = None
    ) -> bool:
        """Whether ``source`` is indexed and ``groups`` may read it."""
        ...


def text_of(content: Any) -> str:
    """OpenAI message content (a string or a list of parts) as plain text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def search_query(messages: list[dict]) -> str:
    """The last user turn, with the previous one when it looks like a follow-up.

    "and on Mac?" alone finds nothing; with "how do I map the S: drive" before it, it does.
    """
    users = [text_of(m.get("content")).strip() for m in messages if m.get("role") == "user"]
    users = [u for u in users if u]
    if not users:
        return ""
    last = users[-1]
    if len(users) > 1 and len(last.split()) < FOLLOW_UP_WORDS:
        return f"{users[-2]}\n{last}"
    return last


@dataclass(frozen=True)
class PromptBuilder:
    grounded: Any  # langchain PromptTemplate
    ungrounded: Any
    company: str
    declined_text: str = ""  # the gateway's own reply when nothing relevant is found

    @classmethod
    def from_file(cls, path: Path = TEMPLATES, company: str = "the company") -> PromptBuilder:
        import yaml
        from langchain_core.prompts import PromptTemplate

        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        return cls(
            grounded=PromptTemplate.from_template(data["grounded"]),
            ungrounded=PromptTemplate.from_template(data["ungrounded"]),
            company=company,
            declined_text=" ".join(data["declined"].format(company=company).split()),
        )

    def system_prompt(self, passages: list[Passage]) -> str:
        if not passages:
            return self.ungrounded.format(company=self.company).strip()
        return self.grounded.format(company=self.company, sources=format_sources(passages)).strip()

    def apply(self, messages: list[dict], passages: list[Passage]) -> list[dict]:
        """Messages with our system prompt first, merged with the caller's own system text."""
        system = self.system_prompt(passages)
        rest = list(messages)
        if rest and rest[0].get("role") in {"system", "developer"}:
            system += "\n\n" + text_of(rest.pop(0).get("content"))
        return [{"role": "system", "content": system}, *rest]


def format_sources(passages: list[Passage]) -> str:
    blocks = []
    for p in passages:
        where = p.source + (f", page {p.page}" if p.page else "")
        # the index's section paths start with the title: "Title > Heading"
        heading = p.title if not p.section or p.section == p.title else p.section
        if not heading.startswith(p.title):
            heading = f"{p.title} > {heading}"
        blocks.append(f"[{p.rank}] {heading} ({where})\n{passage_body(p.text)}")
    return "\n\n".join(blocks)
