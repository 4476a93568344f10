"""Read company documents into plain text with a title: Markdown, text, HTML and PDF."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"}


class LoadError(Exception):
    """This one file cannot be read; the run skips it and goes on."""


@dataclass
class Document:
    source: str  # path relative to the docs root, with forward slashes
    title: str
    text: str  # Markdown-ish text: headings kept as '#' lines
    pages: list[str] = field(default_factory=list)  # PDF only: text of each page


def load(path: Path, source: str) -> Document:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _load_pdf(path, source)
    try:
        raw = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise LoadError("not UTF-8 text") from None
    if "\x00" in raw:
        raise LoadError("binary content")
    if suffix in {".html", ".htm"}:
        title, text = _html_to_text(raw)
    else:
        text = raw
        title = _first_heading(raw)
    if not text.strip():
        raise LoadError("empty")
    return Document(source, title or _title_from_name(path), text)


def _first_heading(text: str) -> str | None:
    match = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _title_from_name(path: Path) -> str:
    return path.stem.replace("-", " ").replace("_", " ").strip().capitalize()


def _html_to_text(raw: str) -> tuple[str | None, str]:
    """Visible text of the main content, headings turned into Markdown '#' lines."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(["script", "style", "nav", "header", "footer", "aside", "noscript", "form"]):
        tag.decompose()
    title = soup.title.get_text(strip=True) if soup.title else None
    root = soup.find("main") or soup.find("article") or soup.body or soup
    lines: list[str] = []
    for el in root.find_all(["h1", "h2", "h3", "h4", "p", "li", "pre", "td", "th", "dt", "dd"]):
        if el.find_parent(["li", "td", "th", "dd"]) and el.name in {"p", "li"}:
            continue
        text = " ".join(el.get_text(" ", strip=True).split())
        if not text:
            continue
        if el.name in {"h1", "h2", "h3", "h4"}:
            lines.append("\n" + "#" * int(el.name[1]) + " " + text)
        elif el.name == "li":
            lines.append("- " + text)
        else:
            lines.append(text)
    h1 = root.find("h1")
    return (title or (h1.get_text(strip=True) if h1 else None)), "\n".join(lines).strip()


def _load_pdf(path: Path, source: str) -> Document:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        title = (reader.metadata.title if reader.metadata else None) or None
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({exc})") from None
    if not any(pages):
        raise LoadError("PDF has no extractable text")
    return Document(source, title or _title_from_name(path), "\n\n".join(pages), pages)
