"""Read company documents into plain text with a title: Markdown, text, HTML, PDF, DOCX."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"}
# Bumped whenever the text extracted from a file changes (2: DocBook notes kept, DocBook
# navigation dropped); the indexer then re-embeds every file once.
LOADER_VERSION = 2


class LoadError(Exception):
    """This one file cannot be read; the run skips it and goes on."""


@dataclass
class Document:
    source: str  # path relative to the docs root, with forward slashes
    title: str
    text: str  # Markdown-ish text: headings kept as '#' lines
    pages: list[str] = field(default_factory=list)  # PDF only: text of each page


def load(path: Path, source: str) -> Document:
    """The document, or LoadError: a parser's own surprise never escapes as anything else."""
    try:
        return _load(path, source)
    except LoadError:
        raise
    except Exception as exc:
        raise LoadError(f"unreadable ({type(exc).__name__}: {exc})") from None


def _load(path: Path, source: str) -> Document:
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        return _load_pdf(path, source)
    if suffix == ".docx":
        return _load_docx(path, source)
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


BOILERPLATE_TAGS = ["script", "style", "nav", "header", "footer", "noscript", "form"]
# class or id words that mark navigation and page furniture, not content
BOILERPLATE = re.compile(
    r"(?:^|[-_ ])(?:nav|navbar|navheader|navfooter|navigation|docnav|menu|breadcrumbs?|footer|"
    r"cookies?|"
    r"skip|toc|pager|pagination)(?:$|[-_ ])",
    re.IGNORECASE,
)
# Words and tags that mark a site's link column as often as a manual's boxed note: DocBook
# puts every TIP, NOTE and CULTURE box of the Debian handbook (97 of its 127 pages) in a
# <div class="sidebar">. Such an element is furniture only when it is mostly links.
AMBIGUOUS = re.compile(r"(?:^|[-_ ])(?:sidebar|aside)(?:$|[-_ ])", re.IGNORECASE)
BLOCKS = {
    "address", "article", "blockquote", "caption", "dd", "div", "dl", "dt", "figcaption",
    "figure", "li", "main", "ol", "p", "pre", "section", "table", "tbody", "thead", "tr", "ul",
}  # fmt: skip


def _html_to_text(raw: str) -> tuple[str | None, str]:
    """Visible text of the main content, headings turned into Markdown '#' lines.

    Every text node counts, whatever tag holds it (DocBook and CMS pages put paragraphs
    in <div>s); navigation, scripts and page furniture are dropped first.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else None
    for tag in soup(BOILERPLATE_TAGS):
        tag.decompose()
    for tag in soup.find_all(True):
        if tag.decomposed or tag.attrs is None:
            continue
        marks = " ".join([*tag.get("class", []), tag.get("id", "") or "", tag.get("role", "")])
        furniture = BOILERPLATE.search(marks) or tag.get("aria-hidden") == "true"
        if furniture or ((tag.name == "aside" or AMBIGUOUS.search(marks)) and _mostly_links(tag)):
            tag.decompose()
    root = soup.find("main") or soup.find("article") or soup.body or soup
    out: list[str] = []
    _walk(root, out)
    lines = [" ".join(line.split()) for line in "".join(out).splitlines()]
    text = "\n".join(line for line in lines if line and line not in {"-", "|"})
    h1 = root.find("h1")
    return (title or (h1.get_text(" ", strip=True) if h1 else None)), text.strip()


def _mostly_links(tag) -> bool:
    """Navigation, not a note: little text, or most of it inside links."""
    text = len(tag.get_text(" ", strip=True))
    linked = sum(len(a.get_text(" ", strip=True)) for a in tag.find_all("a"))
    return text < 40 or linked > 0.5 * text


def _walk(node, out: list[str], pre: bool = False) -> None:
    from bs4 import Comment, NavigableString, Tag

    for child in node.children:
        if isinstance(child, Comment):
            continue
        if isinstance(child, NavigableString):
            # HTML collapses whitespace, newlines included, except inside <pre>
            out.append(str(child) if pre else re.sub(r"\s+", " ", str(child)))
            continue
        if not isinstance(child, Tag):
            continue
        name = child.name
        if name in {"h1", "h2", "h3", "h4", "h5", "h6"}:
            level = min(int(name[1]), 4)
            out.append("\n\n" + "#" * level + " " + child.get_text(" ", strip=True) + "\n")
        elif name == "br":
            out.append("\n")
        elif name == "li":
            out.append("\n- ")
            _walk(child, out, pre)
            out.append("\n")
        elif name in {"td", "th"}:
            _walk(child, out, pre)
            out.append(" | ")
        elif name in BLOCKS:
            out.append("\n")
            _walk(child, out, pre or name == "pre")
            out.append("\n")
        else:
            _walk(child, out, pre)


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


def _load_docx(path: Path, source: str) -> Document:
    """Paragraphs and tables in document order; Word's heading styles become '#' lines."""
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable DOCX ({exc})") from None
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(dict.fromkeys(cells)))  # merged cells repeat
            continue
        if not isinstance(block, Paragraph):
            continue
        text = " ".join(block.text.split())
        if not text:
            continue
        style = (block.style.name if block.style is not None else "") or ""
        level = _heading_level(style)
        if level:
            lines.append("\n" + "#" * level + " " + text)
        elif style.startswith("List"):
            lines.append("- " + text)
        else:
            lines.append(text)
    text = "\n".join(lines).strip()
    if not text:
        raise LoadError("empty")
    title = (document.core_properties.title or "").strip() or _first_heading(text)
    return Document(source, title or _title_from_name(path), text)


def _heading_level(style: str) -> int:
    if style == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style)
    return min(int(match.group(1)), 4) if match else 0
