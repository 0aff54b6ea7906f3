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


def result_from_log(path: str | Path) -> SimResult:
    """Rebuild the recorded run's SimResult from its events alone (KPIs need nothing else)."""
    rec = load(path)
    c = rec.city
    n, m = c.n_orders, c.n_workers
    o_row = {int(o): i for i, o in enumerate(c.order_ids)}
    w_row = {int(w): i for i, w in enumerate(c.worker_ids)}
    state = np.full(n, OrderOutcome.UNSERVED, dtype=np.int8)
    assigned_at = np.full(n, -1, dtype=np.int64)
    start_s = np.full(n, -1, dtype=np.int64)
    end_s = np.full(n, -1, dtype=np.int64)
    worker = np.full(n, -1, dtype=np.int64)
    travel_s = np.zeros(n)
    travel_m = np.zeros(n)
    offers = np.zeros(n, dtype=np.int64)
    declines = np.zeros(n, dtype=np.int64)
    timeouts = np.zeros(n, dtype=np.int64)
    busy = np.zeros(m)
    w_travel = np.zeros(m)
    served = np.zeros(m, dtype=np.int64)
    earn = np.zeros(m, dtype=np.int64)
    on_shift = np.zeros(m)
    on_since = np.full(m, -1, dtype=np.int64)
    promised = c.promised_s.copy()
    booked_start = c.booked_start_s.copy()
    in_plan = np.zeros(n, dtype=np.bool_)
    moved = np.zeros(n, dtype=np.int64)
    repair_dropped = np.zeros(n, dtype=np.bool_)
    o_repairs = np.zeros(n, dtype=np.int64)
    w_repairs = np.zeros(m, dtype=np.int64)
    match_calls = events = 0
    last = c.end_s
    # A repair is counted against the order (overrun, cancel) or worker (sick) behind it.
    cause: tuple[str, int] | None = None
    for line_no, ev in _lines(rec.path):
        try:
            kind, t = ev["e"], int(ev["t"])
            if kind == "assign":
                o, w = o_row[ev["o"]], w_row[ev["w"]]
                assigned_at[o], worker[o] = t, w
                travel_s[o], travel_m[o] = float(ev["travel_s"]), float(ev["travel_m"])
                busy[w] += travel_s[o]
                w_travel[w] += travel_m[o]
            elif kind == "start":
                start_s[o_row[ev["o"]]] = t
            elif kind == "done":
                o = o_row[ev["o"]]
                w = int(worker[o])
                end_s[o] = t
                state[o] = OrderOutcome.SERVED
                busy[w] += float(c.actual_service_s[o])
                served[w] += 1
                earn[w] += int(c.price_fen[o])
            elif kind == "offer":
                offers[o_row[ev["o"]]] += 1
            elif kind == "decline":
                declines[o_row[ev["o"]]] += 1
            elif kind == "timeout":
                timeouts[o_row[ev["o"]]] += 1
            elif kind == "cancel":
                o = o_row[ev["o"]]
                state[o] = OrderOutcome.CANCELLED
                cause = ("o", o) if in_plan[o] else None
            elif kind == "book":
                o = o_row[ev["o"]]
                in_plan[o] = True
                booked_start[o], promised[o] = int(ev["start"]), int(ev["end"])
            elif kind == "refuse":
                state[o_row[ev["o"]]] = OrderOutcome.REFUSED
            elif kind == "sick":
                cause = ("w", w_row[ev["w"]])
            elif kind == "overrun":
                cause = ("o", o_row[ev["o"]])
            elif kind == "planned":
                in_plan[[o_row[x] for x in ev["o"]]] = True
            elif kind == "unplanned":
                in_plan[[o_row[x] for x in ev["o"]]] = False
            elif kind == "repair":
                if cause is not None and cause[0] == "o":
                    o_repairs[cause[1]] += 1
                elif cause is not None:
                    w_repairs[cause[1]] += 1
                cause = None
                for x in ev["moved"]:
                    moved[o_row[x]] += 1
                repair_dropped[[o_row[x] for x in ev["dropped"]]] = True
            elif kind == "escalate":
                state[o_row[ev["o"]]] = OrderOutcome.ESCALATED
            elif kind == "shift_start":
                on_since[w_row[ev["w"]]] = t
            elif kind == "shift_end":
                w = w_row[ev["w"]]
                on_shift[w] += t - on_since[w]
                on_since[w] = -1
            elif kind == "match":
                match_calls += 1
            elif kind == "end":
                last = t
                events = int(ev["events"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ReplayError(
                f"bad {ev.get('e')!r} event: {exc}", "event", line_no, str(rec.path)
            ) from None
    still_on = on_since >= 0
    on_shift[still_on] += last - on_since[still_on]
    return SimResult(
        city=c,
        policy=rec.policy,
        outcome=state,
        assigned_at=assigned_at,
        start_s=start_s,
        end_s=end_s,
        worker_row=worker,
        travel_s=travel_s,
        travel_m=travel_m,
        offers=offers,
        declines=declines,
        timeouts=timeouts,
        worker_busy_s=busy,
        worker_travel_m=w_travel,
        worker_served=served,
        worker_earnings_fen=earn,
        worker_on_shift_s=on_shift,
        match_calls=match_calls,
        matched_orders=int(offers.sum()),
        events=events,
        wall_s=0.0,
        promised_s=promised,
        booked_start_s=booked_start,
        in_plan=in_plan,
        moved=moved,
        repair_dropped=repair_dropped,
        order_repairs=o_repairs,
        worker_repairs=w_repairs,
    )


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
