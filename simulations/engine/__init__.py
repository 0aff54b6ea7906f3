"""Discrete-event simulation of a city day through the production dispatch code.

Own heapq loop with an integer simulated clock (epoch seconds) that is passed as ``now``
into the dispatch policies. Per batch window the engine calls ``dispatch.match`` once
for every pending order × every idle, offer-eligible worker (one region: the city), and
drives :class:`dispatch.offers.OfferDesk` for offers, accept timeouts, exclusions,
fairness and the grab pool (grab-pool eligibility comes from
``dispatch.candidates.find_candidates``). Workers answer offers after a random delay
(slower than the accept timeout = a timeout) and decline with their own probability;
travel times come from the geo travel model; services take the city's pre-drawn actual
durations. Nothing here re-implements a dispatch decision: every batch window runs
:mod:`dispatch.rounds` (``admit``, ``escalate_late``, ``offer_round``) over the desk, the very
functions the API's dispatcher runs, and the decision functions come in as injected
:class:`Ports` (production's by default; tests pass wrappers instead of patching modules).

Windows are event driven: a dispatch runs at the next window boundary only after
something changed (a new order, a re-queued order, a worker became free), which is
exactly when a production dispatcher's batch would contain new work.

Booked orders go through the scheduling code instead. At ``Policy.plan_at_h`` the orders
booked so far get day plans from ``dispatch.schedule.plan_day``, one per partition (a
district's workers in angular sectors of at most ``plan_workers``, so every plan stays
small); a later booking is reserved into its partition's plan with
``dispatch.slots.reserve_slot`` (its requested slot, else the first slot
``dispatch.slots.available_slots`` still offers within ``reslot_h``, else refused). A
worker leaves for each planned visit so as to arrive at its planned start and, while
waiting, takes on-demand work that ends ``booked_buffer_s`` before. Disruptions repair
the plan through ``dispatch.repair.repair``: a sick call (``WorkerAbsent``), a visit
that will end so late the worker's next visit misses its slot (late trip or overrun:
``VisitOverran``), a booked cancellation (``VisitCancelled``). A visit no route can hold
leaves the plan for on-demand dispatch an hour before its slot. Before every call the
plan's visits are brought up to date (done and under way visits fixed), and plans ride
:class:`PlanningTravel`, the travel model at each mode's slowest hour.

Randomness uses common random numbers: a worker's answer to an order is a hash of (seed,
order, worker), so replaying the same day under another policy meets the same worker
behaviour wherever the same offer is made.
"""

from __future__ import annotations

from simulations.engine.core import (
    Engine,
    simulate,
)
from simulations.engine.parts import (
    PlanningTravel,
    hash_u01,
)
from simulations.engine.policy import (
    WEIGHT_PRESETS,
    OrderOutcome,
    Policy,
    Ports,
    SimResult,
    policy_with,
)

__all__ = [
    "WEIGHT_PRESETS",
    "Engine",
    "OrderOutcome",
    "PlanningTravel",
    "Policy",
    "Ports",
    "SimResult",
    "hash_u01",
    "policy_with",
    "simulate",
]
