"""Delivers the outbox (``EscalationStore``) to the ticket connectors, in a thread.

Each due escalation goes to each of its connectors that does not have it yet. A connector
that created the ticket is recorded at once and never sent it again; one that refused it
for good (a 4xx, a refused SMTP login) is recorded failed; one that may succeed later (5xx,
timeout, no connection) makes the escalation wait and try again, the wait doubling from
``retry_initial_s`` up to ``retry_max_s`` with random jitter (so many escalations queued
while a receiver was down do not all come back at the same instant) and never shorter than
a receiver's Retry-After. When a connector that failed delivers again, every escalation
waiting out its backoff is due at once (the backlog of an outage goes as soon as the
receiver is back). After ``give_up_s`` from its creation an escalation is given up:
state ``failed``, the last error as its reason. At start every queued escalation is due.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence

from assistant.escalation.store import EscalationStore
from assistant.escalation.tickets import Connector, DeliveryError

log = logging.getLogger("assistant")

DONE = ("sent", "failed")


def backoff(attempt: int, initial_s: float, max_s: float, rand: Callable[[], float]) -> float:
    """Exponential backoff with equal jitter: half the step fixed, half random."""
    step = min(max_s, initial_s * 2 ** min(attempt - 1, 60))
    return step / 2 + rand() * step / 2


class EscalationWorker:
    def __init__(
        self,
        store: EscalationStore,
        connectors: Sequence[Connector],
        *,
        retry_initial_s: float = 5.0,
        retry_max_s: float = 600.0,
        give_up_s: float = 86400.0,
        observe: Callable[[str, str], None] = lambda connector, outcome: None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.connectors = {c.name: c for c in connectors}
        self.retry_initial_s, self.retry_max_s = retry_initial_s, retry_max_s
        self.give_up_s = give_up_s
        self.observe = observe  # (connector, "sent" | "retry" | "failed") per attempt
        self.rand = rand
        self._failing: set[str] = set()  # connectors whose last attempt failed, retryably
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        resumed = self.store.make_all_due()
        if resumed:
            log.info("escalations: %d queued from before the restart are due now", resumed)
        self._thread = threading.Thread(target=self._loop, name="escalations", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A new escalation is waiting."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the delivery in progress (bounded by the connectors' timeout) and stop;
        what is still queued stays queued for the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        for connector in self.connectors.values():
            try:
                connector.close()
            except Exception:
                log.exception("closing the %s connector failed", connector.name)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_due()
                next_at = self.store.next_due_at()
            except Exception:  # the outbox must outlive any one bad row or database hiccup
                log.exception("the escalation worker failed; trying again shortly")
                next_at = time.time() + 1.0
            wait = 60.0 if next_at is None else min(60.0, max(0.0, next_at - time.time()))
            self._wake.wait(wait)
            self._wake.clear()

    def run_due(self) -> int:
        """Deliver every escalation that is due now; how many were tried."""
        tried = 0
        # a connector that just failed in a retryable way (down, timing out) is not called
        # again in this pass: with a ticket system down, each pass waits on it once, not
        # once per queued escalation
        down: dict[str, DeliveryError] = {}
        while not self._stop.is_set():
            batch = self.store.claim()
            if not batch:
                break
            for row in batch:
                if self._stop.is_set():
                    break
                self.deliver(row, down)
                tried += 1
        return tried

    def deliver(self, row: dict, down: dict[str, DeliveryError] | None = None) -> str:
        """One attempt at one escalation; returns its state afterwards. ``down``: connectors
        that failed a moment ago (not called; updated with those that fail now)."""
        down = {} if down is None else down
        attempts = row["attempts"] + 1
        deliveries = dict(row["deliveries"])
        waiting: list[tuple[str, DeliveryError]] = []
        for name in row["connectors"]:
            if (deliveries.get(name) or {}).get("state") in DONE:
                continue
            skipped = name in down
            result = down[name] if skipped else self._one(name, row)
            if isinstance(result, DeliveryError):
                down[name] = result
                waiting.append((name, result))
                if not skipped:
                    self._failing.add(name)
                    self.observe(name, "retry")
                continue
            if result["state"] == "sent" and name in self._failing:
                self._failing.discard(name)  # back: what waits for it need not wait longer
                hurried = self.store.hurry()
                if hurried:
                    log.info("escalations: %s answers again; %d waiting are due now", name,
                             hurried)  # fmt: skip
            deliveries[name] = result
            self.store.record_delivery(row["id"], name, result)
            self.observe(name, result["state"])
        now = time.time()
        if waiting:
            reason = "; ".join(f"{name}: {exc}" for name, exc in waiting)
            since = row.get("queued_at") or row["created_at"]  # an admin's re-queue restarts it
            deadline = since + self.give_up_s
            if now < deadline:
                delay = backoff(attempts, self.retry_initial_s, self.retry_max_s, self.rand)
                asked = max((e.retry_after or 0.0) for _, e in waiting)
                delay = max(delay, min(asked, self.retry_max_s))
                self.store.retry_later(row["id"], attempts, min(now + delay, deadline), reason)
                return "queued"
            took = now - since
            for name, exc in waiting:
                given_up = {"state": "failed", "reason": f"gave up after {attempts} attempts "
                            f"in {took:.0f} s; last: {exc}"}  # fmt: skip
                deliveries[name] = given_up
                self.store.record_delivery(row["id"], name, given_up)
        failures = [f"{n}: {d['reason']}" for n, d in deliveries.items() if d["state"] == "failed"]
        state = "failed" if failures else "sent"
        self.store.finish(row["id"], state, attempts, "; ".join(failures) or None)
        if failures:
            log.warning("escalation %s failed: %s", row["id"], "; ".join(failures))
        return state

    def _one(self, name: str, row: dict) -> dict | DeliveryError:
        connector = self.connectors.get(name)
        if connector is None:
            return {"state": "failed", "reason": f"the '{name}' connector is not configured "
                    "on this server any more"}  # fmt: skip
        try:
            reference = connector.deliver(row["ticket"], row["idempotency_key"])
        except DeliveryError as exc:
            if exc.retry:
                return exc
            return {"state": "failed", "reason": str(exc)}
        except Exception as exc:  # a bug in a connector: logged, and retried like an outage
            log.exception("the %s connector failed unexpectedly", name)
            return DeliveryError(f"unexpected error: {type(exc).__name__}: {exc}", retry=True)
        return {"state": "sent", "reference": reference, "at": time.time()}


class EscalationStates:
    """Prometheus collector: ``assistant_escalations{state}`` read from the outbox at each
    scrape, so the numbers are right across restarts and several gateway processes."""

    def __init__(self, store: EscalationStore) -> None:
        self.store = store

    def describe(self):
        return []

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "assistant_escalations", "Escalations in the outbox by state.", labels=["state"]
        )
        for state, count in self.store.counts().items():
            family.add_metric([state], count)
        yield family


def register_metrics(registry, store: EscalationStore) -> Callable[[str, str], None]:
    """Add the outbox's metrics to ``registry``; returns the worker's ``observe``."""
    from prometheus_client import Counter

    registry.register(EscalationStates(store))
    attempts = Counter(
        "assistant_escalation_deliveries",
        "Delivery attempts by connector and outcome (sent, retry, failed).",
        ["connector", "outcome"],
        registry=registry,
    )
    return lambda connector, outcome: attempts.labels(connector, outcome).inc()
