"""Equivalence (issue 14): one seeded small city run through the simulator and through the
real API + dispatcher on a simulated clock makes the same offers and gets the same answers.

(a) ``simulations.engine.simulate(..., record=path)`` runs the day and records its log.
(b) The same world is mirrored in the API: the same worker ids, homes, rating, skill and
transport mode (no shifts), and every order inserted at its release time as a paid row
(``paid_at`` = release, the latest start and the duration the simulator uses). The real
``Dispatcher.run_once`` ticks at every batch-window boundary of the simulated clock; each
offer it makes is answered over HTTP as the simulator's worker answers it (the common
random numbers of ``Engine._answer``); a job ends when the simulator's physics says so
(travel from where the worker is + the city's actual duration), which completes the
order and puts the worker back online at the order's address.

The sequences of (time, what, order, worker) — offers, acceptances, declines, timeouts,
escalations — must be identical. The harness only plays the world; every decision is
the dispatcher's, read back from its tables.
"""

from __future__ import annotations

import heapq
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role
from api.catalog.models import Service, ServiceCategory
from api.core.geo_edge import point_cell
from api.core.live import PingBatch, WorkerState
from api.core.settings import Environment, Settings
from api.dispatcher.models import DispatchDecision, DispatchOffer, OfferMode, OfferState
from api.dispatcher.positions import regions_of
from api.orders import state
from api.orders.models import Order
from api.orders.state import DispatchStatus, OrderEventType, OrderStatus
from api.tenants.models import Worker
from dispatch.model import TRANSPORT_MODES
from dispatch.offers import OfferPolicy
from geo.projection import EARTH_RADIUS_M
from geo.travel import HaversineTravelModel
from simulations.city import NEVER, NOT_BOOKED, CityDay
from simulations.engine import Policy, hash_u01, simulate
from tests.api.conftest import (  # the API fixtures this module uses
    Account,
    app,
    client,
    db,
    db_url,
    make_enterprise,
    make_user,
    run_db,
    upstream,
)
from tests.api.dispatcher.conftest import Clock

__all__ = ["app", "client", "db", "db_url", "make_enterprise", "make_user", "run_db", "upstream"]

SHANGHAI = ZoneInfo("Asia/Shanghai")
CENTRE = (31.2304, 121.4737)
N_WORKERS, N_ORDERS, SEED = 8, 15, 7
WINDOW_S, TIMEOUT_S = 30, 30
DAY = datetime(2031, 3, 4, tzinfo=SHANGHAI)  # a fixed local day (loads count per local day)


@pytest.fixture
def settings(db: str, tmp_path: Path) -> Settings:
    """Test settings; the embedded dispatcher loop is off (this test ticks it)."""
    return Settings(
        environment=Environment.TEST,
        database_url=db,
        var_dir=tmp_path / "var",
        jwt_secret="test-secret-" + "x" * 40,
        argon2_time_cost=1,
        argon2_memory_kib=8,
        wechat_base_url="https://wechat.test",
        qq_base_url="https://qq.test",
        log_json=True,
        dispatch_tick_s=0,
        dispatch_horizon_s=4 * 3600,
        offer_timeout_s=TIMEOUT_S,
        grab_window_s=0,
    )


# ------------------------------------------------------------------ the city


def _points(rng: np.random.Generator, n: int, radius_m: float) -> tuple[Any, Any]:
    r = radius_m * np.sqrt(rng.random(n))
    theta = rng.random(n) * 2 * np.pi
    lat = CENTRE[0] + np.degrees(r * np.sin(theta) / EARTH_RADIUS_M)
    lng = CENTRE[1] + np.degrees(
        r * np.cos(theta) / (EARTH_RADIUS_M * math.cos(math.radians(CENTRE[0])))
    )
    return lat, lng


def small_city(worker_ids: list[int], first_order_id: int) -> CityDay:
    """Eight workers and fifteen on-demand orders in 2 km, released 10:00-10:40 local."""
    rng = np.random.default_rng(SEED)
    day0 = int(DAY.timestamp())
    m, n = len(worker_ids), N_ORDERS
    home_lat, home_lng = _points(rng, m, 2000)
    lat, lng = _points(rng, n, 2000)
    release = np.sort(day0 + 10 * 3600 + rng.integers(0, 40 * 60, n)).astype(np.int64)
    expected = (rng.choice([20, 30, 40], n) * 60).astype(np.int64)  # whole minutes
    actual = np.maximum(1, np.rint(expected * rng.uniform(0.8, 1.3, n))).astype(np.int64)
    modes = np.array([TRANSPORT_MODES.index("walk" if i % 3 == 0 else "ebike") for i in range(m)])
    return CityDay(
        name="equivalence",
        seed=SEED,
        day_start_s=day0,
        skills=("cleaning",),
        district_names=("centre",),
        service_names=("clean",),
        order_ids=np.arange(first_order_id, first_order_id + n, dtype=np.int64),
        created_s=release.copy(),
        release_s=release,
        promised_s=release + 3600,
        booked_start_s=np.full(n, NOT_BOOKED, dtype=np.int64),
        lat=lat,
        lng=lng,
        district=np.zeros(n, dtype=np.int64),
        service=np.zeros(n, dtype=np.int64),
        required_skills=np.ones(n, dtype=np.uint64),
        expected_service_s=expected,
        actual_service_s=actual,
        cancel_at_s=np.full(n, NEVER, dtype=np.int64),
        price_fen=(rng.integers(60, 160, n) * 100).astype(np.int64),
        worker_ids=np.asarray(worker_ids, dtype=np.int64),
        home_lat=home_lat,
        home_lng=home_lng,
        home_district=np.zeros(m, dtype=np.int64),
        shift_start_s=np.full(m, day0, dtype=np.int64),
        # Never binds: every job is done by early afternoon (the API's workers have no shifts).
        shift_end_s=np.full(m, day0 + 86_400 - 1, dtype=np.int64),
        worker_skills=np.ones(m, dtype=np.uint64),
        mode=modes.astype(np.uint8),
        decline_prob=np.full(m, 0.3),
        response_mean_s=np.full(m, 14.0),
        rating=np.full(m, 5.0),
        grace_s=300,
        end_s=day0 + 86_400,
    )


def policy_for(settings: Settings) -> Policy:
    """The simulator's policy with the production dispatcher's knobs (RoundParams defaults)."""
    return Policy(
        offer=OfferPolicy(accept_timeout_s=settings.offer_timeout_s),
        batch_window_s=WINDOW_S,
        max_batch=settings.dispatch_batch_max,
        aging_per_hour=settings.dispatch_aging_per_hour,
        max_lateness_s=settings.dispatch_max_lateness_s,
        candidates_per_order=4,  # dispatch.rounds.RoundParams() as the dispatcher builds it
        max_travel_s=settings.dispatch_max_travel_s,
    )


Step = tuple[int, str, int, int]  # (epoch s, what, order id, worker id or -1)


def sim_steps(path: Path) -> list[Step]:
    """The simulator's log as sorted steps."""
    names = {"offer": "offer", "assign": "accept", "decline": "decline", "timeout": "timeout"}
    out: list[Step] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        if rec["e"] in names:
            out.append((int(rec["t"]), names[rec["e"]], int(rec["o"]), int(rec["w"])))
        elif rec["e"] == "escalate":
            out.append((int(rec["t"]), "escalate", int(rec["o"]), -1))
    return sorted(out)


# ------------------------------------------------------------------ the API's world


def _at(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Mirror:
    """The API side of the run: the app, its clock, and the world the harness plays."""

    client: TestClient
    run_db: Any
    city: CityDay
    ent: int
    service: int
    customer: int
    accounts: dict[int, Account]
    now: datetime = field(default_factory=lambda: DAY)
    heap: list[tuple[int, int, int, tuple[int, ...]]] = field(default_factory=list)
    seq: int = 0
    seen_offer: int = 0
    pos: dict[int, tuple[float, float]] = field(default_factory=dict)
    travel: HaversineTravelModel = field(default_factory=HaversineTravelModel)

    END, ANSWER, RELEASE, TICK = 0, 2, 7, 15  # same-instant order of the engine's events

    def push(self, t: int, kind: int, *data: int) -> None:
        self.seq += 1
        heapq.heappush(self.heap, (t, kind, self.seq, data))

    def call(self, fn: Any, *args: Any) -> Any:
        assert self.client.portal is not None
        return self.client.portal.call(fn, *args)

    def row(self, wid: int) -> int:
        return int(np.flatnonzero(self.city.worker_ids == wid)[0])

    def orow(self, oid: int) -> int:
        return int(np.flatnonzero(self.city.order_ids == oid)[0])

    def place(self, wid: int, t: int) -> None:
        """The worker online at their current position (a ping at ``t``)."""
        lat, lng = self.pos[wid]
        live = self.client.app.state.live.state  # type: ignore[attr-defined]
        batch = PingBatch.of([wid], [lat], [lng], [float(t)], states=[WorkerState.ONLINE.value])
        self.call(live.update_positions, batch)
        self.call(live.set_worker_state, wid, WorkerState.ONLINE)

    def release(self, t: int, o: int) -> None:
        c = self.city
        start = _at(int(c.promised_s[o]) + c.grace_s)  # the API's latest start = the sim's
        minutes = int(c.expected_service_s[o]) // 60

        async def add(session: AsyncSession) -> None:
            session.add(
                Order(
                    id=int(c.order_ids[o]), order_no=f"EQ{int(c.order_ids[o])}",
                    customer_id=self.customer, enterprise_id=self.ent, service_id=self.service,
                    status=OrderStatus.PENDING_SERVICE.value,
                    dispatch_status=DispatchStatus.AWAITING_DISPATCH.value,
                    slot_start=start, slot_end=start + timedelta(minutes=minutes),
                    duration_min=minutes, price_fen=int(c.price_fen[o]),
                    amount_fen=int(c.price_fen[o]), lat=float(c.lat[o]), lng=float(c.lng[o]),
                    paid_at=_at(t), created_at=_at(t),
                )
            )  # fmt: skip

        self.run_db(add)

    def tick(self, t: int) -> None:
        self.call(self.client.app.state.dispatcher.run_once, _at(t))  # type: ignore[attr-defined]

        async def new_offers(session: AsyncSession) -> list[DispatchOffer]:
            rows = await session.scalars(
                select(DispatchOffer)
                .where(DispatchOffer.id > self.seen_offer, DispatchOffer.mode == OfferMode.AUTO)
                .order_by(DispatchOffer.id)
            )
            return list(rows)

        c = self.city
        for offer in self.run_db(new_offers):
            self.seen_offer = offer.id
            assert offer.worker_id is not None
            oid, wid, w = offer.order_id, offer.worker_id, self.row(offer.worker_id)
            # Engine._answer's common random numbers: the same worker answers the same way.
            u_decline = float(hash_u01(c.seed, np.array([oid]), np.array([wid]), 1)[0])
            u_delay = float(hash_u01(c.seed, np.array([oid]), np.array([wid]), 2)[0])
            delay = math.ceil(-math.log1p(-u_delay) * float(c.response_mean_s[w]))
            if delay < TIMEOUT_S:
                accept = int(u_decline >= float(c.decline_prob[w]))
                self.push(int(offer.offered_at.timestamp()) + delay, self.ANSWER, offer.id, accept)

    def answer(self, t: int, offer_id: int, accept: int) -> None:
        async def get(session: AsyncSession) -> tuple[int, int]:
            offer = await session.get(DispatchOffer, offer_id)
            assert offer is not None
            assert offer.worker_id is not None
            return offer.order_id, offer.worker_id

        oid, wid = self.run_db(get)
        headers = self.accounts[wid].headers
        verb = "accept" if accept else "decline"
        body = {} if accept else {"reason": "declined"}
        resp = self.client.post(f"/v1/worker/offers/{offer_id}/{verb}", json=body, headers=headers)
        assert resp.status_code == 200, resp.text
        if accept:
            # The simulator's physics: ride from where the worker is, then the actual duration.
            c, o, w = self.city, self.orow(oid), self.row(wid)
            lat, lng = self.pos[wid]
            ride = self.travel.seconds(
                np.array([lat]), np.array([lng]), c.lat[o : o + 1], c.lng[o : o + 1], t,
                mode=c.mode[w : w + 1].astype(np.int8),
            )  # fmt: skip
            assert c.delay_s is not None
            end = t + math.ceil(float(ride[0])) + int(c.delay_s[o]) + int(c.actual_service_s[o])
            self.push(end, self.END, o, wid)

    def finish(self, t: int, o: int, wid: int) -> None:
        """The job ends: the order completes at ``t``; its worker is free where it was."""
        oid = int(self.city.order_ids[o])

        async def complete(session: AsyncSession) -> None:
            order = await session.get(Order, oid)
            assert order is not None
            for event in (
                OrderEventType.DEPARTED,
                OrderEventType.ARRIVED,
                OrderEventType.STARTED,
                OrderEventType.COMPLETED,
            ):
                await state.apply(session, order, event, actor_id=None, now=_at(t))

        self.run_db(complete)
        self.pos[wid] = (float(self.city.lat[o]), float(self.city.lng[o]))
        self.place(wid, t)

    def run(self, clock: Clock) -> None:
        c = self.city
        for wid, lat, lng in zip(c.worker_ids.tolist(), c.home_lat, c.home_lng, strict=True):
            self.pos[wid] = (float(lat), float(lng))
            self.place(wid, c.day_start_s)
        for o in range(c.n_orders):
            self.push(int(c.release_s[o]), self.RELEASE, o)
        first = -(-int(c.release_s.min()) // WINDOW_S) * WINDOW_S
        self.push(first, self.TICK)
        last = int(c.release_s.max()) + 6 * 3600
        while self.heap:
            t, kind, _, data = heapq.heappop(self.heap)
            clock.now = _at(t)
            if kind == self.END:
                self.finish(t, *data)
            elif kind == self.ANSWER:
                self.answer(t, *data)
            elif kind == self.RELEASE:
                self.release(t, *data)
            else:
                self.tick(t)
                if not self.settled() and t < last:
                    self.push(t + WINDOW_S, self.TICK)

    def settled(self) -> bool:
        """Every order released and finished (done or with a human); no answer or job pending."""
        if any(kind != self.TICK for _, kind, _, _ in self.heap):
            return False

        async def open_orders(session: AsyncSession) -> int:
            rows = await session.scalars(
                select(Order.id).where(
                    Order.enterprise_id == self.ent,
                    Order.status != OrderStatus.COMPLETED.value,
                    Order.dispatch_status != DispatchStatus.ESCALATED.value,
                )
            )
            return len(list(rows))

        return int(self.run_db(open_orders)) == 0

    def steps(self) -> list[Step]:
        """The dispatcher's decisions and the answers, as the tables hold them."""

        async def read(session: AsyncSession) -> list[Step]:
            out: list[Step] = []
            names = {
                OfferState.ACCEPTED.value: "accept",
                OfferState.DECLINED.value: "decline",
                OfferState.EXPIRED.value: "timeout",
            }
            for row in await session.scalars(
                select(DispatchOffer).where(DispatchOffer.mode == OfferMode.AUTO)
            ):
                assert row.worker_id is not None
                out.append((int(row.offered_at.timestamp()), "offer", row.order_id, row.worker_id))
                if row.state in names:
                    assert row.decided_at is not None
                    at = int(row.decided_at.timestamp())
                    out.append((at, names[row.state], row.order_id, row.worker_id))
            for d in await session.scalars(
                select(DispatchDecision).where(DispatchDecision.reason.like("escalated:%"))
            ):
                out.append((int(d.created_at.timestamp()), "escalate", d.order_id, -1))
            return sorted(out)

        result: list[Step] = self.run_db(read)
        return result


@pytest.fixture
def sim_clock(client: TestClient) -> Clock:
    """The app's dispatch clock, moved by the harness."""
    c = Clock()
    c.now = DAY
    client.app.state.dispatch_clock = c  # type: ignore[attr-defined]
    return c


def _world(
    client: TestClient, run_db: Any, make_user: Any, make_enterprise: Any
) -> tuple[int, int, int, dict[int, Account]]:
    """An enterprise, a cleaning service, a customer and eight workers (no shifts, rating 5)."""
    ent = make_enterprise("equivalence")
    customer = make_user(Role.CUSTOMER)
    accounts = [make_user(Role.WORKER, ent) for _ in range(N_WORKERS)]

    async def create(session: AsyncSession) -> tuple[int, list[int]]:
        cat = ServiceCategory(code="eq-cleaning", names={"zh-CN": "保洁", "en": "Cleaning"})
        session.add(cat)
        await session.flush()
        svc = Service(
            enterprise_id=ent, category_id=cat.id, names={"zh-CN": "保洁", "en": "Cleaning"},
            descriptions={}, price_fen=9900, duration_min=30, required_skills=["cleaning"],
            popularity=1, search_text="保洁",
        )  # fmt: skip
        session.add(svc)
        ids = []
        for i, acc in enumerate(accounts):
            w = Worker(
                user_id=acc.id, enterprise_id=ent, display_name=f"师傅{i}", skills=["cleaning"],
                shifts=[], rating=5.0, home_lat=CENTRE[0], home_lng=CENTRE[1],
                home_cell=point_cell(*CENTRE), transport_mode="ebike",
            )  # fmt: skip
            session.add(w)
            await session.flush()
            ids.append(w.id)
        return svc.id, ids

    svc, wids = run_db(create)
    return ent, svc, customer.id, dict(zip(wids, accounts, strict=True))


def _mirror_workers(run_db: Any, city: CityDay) -> None:
    """Homes and transport modes of the city's workers on their API profiles."""

    async def update(session: AsyncSession) -> None:
        for w in range(city.n_workers):
            worker = await session.get(Worker, int(city.worker_ids[w]))
            assert worker is not None
            worker.home_lat, worker.home_lng = float(city.home_lat[w]), float(city.home_lng[w])
            worker.home_cell = point_cell(worker.home_lat, worker.home_lng)
            worker.transport_mode = TRANSPORT_MODES[int(city.mode[w])]

    run_db(update)


def test_simulator_and_dispatcher_make_the_same_offers_and_get_the_same_answers(
    client: TestClient,
    run_db: Any,
    make_user: Any,
    make_enterprise: Any,
    settings: Settings,
    sim_clock: Clock,
    tmp_path: Path,
) -> None:
    ent, svc, customer, accounts = _world(client, run_db, make_user, make_enterprise)
    city = small_city(sorted(accounts), first_order_id=900_001)
    # One region (H3 res-5) as in the simulator, which matches the whole city at once.
    assert len(set(regions_of(city.lat.tolist(), city.lng.tolist()))) == 1
    _mirror_workers(run_db, city)

    log = tmp_path / "sim.jsonl"
    simulate(city, policy_for(settings), record=log)
    expected = sim_steps(log)
    kinds = [s[1] for s in expected]
    # The scenario exercises every answer: acceptances, declines and timeouts.
    assert kinds.count("accept") == N_ORDERS
    assert kinds.count("decline") >= 1
    assert kinds.count("timeout") >= 1

    mirror = Mirror(client, run_db, city, ent, svc, customer, accounts)
    mirror.run(sim_clock)
    got = mirror.steps()
    assert got == expected, _first_difference(got, expected)


def _first_difference(got: list[Step], expected: list[Step]) -> str:
    at = next(
        (i for i, (a, b) in enumerate(zip(got, expected, strict=False)) if a != b),
        min(len(got), len(expected)),
    )
    return (
        f"first difference at step {at}: dispatcher {got[at : at + 3]} vs simulator "
        f"{expected[at : at + 3]} ({len(got)} vs {len(expected)} steps)"
    )
