"""Questions written by a served instruct model for the docs' passages (GPL-style, Wang et
al. 2022): for each passage, the questions an employee would type that it answers. They are
training pairs for ``adapt_embedder`` where no transcripts cover a document.

The model is asked through a plain ``ask(prompt) -> reply`` callable (the caller wires it to
an OpenAI-compatible server), so this module knows nothing of HTTP. Raw replies are cached
by the passage's text in a JSONL file: an interrupted run resumes, a rerun asks nothing again.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from pathlib import Path

PROMPT = (
    "Here is a passage from a company's IT documentation.\n\n"
    "PASSAGE:\n{passage}\n\n"
    "Write {n} different questions that an employee might type into the IT help-desk chat "
    "and that this passage answers. Write them as people really type: their problem or goal "
    "in their own words, not the passage's title. One question per line, nothing else."
)
MIN_WORDS = 3
MAX_WORDS = 40
MAX_PASSAGE_CHARS = 1500  # about 350 tokens: the prompt stays short for a CPU engine
_NUMBERING = re.compile(r"^\s*(?:[-*•]|\d+[.)]|Q\d*[:.)])\s*", re.IGNORECASE)


def parse_questions(reply: str, n: int) -> list[str]:
    """The first ``n`` distinct questions of a reply: numbering, bullets and quotes stripped;
    a line with a question mark cut after it (the model's "Q? > heading" or "Q? Answer...");
    preambles ("Here are ...:"), answers ("Answer: ..."), statements ending in a full stop,
    lines of fewer than MIN_WORDS or more than MAX_WORDS words dropped."""
    found: list[str] = []
    seen: set[str] = set()
    for line in reply.splitlines():
        text = _NUMBERING.sub("", line).strip().strip("\"'“”*").strip()
        if "?" in text:
            text = text[: text.index("?") + 1]
        elif text.endswith((".", ":", "!")) or text.lower().startswith("answer"):
            continue
        words = len(text.split())
        if words < MIN_WORDS or words > MAX_WORDS:
            continue
        if text.lower() not in seen:
            seen.add(text.lower())
            found.append(text)
        if len(found) == n:
            break
    return found


def _key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def write_questions(
    passages: list[str],
    ask: Callable[[str], str],
    *,
    per_passage: int = 2,
    limit: int | None = None,
    seed: int = 0,
    cache: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[tuple[int, str]]:
    """(passage index, question) for ``limit`` passages (a seeded sample; all if None).

    A reply with no usable question is kept as such (the model had nothing to ask); an
    error of ``ask`` stops the run as it is, and what was written so far stays in
    ``cache``."""
    chosen = list(range(len(passages)))
    if limit is not None and limit < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, limit))
    known = _read_cache(cache)
    out: list[tuple[int, str]] = []
    with _appender(cache) as append:
        for done, index in enumerate(chosen, start=1):
            text = passages[index][:MAX_PASSAGE_CHARS]
            key = f"{_key(text)}:{per_passage}"
            if key not in known:
                known[key] = ask(PROMPT.format(passage=text, n=per_passage))
                append({"key": key, "reply": known[key]})
            out += [(index, q) for q in parse_questions(known[key], per_passage)]
            if progress:
                progress(done, len(chosen))
    return out


def _read_cache(cache: Path | None) -> dict[str, str]:
    """Key -> the model's raw reply (parsed again on every run, so a better parser needs
    no new replies)."""
    if cache is None or not cache.exists():
        return {}
    known = {}
    for line in cache.read_text().splitlines():
        try:
            row = json.loads(line)
            known[row["key"]] = str(row["reply"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by an interrupted run: asked again
    return known


class _appender:
    """Appends one JSON line per reply and flushes it, so nothing asked is lost."""

    def __init__(self, cache: Path | None) -> None:
        self.cache, self.file = cache, None

    def __enter__(self) -> Callable[[dict], None]:
        if self.cache is not None:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.file = self.cache.open("a+")
            if self.file.tell() > 0:
                self.file.seek(self.file.tell() - 1)
                if self.file.read(1) != "\n":  # a line cut short by a killed run
                    self.file.write("\n")
        return self._append

    def _append(self, row: dict) -> None:
        if self.file is not None:
            self.file.write(json.dumps(row, ensure_ascii=False) + "\n")
            self.file.flush()

    def __exit__(self, *exc) -> None:
        if self.file is not None:
            self.file.close()
