"""The ingest benchmark's path through the worker batch endpoint works on both live layers."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from benchmarks import ingest
from benchmarks.stream import HttpConn, serve
from tests.api.realtime.conftest import REDIS_URL, redis_reachable
from tests.services import require


@pytest.mark.slow
@pytest.mark.parametrize("live", ["memory", "redis"])
def test_api_ingest_accepts_every_fix_batched_and_one_by_one(live: str) -> None:
    if live == "redis":
        ok, reason = redis_reachable()
        require(ok, reason)
    args = ingest.parse_args(
        [
            *("--pings", "600", "--workers", "30", "--baseline-pings", "40"),
            *("--api-batch", "50", "--api-concurrency", "3", "--repeat", "1"),
            *("--redis-url", REDIS_URL),
        ]
    )
    assert (args.api_pings, args.api_workers, args.api_baseline_pings) == (600, 30, 40)
    section = ingest.run_api(live, args)
    assert section["all_accepted"] is True
    assert section["batched"]["accepted"] == 600
    assert section["per_call"]["accepted"] == 40
    assert section["batched"]["pings_per_s"] > 0
    assert section["speedup"] > 0


def test_api_batches_are_plausible_tracks() -> None:
    epoch = 1.8e9
    a = ingest.api_batch(7, 100, epoch + 60.0, epoch)
    b = ingest.api_batch(7, 1, epoch + 61.0, epoch)
    assert np.all(np.diff(a.ts) > 0)
    assert a.ts[-1] == epoch + 60.0
    # Any two fixes imply the riding speed, so the endpoint accepts all of them.
    lat = np.r_[a.lat, b.lat]
    ts = np.r_[a.ts, b.ts]
    speed = np.diff(lat) * 111_320.0 / np.diff(ts)
    np.testing.assert_allclose(speed, ingest.API_SPEED_MPS, rtol=1e-3)


@pytest.mark.slow
def test_http_sink_posts_one_request_per_batch() -> None:
    with serve(2, with_orders=False) as server:

        async def go() -> list[int]:
            conn = await HttpConn.open(server.port)
            try:
                now = time.time()
                return [
                    await ingest.http_sink(conn, token)(ingest.api_batch(w, 20, now, now - 5))
                    for w, (_order, token, _customer) in enumerate(server.seeded)
                ]
            finally:
                await conn.aclose()

        assert asyncio.run(go()) == [20, 20]
