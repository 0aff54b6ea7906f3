"""A silent stream sends keepalives and re-reads its order only every few of them."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.dispatcher.conftest import Clock
from tests.api.orders.world import World
from tests.api.tracking.test_privacy import _en_route, _token, _until_closed


def test_a_silent_stream_rechecks_the_order_every_few_keepalives(
    client: TestClient,
    world: World,
    run_db: Any,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.orders.models import Order
    from api.tracking import router

    monkeypatch.setattr(router, "KEEPALIVE_S", 0.05)
    oid, _worker = _en_route(client, world, run_db, clock)
    with client.websocket_connect(f"/v1/orders/{oid}/track?token={_token(world.alice)}") as ws:
        assert ws.receive_json()["type"] == "status"
        assert ws.receive_json()["type"] == "position"

        async def cancel_quietly(session: Any) -> None:
            # As if the final status message was lost (pub/sub is at most once).
            order = await session.get(Order, oid)
            order.status = "cancelled"
            await session.commit()

        run_db(cancel_quietly)
        rest, code = _until_closed(ws)
    # Keepalives alone until the re-check notices, then a normal close.
    assert [m["type"] for m in rest] == ["keepalive"] * (router.RECHECK_EVERY - 1)
    assert code == 1000
