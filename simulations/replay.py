"""Replay: a recorded day (JSON lines) re-run under another policy or cost weights.

The log's first line is a header holding the whole generated day (orders, workers, every
pre-drawn duration and patience) and the policy; every later line is one event
(``{"t": epoch s, "e": kind, ...}``): release, match, offer, decline, timeout, claim,
grab_open, assign, start, done, cancel, escalate, shift_start, shift_end, plan, book
(a booking reserved, with its slot), planned/unplanned (orders entering and leaving day
plans), refuse, sick, overrun, repair (visits moved and dropped), end. The
recorded run's KPIs are rebuilt from the events alone (:func:`result_from_log`), so the
log is a complete record; :func:`replay` runs the same day under a new policy and
:func:`compare` puts both KPI sets side by side. Worker answers are keyed by (seed,
order, worker), so the replay meets the same behaviour wherever it makes the same offer.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulations.city import CityDay, ScenarioError
from simulations.engine import OrderOutcome, Policy, SimResult, simulate
from simulations.kpi import kpis


class ReplayError(ScenarioError):
    """A replay log is missing, truncated or malformed; the message names the line."""


@dataclass(frozen=True, eq=False)
class Recording:
    """A parsed log: the day, the policy it ran under and the path it came from."""

    city: CityDay
    policy: Policy
    path: Path


def _lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield i, json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReplayError(f"not JSON: {exc.msg}", "event", i, str(path)) from None


def load(path: str | Path) -> Recording:
    """Read a log's header (the day and the policy)."""
    p = Path(path)
    for line_no, first in _lines(p):
        if first.get("e") != "header":
            raise ReplayError("the first event must be the header", "e", line_no, str(p))
        try:
            city = CityDay.from_json(first["city"])
            policy = Policy.from_dict(first["policy"], where="policy")
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(f"bad header: {exc}", "header", line_no, str(p)) from None
        return Recording(city=city, policy=policy, path=p)
    raise ReplayError("empty log", "header", None, str(p))


class _Tally:
    """The recorded run's per-order and per-worker figures, built up event by event."""

    def __init__(self, c: CityDay) -> None:
        n, m = c.n_orders, c.n_workers
        self.c = c
        self.o_row = {int(o): i for i, o in enumerate(c.order_ids)}
        self.w_row = {int(w): i for i, w in enumerate(c.worker_ids)}
        self.state = np.full(n, OrderOutcome.UNSERVED, dtype=np.int8)
        self.assigned_at = np.full(n, -1, dtype=np.int64)
        self.start_s = np.full(n, -1, dtype=np.int64)
        self.end_s = np.full(n, -1, dtype=np.int64)
        self.worker = np.full(n, -1, dtype=np.int64)
        self.travel_s = np.zeros(n)
        self.travel_m = np.zeros(n)
        self.offers = np.zeros(n, dtype=np.int64)
        self.declines = np.zeros(n, dtype=np.int64)
        self.timeouts = np.zeros(n, dtype=np.int64)
        self.busy = np.zeros(m)
        self.w_travel = np.zeros(m)
        self.served = np.zeros(m, dtype=np.int64)
        self.earn = np.zeros(m, dtype=np.int64)
        self.on_shift = np.zeros(m)
        self.on_since = np.full(m, -1, dtype=np.int64)
        self.promised = c.promised_s.copy()
        self.booked_start = c.booked_start_s.copy()
        self.in_plan = np.zeros(n, dtype=np.bool_)
        self.moved = np.zeros(n, dtype=np.int64)
        self.repair_dropped = np.zeros(n, dtype=np.bool_)
        self.o_repairs = np.zeros(n, dtype=np.int64)
        self.w_repairs = np.zeros(m, dtype=np.int64)
        self.match_calls = self.events = 0
        self.last = c.end_s
        # A repair is counted against the order (overrun, cancel) or worker (sick) behind it.
        self.cause: tuple[str, int] | None = None

    def apply(self, kind: str, t: int, ev: dict[str, Any]) -> None:
        """Count one event; kinds that change no figure (release, claim, ...) pass."""
        if not self._service(kind, t, ev) and not self._plans(kind, ev):
            self._shifts(kind, t, ev)

    def _service(self, kind: str, t: int, ev: dict[str, Any]) -> bool:
        """Offers and answers, assignment, start and completion of an order."""
        o_row = self.o_row
        if kind == "assign":
            o, w = o_row[ev["o"]], self.w_row[ev["w"]]
            self.assigned_at[o], self.worker[o] = t, w
            self.travel_s[o], self.travel_m[o] = float(ev["travel_s"]), float(ev["travel_m"])
            self.busy[w] += self.travel_s[o]
            self.w_travel[w] += self.travel_m[o]
        elif kind == "start":
            self.start_s[o_row[ev["o"]]] = t
        elif kind == "done":
            o = o_row[ev["o"]]
            w = int(self.worker[o])
            self.end_s[o] = t
            self.state[o] = OrderOutcome.SERVED
            self.busy[w] += float(self.c.actual_service_s[o])
            self.served[w] += 1
            self.earn[w] += int(self.c.price_fen[o])
        elif kind == "offer":
            self.offers[o_row[ev["o"]]] += 1
        elif kind == "decline":
            self.declines[o_row[ev["o"]]] += 1
        elif kind == "timeout":
            self.timeouts[o_row[ev["o"]]] += 1
        else:
            return False
        return True

    def _plans(self, kind: str, ev: dict[str, Any]) -> bool:
        """Bookings, day plans and their repairs, and the ways an order ends unserved."""
        o_row = self.o_row
        if kind == "cancel":
            o = o_row[ev["o"]]
            self.state[o] = OrderOutcome.CANCELLED
            self.cause = ("o", o) if self.in_plan[o] else None
        elif kind == "book":
            o = o_row[ev["o"]]
            self.in_plan[o] = True
            self.booked_start[o], self.promised[o] = int(ev["start"]), int(ev["end"])
        elif kind == "refuse":
            self.state[o_row[ev["o"]]] = OrderOutcome.REFUSED
        elif kind == "sick":
            self.cause = ("w", self.w_row[ev["w"]])
        elif kind == "overrun":
            self.cause = ("o", o_row[ev["o"]])
        elif kind == "planned":
            self.in_plan[[o_row[x] for x in ev["o"]]] = True
        elif kind == "unplanned":
            self.in_plan[[o_row[x] for x in ev["o"]]] = False
        elif kind == "repair":
            self._repair(ev)
        elif kind == "escalate":
            self.state[o_row[ev["o"]]] = OrderOutcome.ESCALATED
        else:
            return False
        return True

    def _repair(self, ev: dict[str, Any]) -> None:
        cause = self.cause
        if cause is not None and cause[0] == "o":
            self.o_repairs[cause[1]] += 1
        elif cause is not None:
            self.w_repairs[cause[1]] += 1
        self.cause = None
        for x in ev["moved"]:
            self.moved[self.o_row[x]] += 1
        self.repair_dropped[[self.o_row[x] for x in ev["dropped"]]] = True

    def _shifts(self, kind: str, t: int, ev: dict[str, Any]) -> None:
        """Shifts starting and ending, matcher calls, the end of the day."""
        if kind == "shift_start":
            self.on_since[self.w_row[ev["w"]]] = t
        elif kind == "shift_end":
            w = self.w_row[ev["w"]]
            self.on_shift[w] += t - self.on_since[w]
            self.on_since[w] = -1
        elif kind == "match":
            self.match_calls += 1
        elif kind == "end":
            self.last = t
            self.events = int(ev["events"])

    def result(self, policy: Policy) -> SimResult:
        """The SimResult, with shifts still open at the end counted up to it."""
        still_on = self.on_since >= 0
        self.on_shift[still_on] += self.last - self.on_since[still_on]
        return SimResult(
            city=self.c,
            policy=policy,
            outcome=self.state,
            assigned_at=self.assigned_at,
            start_s=self.start_s,
            end_s=self.end_s,
            worker_row=self.worker,
            travel_s=self.travel_s,
            travel_m=self.travel_m,
            offers=self.offers,
            declines=self.declines,
            timeouts=self.timeouts,
            worker_busy_s=self.busy,
            worker_travel_m=self.w_travel,
            worker_served=self.served,
            worker_earnings_fen=self.earn,
            worker_on_shift_s=self.on_shift,
            match_calls=self.match_calls,
            matched_orders=int(self.offers.sum()),
            events=self.events,
            wall_s=0.0,
            promised_s=self.promised,
            booked_start_s=self.booked_start,
            in_plan=self.in_plan,
            moved=self.moved,
            repair_dropped=self.repair_dropped,
            order_repairs=self.o_repairs,
            worker_repairs=self.w_repairs,
        )


def result_from_log(path: str | Path) -> SimResult:
    """Rebuild the recorded run's SimResult from its events alone (KPIs need nothing else)."""
    rec = load(path)
    tally = _Tally(rec.city)
    for line_no, ev in _lines(rec.path):
        try:
            tally.apply(ev["e"], int(ev["t"]), ev)
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(
                f"bad {ev.get('e')!r} event: {exc}", "event", line_no, str(rec.path)
            ) from None
    return tally.result(rec.policy)


def replay(
    path: str | Path,
    policy: Policy,
    *,
    record: str | Path | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[SimResult, SimResult]:
    """The recorded run (from its log) and the same day re-run under ``policy``."""
    before = result_from_log(path)
    after = simulate(before.city, policy, record=record, progress=progress)
    return before, after


def compare(before: SimResult, after: SimResult) -> list[tuple[str, float, float, float]]:
    """City-wide KPIs side by side: (metric, before, after, after - before)."""
    a, b = kpis(before), kpis(after)
    return [(k, a[k], b[k], b[k] - a[k]) for k in a]
