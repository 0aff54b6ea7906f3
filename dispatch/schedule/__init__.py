"""Day plans for booked visits: VRPTW with skills, shifts, pinning and change penalties.

``plan_day(visits, workers, travel=..., stop=...)`` builds every worker's route
for one day. Times are int64 epoch seconds (UTC), durations seconds. A visit's
window ``[window_start, window_end]`` bounds its *start* of service (the
customer's arrival window); the worker waits when early. Travel is either a
``geo.travel.TravelTimeModel`` (planned with the slowest travel time over the
day, so arriving early only means waiting) or a precomputed ``TravelMatrix``
(Solomon instances, road-network tables).

Engine: PyVRP's iterated local search carries the whole model: workers are
vehicle types with their own start/end places and shift windows, skills and
pins are load dimensions a worker has zero capacity in when it may not serve
the visit, optional visits are prize clients (the prize is the drop penalty),
and the change penalty is a mutually exclusive pair per visit — a copy pinned
to its current worker and a free copy whose prize is lower by the penalty.
Started and finished visits are a fixed prefix of their worker's day. The
whole call, matrices included, stays within ``stop.seconds``.

Every route PyVRP returns is re-timed exactly here (``route_times``), and a
stop that does not fit is taken out and re-inserted at its cheapest feasible
place or dropped with a reason. That matters for breaks: PyVRP sees a break as
a client pinned to its worker at a place with zero travel, while the real
rule is that the break is taken where the worker is and the next ride leaves
from there. Insertion (slots, urgent visits) never puts a visit directly
before a break, because the ride after the break would change with it.

Modules, each importing only those before it:
``plan`` (the public types), ``problem`` (``Problem``: the arrays every engine
works on, and ``build_problem``), ``routes`` (exact timing, feasibility, breaks,
assembling a ``DayPlan``), ``insertion`` (cheapest insertion, greedy placement),
``solve`` (``plan_day``). ``dispatch.repair``, ``dispatch.slots`` and the PyVRP
engine use ``problem``/``routes``/``insertion`` directly; everyone else imports
from ``dispatch.schedule``.
"""

from __future__ import annotations

from dispatch._vrp_core import TravelMatrix
from dispatch.schedule import plan
from dispatch.schedule.insertion import (
    Insertion,
    InsertionOptions,
    insertion_options,
    plan_with_insertion,
)
from dispatch.schedule.plan import *  # noqa: F403  (plan.__all__, listed once there)
from dispatch.schedule.solve import plan_day

__all__ = [
    "Insertion",
    "InsertionOptions",
    "TravelMatrix",
    "insertion_options",
    "plan_day",
    "plan_with_insertion",
]
__all__ += plan.__all__
