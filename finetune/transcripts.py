"""Help-desk transcripts in three formats, read into chat records with user/assistant roles.

- JSONL: one conversation a line, ``{"id": ..., "messages": [{"role", "content"}, ...]}``.
- CSV ticket export: one message a row, columns ``ticket_id, timestamp, author_role,
  author_name, message``; rows of a ticket are kept in file order.
- Plain-text logs: conversations start with a ``### <id> ...`` line; turns are
  ``Speaker: text`` (User, Caller, Employee / Agent, Technician, Support); other lines
  continue the turn above.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

USER_ROLES = {"user", "customer", "employee", "caller", "requester", "staff"}
ASSISTANT_ROLES = {"assistant", "agent", "technician", "support", "tech", "analyst", "helpdesk"}
CSV_COLUMNS = {"ticket_id", "author_role", "message"}
_TURN = re.compile(r"^([A-Za-z][A-Za-z ]{1,20}):\s?(.*)$")


@dataclass
class Conversation:
    id: str
    messages: list[dict]
    origin: str  # file:line where it started
    names: set[str] = field(default_factory=set)  # people named in metadata (CSV author_name)


@dataclass
class ReadReport:
    conversations: int = 0
    problems: list[str] = field(default_factory=list)  # "file:line: what"


def normalize_role(role: str) -> str | None:
    role = role.strip().lower()
    if role in USER_ROLES:
        return "user"
    if role in ASSISTANT_ROLES:
        return "assistant"
    if role == "system":
        return "system"
    return None


def read_transcripts(path: Path, report: ReadReport | None = None) -> list[Conversation]:
    """All conversations in a file or a folder (recursively), in a stable order."""
    report = report if report is not None else ReadReport()
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out: list[Conversation] = []
    for file in files:
        reader = _READERS.get(file.suffix.lower())
        if reader is not None:
            out.extend(c for c in reader(file, report) if len(c.messages) >= 2)
    report.conversations = len(out)
    return out


def first_exchanges(path: Path, scrub: Callable[[str], str]) -> list[tuple[str, str, str]]:
    """(conversation id, the employee's first question, the agent's answers joined) of each
    conversation that has both, each text passed through ``scrub``."""
    out = []
    for conversation in read_transcripts(path):
        turns = [
            (normalize_role(m.get("role", "")), m.get("content", "")) for m in conversation.messages
        ]
        questions = [t for role, t in turns if role == "user" and t.strip()]
        answers = [t for role, t in turns if role == "assistant" and t.strip()]
        if questions and answers:
            out.append((conversation.id, scrub(questions[0]), scrub(" ".join(answers))))
    return out


def _jsonl(file: Path, report: ReadReport) -> Iterator[Conversation]:
    with file.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{file}:{number}"
            try:
                record = json.loads(line)
                messages = [_message(m) for m in record["messages"]]
            except (ValueError, KeyError, TypeError) as exc:
                report.problems.append(f"{where}: skipped ({exc})")
                continue
            yield Conversation(str(record.get("id", where)), messages, where)


def _message(raw: dict) -> dict:
    role = normalize_role(str(raw["role"]))
    if role is None:
        raise ValueError(f"unknown role '{raw['role']}'")
    return {"role": role, "content": str(raw["content"]).strip()}


def _csv(file: Path, report: ReadReport) -> Iterator[Conversation]:
    with file.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = CSV_COLUMNS - set(reader.fieldnames or [])
        if missing:
            report.problems.append(
                f"{file}:1: skipped file (missing columns: {', '.join(sorted(missing))})"
            )
            return
        tickets: dict[str, Conversation] = {}
        for row in reader:
            where = f"{file}:{reader.line_num}"
            role = normalize_role(row.get("author_role") or "")
            text = (row.get("message") or "").strip()
            if role is None:
                role_name = row.get("author_role")
                report.problems.append(f"{where}: skipped (unknown role '{role_name}')")
                continue
            if not text:
                continue
            ticket = row["ticket_id"]
            tickets.setdefault(ticket, Conversation(ticket, [], where))
            tickets[ticket].messages.append({"role": role, "content": text})
            if (row.get("author_name") or "").strip():
                tickets[ticket].names.add(row["author_name"].strip())
        yield from tickets.values()


def _text(file: Path, report: ReadReport) -> Iterator[Conversation]:
    current: Conversation | None = None
    with file.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            line = line.rstrip("\n")
            if line.startswith("### "):
                if current:
                    yield current
                current = Conversation(line[4:].split("|")[0].strip(), [], f"{file}:{number}")
                continue
            if current is None or not line.strip():
                continue
            match = _TURN.match(line)
            role = normalize_role(match.group(1)) if match else None
            if match and role:
                current.messages.append({"role": role, "content": match.group(2).strip()})
            elif match and not current.messages:
                report.problems.append(f"{file}:{number}: unknown speaker '{match.group(1)}'")
            elif current.messages:
                current.messages[-1]["content"] += "\n" + line.strip()
    if current:
        yield current


_READERS = {".jsonl": _jsonl, ".csv": _csv, ".txt": _text, ".log": _text}
