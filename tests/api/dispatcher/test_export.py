"""``daojia export day``: a day recorded through the API and the real dispatcher comes out
as a replay log that ``simulations.replay`` loads and re-runs, with the tables' counts."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.ext.asyncio import AsyncSession
from typer.testing import CliRunner

from api.core.settings import Settings
from api.dispatcher.export import RecordedDay, recorded_day
from api.orders import state
from api.orders.models import Order
from api.orders.state import OrderEventType
from daojia.cli import app as cli
from simulations import replay
from simulations.engine import OrderOutcome, policy_with
from simulations.export import write_log
from tests.api.dispatcher.conftest import Clock, offers_of, online, paid_order, tick
from tests.api.orders.world import World, local_slot

ORDER_AT = (31.23, 121.48)


def _answer(client: TestClient, world: World, offer: Any, verb: str) -> None:
    headers = next(acc.headers for wid, acc in world.workers_a if wid == offer.worker_id)
    resp = client.post(f"/v1/worker/offers/{offer.id}/{verb}", json={}, headers=headers)
    assert resp.status_code == 200, resp.text


def _complete(run_db: Any, order_id: int, clock: Clock, minutes: int) -> None:
    async def done(session: AsyncSession) -> None:
        order = await session.get(Order, order_id)
        assert order is not None
        for event in (OrderEventType.DEPARTED, OrderEventType.ARRIVED, OrderEventType.STARTED):
            await state.apply(session, order, event, actor_id=None, now=clock.now)
        end = clock.now + timedelta(minutes=minutes)
        await state.apply(session, order, OrderEventType.COMPLETED, actor_id=None, now=end)

    run_db(done)


def _record_a_day(client: TestClient, world: World, run_db: Any, clock: Clock) -> list[int]:
    """Two orders tomorrow: the first declined once then accepted, the second accepted;
    both completed. Returns the order ids."""
    first = paid_order(client, world, run_db, hour=10)
    second = paid_order(client, world, run_db, hour=11)
    clock.now = local_slot(world.day, 9)
    for i, (_, acc) in enumerate(world.workers_a):
        online(client, acc.headers, ORDER_AT[0] + 0.002 * i, ORDER_AT[1])
    assert tick(client, clock).offered == 2
    _answer(client, world, offers_of(run_db, first)[0], "decline")
    _answer(client, world, offers_of(run_db, second)[0], "accept")
    clock.advance(5)
    assert tick(client, clock).offered == 1
    _answer(client, world, offers_of(run_db, first)[-1], "accept")
    clock.advance(60)
    _complete(run_db, first, clock, 90)
    _complete(run_db, second, clock, 100)
    return [first, second]


def test_export_writes_a_replayable_log_with_the_tables_counts(
    client: TestClient,
    world: World,
    run_db: Any,
    clock: Clock,
    settings: Settings,
    tmp_path: Path,
) -> None:
    first, second = _record_a_day(client, world, run_db, clock)

    async def read(session: AsyncSession) -> RecordedDay:
        return await recorded_day(session, settings, world.day, enterprise_id=world.ent_a)

    day = run_db(read)
    assert [o.id for o in day.orders] == [first, second]
    assert len([f for f in day.offers if f.mode == "auto"]) == 3
    declined = {w.id: w.declined for w in day.workers}
    assert sum(declined.values()) == 1

    path = tmp_path / "day.jsonl"
    city = write_log(dataclasses.asdict(day), path)
    assert sorted(city.worker_ids.tolist()) == sorted(w for w, _ in world.workers_a)
    recorded = replay.result_from_log(path)
    by_order = dict(zip(city.order_ids.tolist(), range(city.n_orders), strict=True))
    assert recorded.offers[by_order[first]] == 2
    assert recorded.offers[by_order[second]] == 1
    assert recorded.declines.sum() == 1
    assert recorded.timeouts.sum() == 0
    assert (recorded.outcome == OrderOutcome.SERVED).all()
    assert recorded.worker_row[by_order[first]] >= 0
    worker = int(city.worker_ids[recorded.worker_row[by_order[first]]])
    assert worker == offers_of(run_db, first)[-1].worker_id
    # Actual service times are the recorded ones (start to completion).
    assert city.actual_service_s[by_order[first]] == 90 * 60
    assert city.actual_service_s[by_order[second]] == 100 * 60

    # The recorded day re-runs under another policy.
    rec = replay.load(path)
    before, after = replay.replay(path, policy_with(rec.policy, weights="travel_only"))
    assert after.city.n_orders == before.city.n_orders == 2
    assert int(after.offers.sum()) >= 1


def test_export_command_writes_the_day(
    client: TestClient, world: World, run_db: Any, clock: Clock, db: str, tmp_path: Path
) -> None:
    _record_a_day(client, world, run_db, clock)
    out = tmp_path / "cli.jsonl"
    args = ["export", "day", "--date", world.day.isoformat(), "--out", str(out)]
    result = CliRunner().invoke(cli, [*args, "--database-url", db])
    assert result.exit_code == 0, result.output
    assert "2 orders, 3 offers" in " ".join(result.output.split())
    assert replay.result_from_log(out).offers.sum() == 3


def test_export_command_names_a_bad_date(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "day", "--date", "2031-02-30"])
    assert result.exit_code == 2
    assert "--date" in result.output
