"""Analytics for the IT team: what was asked, how much the docs answered, what people
thought of it, what went to a person, and which questions the docs fail.

A report covers whole days, ``from`` to ``to`` inclusive, in the ``analytics_timezone``.
It reads the server's own records (``AnalyticsSources``: answer log, feedback store,
escalation outbox), so the server (``GET /v1/admin/analytics``) and ``assistant report``
(no server needed) give the same numbers:

- questions per day: answers the server gave (each chat completion is one question);
- grounded share: answers for which retrieval found passages, among those with retrieval
  on (requests that turned retrieval off are counted apart, as ``retrieval_off``);
- thumbs up/down: ratings given in the period;
- escalations: tickets asked for in the period, by delivery state;
- deflection rate: the share of the period's conversations for which no ticket was asked
  for (an escalation names its conversation, or its transcript is matched to one);
- top sources: the documents cited by most answers;
- content gaps (``assistant.analytics.content_gaps``): the questions not grounded, disliked or
  escalated, clustered, each cluster with the document nearest to it.

Questions are read from the answer log's scrubbed ``question`` column; text from older rows,
ratings and tickets is scrubbed (``finetune.pii``) here before it goes anywhere.
History older than ``history_days`` is deleted, and with it what analytics can report on.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assistant.analytics.content_gaps import GapFinder, GapQuestion
from assistant.analytics.sources import AnalyticsSources
from assistant.analytics.vector_cache import VectorCache
from assistant.errors import APIError
from finetune.pii import Scrubber

MAX_DAYS = 366
TOP_SOURCES = 10
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _bad(message: str) -> APIError:
    return APIError(400, message, code="invalid_date_range")


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    zone: ZoneInfo

    @property
    def start(self) -> float:
        return datetime.combine(self.first, time(), self.zone).timestamp()

    @property
    def end(self) -> float:
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone).timestamp()

    def day(self, timestamp: float) -> str:
        return datetime.fromtimestamp(timestamp, self.zone).date().isoformat()

    def days(self) -> list[str]:
        count = (self.last - self.first).days + 1
        return [(self.first + timedelta(days=n)).isoformat() for n in range(count)]


def parse_period(
    first: str | None, last: str | None, zone: str = "UTC", today: date | None = None
) -> Period:
    """``from``/``to`` as YYYY-MM-DD (``to`` default today, ``from`` default six days before
    ``to``); a 400 ``invalid_date_range`` for anything else."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise APIError(500, f"analytics_timezone '{zone}' is not a known time zone") from None
    today = today or datetime.now(tz).date()

    def parsed(value: str | None, name: str) -> date | None:
        if value is None or value == "":
            return None
        if not _DATE.fullmatch(value):
            raise _bad(f"'{name}' must be a date as YYYY-MM-DD, not '{value[:40]}'")
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise _bad(f"'{name}' is not a real date: '{value}'") from None
        if not 1970 <= day.year <= 9000:
            raise _bad(f"'{name}' must be a date between 1970 and 9000, not '{value}'")
        return day

    end = parsed(last, "to") or today
    start = parsed(first, "from") or end - timedelta(days=6)
    if start > end:
        raise _bad(f"'from' ({start}) is after 'to' ({end})")
    if (end - start).days + 1 > MAX_DAYS:
        raise _bad(f"at most {MAX_DAYS} days per report ({start} to {end} is longer)")
    return Period(start, end, tz)


@dataclass
class _Tally:
    """What one report adds up while it reads the period's records."""

    period: Period
    daily: dict[str, Counter] = field(init=False)
    cited: Counter = field(default_factory=Counter)  # source -> answers citing it
    titles: dict[str, str] = field(default_factory=dict)
    gaps: dict[tuple, GapQuestion] = field(default_factory=dict)  # one per answer (or record)
    escalated: set[str] = field(default_factory=set)  # conversations that got a ticket

    def __post_init__(self) -> None:
        self.daily = {day: Counter() for day in self.period.days()}


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class AnalyticsService:
    def __init__(
        self,
        sources,
        gaps: GapFinder,
        *,
        zone: str = "UTC",
        scrub: Callable[[str], str] | None = None,
        before: Callable[[], None] = lambda: None,
    ) -> None:
        """``sources``: an ``AnalyticsSources``; ``scrub``: removes personal data (default
        ``finetune.pii.Scrubber``); ``before``: run first (the server's answer log writes
        in the background: its ``flush``)."""
        self.sources = sources
        self.gaps = gaps
        self.zone = zone
        self._scrub = scrub
        self.before = before

    def scrub(self, text: str) -> str:
        if self._scrub is None:
            self._scrub = Scrubber().scrub
        return self._scrub(text)

    def report(self, first: str | None = None, last: str | None = None, clusters: int = 20) -> dict:
        period = parse_period(first, last, self.zone)
        if not 1 <= clusters <= 500:
            raise APIError(400, "'clusters' must be between 1 and 500")
        self.before()
        tally = _Tally(period)
        answers = self.sources.answers(period.start, period.end)
        feedback = self.sources.feedback(period.start, period.end)
        escalations = self.sources.escalations(period.start, period.end)
        self._count_answers(tally, answers)
        self._count_ratings(tally, feedback)
        self._count_escalations(tally, escalations)
        gaps = self.gaps.report(list(tally.gaps.values()), clusters)
        return self._assemble(tally, answers, feedback, escalations, gaps)

    def _count_answers(self, tally: _Tally, answers: list[dict]) -> None:
        state = {True: "grounded", False: "not_grounded", None: "retrieval_off"}
        for answer in answers:
            day = tally.daily[tally.period.day(answer["created_at"])]
            day["questions"] += 1
            day[state[answer["grounded"]]] += 1
            if answer["grounded"] is False:
                self._gap(tally.gaps, answer, "not_grounded")
            for source in answer["sources"]:
                name = source.get("source")
                if name:
                    tally.titles.setdefault(name, source.get("title") or name)
            tally.cited.update({s.get("source") for s in answer["sources"] if s.get("source")})

    def _count_ratings(self, tally: _Tally, feedback: list[dict]) -> None:
        """Dislikes are content gaps, on the rated answer's scrubbed question."""
        rated = self.sources.answers_by_id(
            [(f["completion_id"], f["user"]) for f in feedback if f["completion_id"]]
        )
        for rating in feedback:
            day = tally.daily[tally.period.day(rating["created_at"])]
            day["liked" if rating["rating"] == 1 else "disliked"] += 1
            if rating["rating"] == 1:
                continue
            answer = rated.get((rating["completion_id"], rating["user"]))
            if answer is None and not rating["completion_id"]:  # a rating from before the id
                answer = self.sources.answer_matching(rating["user"], rating["answer"])
            if answer is not None:
                self._gap(tally.gaps, answer, "disliked")
            else:  # its answer is gone from the history
                question = self.scrub(rating["raw_question"])
                tally.gaps[("feedback", rating["id"])] = GapQuestion(question, {"disliked"})

    def _count_escalations(self, tally: _Tally, escalations: list[dict]) -> None:
        """An escalation ends its conversation with a ticket; its last question is a gap."""
        for escalation in escalations:
            tally.daily[tally.period.day(escalation["created_at"])]["escalations"] += 1
            conversation = escalation["conversation"]
            answer = self.sources.last_answer(
                escalation["user"], escalation["created_at"], conversation,
                None if conversation else escalation["transcript"],
            )  # fmt: skip
            if answer is not None:
                tally.escalated.add(answer["conversation"])
                self._gap(tally.gaps, answer, "escalated")
                continue
            if conversation:
                tally.escalated.add(conversation)
            question = self.scrub(escalation["raw_question"])
            tally.gaps[("escalation", escalation["id"])] = GapQuestion(question, {"escalated"})

    def _gap(self, gaps: dict, answer: dict, reason: str) -> None:
        key = (answer["id"], answer["user"])
        if key not in gaps:
            question = answer["question"]
            if question is None:  # a row from before the scrubbed column
                question = self.scrub(answer["raw_question"] or "")
            gaps[key] = GapQuestion(question)
        gaps[key].reasons.add(reason)

    def _assemble(self, tally: _Tally, answers, feedback, escalations, content_gaps) -> dict:
        total = Counter()
        for day in tally.daily.values():
            total.update(day)
        conversations = {a["conversation"] for a in answers}
        ended_with_ticket = conversations & tally.escalated
        states = Counter(e["state"] for e in escalations)
        top = sorted(tally.cited.items(), key=lambda item: (-item[1], item[0]))[:TOP_SOURCES]
        corrected = sum(1 for f in feedback if f["corrected"])
        columns = ("questions", "grounded", "not_grounded", "retrieval_off", "liked",
                   "disliked", "escalations")  # fmt: skip
        return {
            "object": "analytics",
            "from": tally.period.first.isoformat(),
            "to": tally.period.last.isoformat(),
            "timezone": tally.period.zone.key,
            "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "totals": {
                "questions": total["questions"],
                "conversations": len(conversations),
                "grounded": total["grounded"],
                "not_grounded": total["not_grounded"],
                "retrieval_off": total["retrieval_off"],
                "grounded_share": _share(
                    total["grounded"], total["grounded"] + total["not_grounded"]
                ),
                "liked": total["liked"],
                "disliked": total["disliked"],
                "corrected": corrected,
                "escalations": len(escalations),
                "escalations_queued": states["queued"],
                "escalations_sent": states["sent"],
                "escalations_failed": states["failed"],
                "escalated_conversations": len(ended_with_ticket),
                "deflection_rate": _share(
                    len(conversations) - len(ended_with_ticket), len(conversations)
                ),
            },
            "daily": [
                {"date": d, **{c: day[c] for c in columns}} for d, day in tally.daily.items()
            ],
            "top_sources": [
                {"source": s, "title": tally.titles.get(s) or s, "answers": n} for s, n in top
            ],
            "content_gaps": content_gaps,
        }


def make_analytics(settings, sources=None, *, embedder=None, index=None,
                   before: Callable[[], None] = lambda: None) -> AnalyticsService:  # fmt: skip
    """The analytics of ``settings``: over ``sources`` (default: the files in HOME), gaps
    clustered with ``embedder`` and matched to documents in ``index`` (either may be None),
    vectors cached in HOME/analytics-cache.sqlite."""
    cache = VectorCache(settings.analytics_cache_path, keep_days=settings.history_days or 366)
    gaps = GapFinder(
        embedder,
        index,
        cache if embedder is not None else None,
        threshold=settings.analytics_gap_threshold,
        write_below=settings.retrieval_min_top_score,  # the gate below which answers decline
    )
    return AnalyticsService(
        sources or AnalyticsSources.from_home(settings.home),
        gaps,
        zone=settings.analytics_timezone,
        before=before,
    )
