"""The geo walkthrough behind `make demo`: runs, exits 0, prints the library's own numbers."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from api import demo
from daojia.cli import app
from geo.cells import latlng_to_cells
from geo.coords import to_wgs84
from geo.eta import PingRejection
from geo.travel import HaversineTravelModel, TransportMode
from tests.api.e2e.server import REPO, free_port


def m_ss(seconds: float) -> str:
    """Seconds as m:ss, the way a user reads a duration."""
    whole = round(seconds)
    return f"{whole // 60}:{whole % 60:02d}"


@pytest.fixture(scope="module")
def printed() -> str:
    """Everything run_demo prints, captured by a recording console."""
    console = Console(record=True, width=140, file=io.StringIO(), color_system=None)
    demo.run_demo(console)
    return console.export_text()


@pytest.mark.parametrize("gcj02", [demo.PEOPLES_SQUARE_GCJ02, demo.LUJIAZUI_GCJ02])
def test_prints_the_conversion_and_cell_of_the_library(
    printed: str, gcj02: tuple[float, float]
) -> None:
    lat, lng = to_wgs84(gcj02[0], gcj02[1], "gcj02")
    assert f"{gcj02[0]:.6f}, {gcj02[1]:.6f}" in printed
    assert f"{float(lat):.6f}, {float(lng):.6f}" in printed
    cell = int(latlng_to_cells(float(lat), float(lng), demo.H3_RES))
    assert f"{cell:x}" in printed
    # Converting must really move the point (GCJ-02 is offset hundreds of metres in Shanghai).
    assert abs(float(lat) - gcj02[0]) + abs(float(lng) - gcj02[1]) > 1e-3


def test_prints_the_travel_model_times_at_both_departures(printed: str) -> None:
    model = HaversineTravelModel()
    o_lat, o_lng = to_wgs84(*demo.PEOPLES_SQUARE_GCJ02, "gcj02")
    d_lat, d_lng = to_wgs84(*demo.LUJIAZUI_GCJ02, "gcj02")
    shanghai = timezone(timedelta(hours=8))
    rows = {}
    for mode in (TransportMode.EBIKE, TransportMode.CAR):
        times = []
        for hour, minute in ((8, 30), (14, 0)):
            at = datetime(2026, 1, 5, hour, minute, tzinfo=shanghai).astimezone(UTC).timestamp()
            times.append(float(model.seconds(o_lat, o_lng, d_lat, d_lng, int(at), mode=mode)))
        rows[mode] = times
        line = next(ln for ln in printed.splitlines() if f" {mode.value} " in ln)
        assert m_ss(times[0]) in line
        assert m_ss(times[1]) in line
    # The morning peak is slower than the afternoon for both.
    assert all(morning > afternoon for morning, afternoon in rows.values())


def test_simulated_ride_counts_down_rejects_the_jump_and_arrives(printed: str) -> None:
    built = demo.build_demo()
    updates = [ping.update for ping in built.ride]
    shown = np.array([u.eta_s for u in updates if u.rejected is None])
    assert (np.diff(shown) <= 1e-9).all()
    assert updates[-1].arrived
    assert [u.rejected for u in updates if u.rejected is not None] == [
        PingRejection.IMPOSSIBLE_JUMP
    ]
    first = updates[0]
    assert m_ss(first.eta_s) in printed
    assert "arrived" in printed
    assert "jump rejected" in printed
    last_row = next(ln for ln in printed.splitlines() if "arrived" in ln)
    assert f"{updates[-1].distance_remaining_m:.0f}" in last_row


def test_daojia_demo_walkthrough_exits_zero() -> None:
    result = CliRunner().invoke(app, ["demo", "--walkthrough-only"])
    assert result.exit_code == 0, result.output
    assert "H3 cell" in result.output


@pytest.mark.slow
def test_make_demo_serves_the_seeded_city_on_the_embedded_default(tmp_path: Path) -> None:
    """What `make demo` leaves running: SQLite under var/, demo data, the sandbox, a login."""
    port = free_port()
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("DAOJIA_")]:
        del env[key]  # the embedded default: no database or Redis URL
    env.update(
        DAOJIA_VAR_DIR=str(tmp_path / "var"),
        DAOJIA_ARGON2_TIME_COST="1",
        DAOJIA_ARGON2_MEMORY_KIB="8",
        DAOJIA_LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "daojia", "demo", "--port", str(port)],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "demo server did not come up in 180 s"
            time.sleep(0.3)
        assert (tmp_path / "var").is_dir()
        hot = httpx.get(
            base + "/v1/catalog/services/hot",
            params={"lat": 31.2304, "lng": 121.4737},
            headers={"Accept-Language": "en"},
        )
        assert hot.status_code == 200, hot.text
        assert hot.json()["items"], "the demo city has hot services in central Shanghai"
        login = httpx.post(
            base + "/v1/auth/login",
            json={"phone": "13300000000", "password": "Customer-demo-2026"},
        )
        assert login.status_code == 200, login.text
    finally:
        proc.terminate()
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    assert f"http://127.0.0.1:{port}" in out
    assert "13300000000" in out
