"""A small booking world: two enterprises with areas, services and workers, customers, addresses.

Rows are written straight to the database (the catalog and address APIs have their
own tests); everything booking needs is here so orders, payments, notifications and
the authorization matrix share one setup. Import the ``world`` fixture into a
test module (or conftest) to use it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import shapely
from fastapi.testclient import TestClient
from shapely.geometry import box
from sqlalchemy.ext.asyncio import AsyncSession

from api.addresses.models import Address
from api.auth.models import Role
from api.catalog.models import Service, ServiceArea, ServiceCategory
from api.core.geo_edge import point_cell
from api.tenants.models import Worker
from tests.api.conftest import Account

SHANGHAI = ZoneInfo("Asia/Shanghai")
BOX_A = (121.40, 31.15, 121.60, 31.30)  # min_lng, min_lat, max_lng, max_lat
BOX_B = (121.70, 31.15, 121.85, 31.30)
HOME_A = (31.22, 121.47)
OUTSIDE = (39.9042, 116.4074)  # Beijing
ALL_WEEK = [{"weekday": d, "start_min": 8 * 60, "end_min": 20 * 60} for d in range(7)]


def tomorrow_local() -> date:
    """Tomorrow in Shanghai (always more than the 2 h lead time away at 10:00)."""
    return (datetime.now(SHANGHAI) + timedelta(days=1)).date()


def local_slot(day: date, hour: int, minute: int = 0) -> datetime:
    """A Shanghai wall-clock time on ``day`` as UTC."""
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


@dataclass
class World:
    """Ids and accounts of the booking world."""

    admin: Account
    ent_a: int
    ent_b: int
    staff_a: Account
    staff_b: Account
    service_a: int
    service_b: int
    workers_a: list[tuple[int, Account]]
    worker_b: tuple[int, Account]
    alice: Account
    bob: Account
    alice_address: int
    alice_far_address: int
    bob_address: int
    day: date

    def slot(self, hour: int = 10, minute: int = 0) -> str:
        """An ISO slot start tomorrow at ``hour`` local time."""
        return local_slot(self.day, hour, minute).isoformat()


def _area(ent: int, name: str, bounds: tuple[float, float, float, float]) -> ServiceArea:
    geom = box(*bounds)
    return ServiceArea(
        enterprise_id=ent,
        name=name,
        city="上海",
        polygon_wkb=shapely.to_wkb(geom),
        min_lng=bounds[0],
        min_lat=bounds[1],
        max_lng=bounds[2],
        max_lat=bounds[3],
    )


def _service(ent: int, cat: int, name: str, price: int, minutes: int) -> Service:
    return Service(
        enterprise_id=ent,
        category_id=cat,
        names={"zh-CN": name, "en": "Home cleaning"},
        descriptions={},
        price_fen=price,
        duration_min=minutes,
        required_skills=["cleaning"],
        popularity=10,
        search_text=name,
    )


def _address(user_id: int, lat: float, lng: float) -> Address:
    return Address(
        user_id=user_id,
        contact_name="张三",
        contact_phone="13800138000",
        label="家",
        detail="上海市某路 1 号",
        lat=lat,
        lng=lng,
        h3_cell=point_cell(lat, lng),
        is_default=False,
    )


def build_world(
    make_user: Callable[..., Account],
    make_enterprise: Callable[[str], int],
    run_db: Any,
    n_workers: int = 3,
) -> World:
    """Create the world (``n_workers`` workers in enterprise A, one in B)."""
    admin = make_user(Role.ADMIN)
    ent_a, ent_b = make_enterprise("clean-a"), make_enterprise("clean-b")
    staff_a, staff_b = make_user(Role.STAFF, ent_a), make_user(Role.STAFF, ent_b)
    alice, bob = make_user(Role.CUSTOMER), make_user(Role.CUSTOMER)
    worker_accounts = [make_user(Role.WORKER, ent_a) for _ in range(n_workers)]
    worker_b_account = make_user(Role.WORKER, ent_b)

    async def create(session: AsyncSession) -> dict[str, Any]:
        session.add_all([_area(ent_a, "A", BOX_A), _area(ent_b, "B", BOX_B)])
        cat = ServiceCategory(code="cleaning-w", names={"zh-CN": "保洁", "en": "Cleaning"})
        session.add(cat)
        await session.flush()
        svc_a = _service(ent_a, cat.id, "日常保洁", 9900, 120)
        svc_b = _service(ent_b, cat.id, "深度保洁", 19900, 120)
        session.add_all([svc_a, svc_b])
        workers = []
        for i, acc in enumerate(worker_accounts):
            w = Worker(
                user_id=acc.id, enterprise_id=ent_a, display_name=f"师傅{i + 1}",
                skills=["cleaning"], shifts=ALL_WEEK, rating=4.8,
                home_lat=HOME_A[0] + 0.001 * i, home_lng=HOME_A[1],
                home_cell=point_cell(HOME_A[0] + 0.001 * i, HOME_A[1]),
            )  # fmt: skip
            session.add(w)
            workers.append(w)
        wb = Worker(
            user_id=worker_b_account.id, enterprise_id=ent_b, display_name="师傅B",
            skills=["cleaning"], shifts=ALL_WEEK, rating=4.5, home_lat=31.22,
            home_lng=121.75, home_cell=point_cell(31.22, 121.75),
        )  # fmt: skip
        session.add(wb)
        a1 = _address(alice.id, 31.23, 121.48)
        a2 = _address(alice.id, *OUTSIDE)
        b1 = _address(bob.id, 31.21, 121.46)
        session.add_all([a1, a2, b1])
        await session.flush()
        return {
            "svc_a": svc_a.id,
            "svc_b": svc_b.id,
            "workers": [w.id for w in workers],
            "wb": wb.id,
            "addr": (a1.id, a2.id, b1.id),
        }

    ids = run_db(create)
    return World(
        admin=admin,
        ent_a=ent_a,
        ent_b=ent_b,
        staff_a=staff_a,
        staff_b=staff_b,
        service_a=ids["svc_a"],
        service_b=ids["svc_b"],
        workers_a=list(zip(ids["workers"], worker_accounts, strict=True)),
        worker_b=(ids["wb"], worker_b_account),
        alice=alice,
        bob=bob,
        alice_address=ids["addr"][0],
        alice_far_address=ids["addr"][1],
        bob_address=ids["addr"][2],
        day=tomorrow_local(),
    )


@pytest.fixture
def world(
    client: TestClient,
    make_user: Callable[..., Account],
    make_enterprise: Callable[[str], int],
    run_db: Any,
) -> World:
    """The booking world with three workers in enterprise A."""
    return build_world(make_user, make_enterprise, run_db)


def book(
    client: TestClient,
    w: World,
    *,
    hour: int = 10,
    who: Account | None = None,
    address: int | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST /v1/orders for Alice (or ``who``) at ``hour`` tomorrow; returns the response."""
    who = who or w.alice
    return client.post(
        "/v1/orders",
        json={
            "service_id": w.service_a,
            "address_id": address or (w.alice_address if who is w.alice else w.bob_address),
            "slot_start": w.slot(hour),
        },
        headers={**who.headers, **(headers or {})},
    )  # fmt: skip


def pay_sandbox(client: TestClient, w: World, order_id: int, who: Account | None = None) -> str:
    """Start a sandbox payment and press the pay page's button; returns the outcome header."""
    who = who or w.alice
    resp = client.post(f"/v1/orders/{order_id}/payments", json={}, headers=who.headers)
    assert resp.status_code == 200, resp.text
    trade = resp.json()["out_trade_no"]
    page = client.get("/v1/payments/sandbox/pay", params={"out_trade_no": trade})
    assert page.status_code == 200
    assert "<form" in page.text
    done = client.post(
        "/v1/payments/sandbox/pay",
        content=f"out_trade_no={trade}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert done.status_code == 200, done.text
    return str(done.headers["X-Payment-Outcome"])
