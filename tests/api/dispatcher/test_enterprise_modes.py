"""The dispatcher honours each enterprise's stored dispatch settings: mode 派单/抢单 (auto or
grab pool first, with its window) and the batch window between matches."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.settings import Settings
from api.dispatcher.models import DispatchDecision
from tests.api.dispatcher.conftest import Clock, offers_of, online, paid_order, tick
from tests.api.orders.world import World

NEAR = (31.225, 121.475)


def _store(client: TestClient, world: World, **values: Any) -> None:
    resp = client.put(
        "/v1/enterprise/dispatch-settings", json=values, headers=world.staff_a.headers
    )
    assert resp.status_code == 200, resp.text


def _all_online(client: TestClient, world: World) -> None:
    for i, (_, acc) in enumerate(world.workers_a):
        online(client, acc.headers, NEAR[0] + 0.002 * i, NEAR[1])


def test_stored_grab_mode_opens_the_pool_then_falls_back_to_auto(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    _store(client, world, mode="grab", grab_window_s=30)
    oid = paid_order(client, world, run_db, hour=10)
    _all_online(client, world)
    report = tick(client, clock)
    assert (report.opened, report.offered) == (1, 0)
    offer = offers_of(run_db, oid)[0]
    assert (offer.mode, offer.state) == ("grab", "open")
    assert (offer.expires_at - offer.offered_at).total_seconds() == 30
    clock.advance(31)
    report = tick(client, clock)
    assert (report.lapsed, report.offered) == (1, 1)
    assert [(o.mode, o.state) for o in offers_of(run_db, oid)] == [
        ("grab", "lapsed"),
        ("auto", "offered"),
    ]

    async def reasons(session: AsyncSession) -> list[str | None]:
        rows = await session.scalars(
            select(DispatchDecision.reason).where(DispatchDecision.order_id == oid)
        )
        return list(rows)

    assert run_db(reasons) == ["grab_lapsed"]


def test_stored_auto_mode_skips_the_global_grab_pool(
    client: TestClient, world: World, run_db: Any, clock: Clock, settings: Settings
) -> None:
    settings.grab_window_s = 60  # the platform default for enterprises without settings
    _store(client, world, mode="auto")
    oid = paid_order(client, world, run_db, hour=10)
    _all_online(client, world)
    report = tick(client, clock)
    assert (report.opened, report.offered) == (0, 1)
    assert [(o.mode, o.state) for o in offers_of(run_db, oid)] == [("auto", "offered")]


def test_stored_batch_window_paces_matches(
    client: TestClient, world: World, run_db: Any, clock: Clock
) -> None:
    _store(client, world, batch_window_s=10)
    first = paid_order(client, world, run_db, hour=8)
    _all_online(client, world)
    assert tick(client, clock).offered == 1
    second = paid_order(client, world, run_db, hour=14)
    clock.advance(2)
    assert tick(client, clock).offered == 0  # inside the window: it waits for the batch
    assert offers_of(run_db, second) == []
    clock.advance(8)
    assert tick(client, clock).offered == 1
    assert len(offers_of(run_db, first)) == 1
    assert [o.state for o in offers_of(run_db, second)] == ["offered"]
