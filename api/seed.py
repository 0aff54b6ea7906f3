"""``daojia seed demo``: a deterministic, idempotent demo city (Shanghai-sized).

Sixteen district-sized service areas on a grid over Shanghai (named after its
districts; the shapes are a demo grid, not real boundaries), two enterprises
splitting them with an overlap, four categories and their services in zh-CN,
en, ja and ko, workers with skills, weekly shifts and home points inside their
enterprise's areas, and customers. Running it again changes nothing: every row
is looked up by its natural key first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from argon2 import PasswordHasher
from shapely.geometry import box
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import Role, User
from api.auth.service import hash_password
from api.catalog.models import Service, ServiceArea, ServiceCategory
from api.catalog.service import search_text_of
from api.core.geo_edge import point_cell
from api.tenants.models import Enterprise, Worker

#: Demo passwords (printed by the CLI); the environment check in the CLI keeps them out
#: of production.
ADMIN_PHONE = "13000000000"
ADMIN_PASSWORD = "Admin-demo-2026"
STAFF_PASSWORD = "Staff-demo-2026"
WORKER_PASSWORD = "Worker-demo-2026"
CUSTOMER_PASSWORD = "Customer-demo-2026"

# Grid over central Shanghai: 4 x 4 districts of ~0.125° lng x 0.1° lat (~12 x 11 km).
_LNG0, _LAT0, _DLNG, _DLAT = 121.25, 31.00, 0.125, 0.10
DISTRICTS = (
    "金山", "松江", "闵行", "奉贤",
    "青浦", "长宁", "徐汇", "浦东南",
    "嘉定", "普陀", "静安", "黄浦",
    "宝山", "虹口", "杨浦", "浦东北",
)  # fmt: skip

CATEGORIES: dict[str, dict[str, str]] = {
    "cleaning": {"zh-CN": "日常保洁", "en": "Cleaning", "ja": "清掃", "ko": "청소"},
    "appliance": {
        "zh-CN": "家电维修",
        "en": "Appliance repair",
        "ja": "家電修理",
        "ko": "가전 수리",
    },
    "care": {"zh-CN": "母婴护理", "en": "Baby care", "ja": "育児サポート", "ko": "육아 도우미"},
    "elderly": {"zh-CN": "老人陪护", "en": "Elderly care", "ja": "高齢者介護", "ko": "노인 돌봄"},
}

# (category, skill, names, descriptions, price_fen, duration_min, popularity)
SERVICES: tuple[tuple[str, str, dict[str, str], dict[str, str], int, int, int], ...] = (
    (
        "cleaning",
        "cleaning",
        {
            "zh-CN": "日常保洁 2 小时",
            "en": "Home cleaning, 2 hours",
            "ja": "ハウスクリーニング 2時間",
            "ko": "일반 청소 2시간",
        },
        {
            "zh-CN": "客厅、卧室、厨房、卫生间日常清洁",
            "en": "Living room, bedrooms, kitchen and bathroom",
            "ja": "リビング・寝室・キッチン・浴室",
            "ko": "거실, 침실, 주방, 욕실 청소",
        },
        9900,
        120,
        80,
    ),
    (
        "cleaning",
        "deep_cleaning",
        {"zh-CN": "深度保洁", "en": "Deep cleaning", "ja": "徹底クリーニング", "ko": "딥 클리닝"},
        {
            "zh-CN": "油烟机、灶台、卫浴除垢",
            "en": "Range hood, stove and bathroom descaling",
            "ja": "レンジフード・コンロ・浴室の汚れ落とし",
            "ko": "후드, 가스레인지, 욕실 물때 제거",
        },
        29900,
        240,
        45,
    ),
    (
        "cleaning",
        "windows",
        {"zh-CN": "擦玻璃", "en": "Window cleaning", "ja": "窓拭き", "ko": "유리창 청소"},
        {
            "zh-CN": "室内外玻璃清洁（高层需安全绳）",
            "en": "Inside and outside windows",
            "ja": "窓の内外の清掃",
            "ko": "창문 안팎 청소",
        },
        15900,
        180,
        30,
    ),
    (
        "appliance",
        "aircon",
        {
            "zh-CN": "空调清洗",
            "en": "Air conditioner cleaning",
            "ja": "エアコンクリーニング",
            "ko": "에어컨 청소",
        },
        {
            "zh-CN": "挂机拆洗、杀菌",
            "en": "Wall unit disassembly and sterilising",
            "ja": "壁掛けエアコンの分解洗浄",
            "ko": "벽걸이 에어컨 분해 세척",
        },
        12900,
        90,
        60,
    ),
    (
        "appliance",
        "washer",
        {
            "zh-CN": "洗衣机清洗",
            "en": "Washing machine cleaning",
            "ja": "洗濯機クリーニング",
            "ko": "세탁기 청소",
        },
        {
            "zh-CN": "滚筒/波轮内筒拆洗",
            "en": "Drum removal and cleaning",
            "ja": "洗濯槽の分解洗浄",
            "ko": "세탁조 분해 세척",
        },
        13900,
        120,
        25,
    ),
    (
        "care",
        "infant_care",
        {
            "zh-CN": "育儿嫂（白班）",
            "en": "Nanny (day shift)",
            "ja": "ベビーシッター（日勤）",
            "ko": "베이비시터(주간)",
        },
        {
            "zh-CN": "0-3 岁婴幼儿照护",
            "en": "Care for children aged 0-3",
            "ja": "0〜3歳児のお世話",
            "ko": "0~3세 영유아 돌봄",
        },
        39900,
        480,
        20,
    ),
    (
        "elderly",
        "elderly_care",
        {
            "zh-CN": "老人陪护 4 小时",
            "en": "Elderly companion, 4 hours",
            "ja": "高齢者付き添い 4時間",
            "ko": "어르신 돌봄 4시간",
        },
        {
            "zh-CN": "陪伴、助餐、助浴",
            "en": "Company, meals and bathing help",
            "ja": "見守り・食事・入浴の介助",
            "ko": "말벗, 식사, 목욕 도움",
        },
        19900,
        240,
        15,
    ),
)


@dataclass(frozen=True)
class EnterpriseSpec:
    """A demo enterprise: which districts it serves and what it offers."""

    code: str
    name: str
    districts: tuple[int, ...]
    skills: tuple[str, ...]
    workers: int
    staff_phone: str


ENTERPRISES = (
    EnterpriseSpec(
        "jiajie", "家洁家政（上海）", tuple(range(0, 10)),
        ("cleaning", "deep_cleaning", "windows", "aircon", "washer"), 40, "13100000001",
    ),
    EnterpriseSpec(
        "anxin", "安心到家", tuple(range(6, 16)),
        ("cleaning", "deep_cleaning", "infant_care", "elderly_care", "aircon"), 40, "13100000002",
    ),
)  # fmt: skip
N_CUSTOMERS = 20


@dataclass
class SeedReport:
    """How many rows the run created (zero on a second run) and the demo logins."""

    created: dict[str, int] = field(default_factory=dict)
    logins: list[tuple[str, str, str]] = field(default_factory=list)

    def bump(self, kind: str) -> None:
        """Count one created row of ``kind``."""
        self.created[kind] = self.created.get(kind, 0) + 1


def district_box(index: int) -> shapely.Polygon:
    """The WGS-84 rectangle of demo district ``index`` (row-major from the south-west)."""
    row, col = divmod(index, 4)
    lng, lat = _LNG0 + col * _DLNG, _LAT0 + row * _DLAT
    return box(lng, lat, lng + _DLNG, lat + _DLAT)


async def _get_or_create(
    session: AsyncSession, report: SeedReport, kind: str, model: Any, where: Any, **values: Any
) -> Any:
    row = await session.scalar(select(model).where(where))
    if row is None:
        row = model(**values)
        session.add(row)
        await session.flush()
        report.bump(kind)
    return row


async def seed_demo(
    maker: async_sessionmaker[AsyncSession], hasher: PasswordHasher, *, seed: int = 7
) -> SeedReport:
    """Create the demo city; idempotent and deterministic for a given ``seed``."""
    rng = np.random.default_rng(seed)
    report = SeedReport()
    hashes = {
        pw: await hash_password(hasher, pw)
        for pw in (ADMIN_PASSWORD, STAFF_PASSWORD, WORKER_PASSWORD, CUSTOMER_PASSWORD)
    }
    async with maker() as session:
        await _get_or_create(
            session, report, "users", User, User.phone == ADMIN_PHONE,
            phone=ADMIN_PHONE, password_hash=hashes[ADMIN_PASSWORD],
            display_name="平台管理员", role=Role.ADMIN.value,
        )  # fmt: skip
        report.logins.append(("admin", ADMIN_PHONE, ADMIN_PASSWORD))
        categories = {}
        for order, (code, names) in enumerate(CATEGORIES.items()):
            categories[code] = await _get_or_create(
                session, report, "service_categories", ServiceCategory,
                ServiceCategory.code == code, code=code, names=names, sort_order=order,
            )  # fmt: skip
        for spec in ENTERPRISES:
            ent = await _get_or_create(
                session, report, "enterprises", Enterprise, Enterprise.code == spec.code,
                code=spec.code, name=spec.name,
            )  # fmt: skip
            await _get_or_create(
                session, report, "users", User, User.phone == spec.staff_phone,
                phone=spec.staff_phone, password_hash=hashes[STAFF_PASSWORD],
                display_name=f"{spec.name} 客服", role=Role.STAFF.value, enterprise_id=ent.id,
            )  # fmt: skip
            report.logins.append((f"staff of {spec.code}", spec.staff_phone, STAFF_PASSWORD))
            for d in spec.districts:
                geom = district_box(d)
                min_lng, min_lat, max_lng, max_lat = geom.bounds
                await _get_or_create(
                    session, report, "service_areas", ServiceArea,
                    (ServiceArea.enterprise_id == ent.id) & (ServiceArea.name == DISTRICTS[d]),
                    enterprise_id=ent.id, name=DISTRICTS[d], city="上海",
                    polygon_wkb=shapely.to_wkb(geom), min_lat=min_lat, min_lng=min_lng,
                    max_lat=max_lat, max_lng=max_lng,
                )  # fmt: skip
            for category, skill, names, descriptions, price, minutes, popularity in SERVICES:
                if skill not in spec.skills:
                    continue
                await _get_or_create(
                    session, report, "services", Service,
                    (Service.enterprise_id == ent.id) & (Service.search_text.startswith(
                        names["zh-CN"].lower())),
                    enterprise_id=ent.id, category_id=categories[category].id, names=names,
                    descriptions=descriptions, price_fen=price, duration_min=minutes,
                    required_skills=[skill], popularity=popularity,
                    search_text=search_text_of(names, descriptions, [skill]),
                )  # fmt: skip
            await _seed_workers(session, report, rng, spec, ent.id, hashes[WORKER_PASSWORD])
        report.logins.append(("worker", "13200100000", WORKER_PASSWORD))
        for i in range(N_CUSTOMERS):
            phone = f"1330000{i:04d}"
            await _get_or_create(
                session, report, "users", User, User.phone == phone,
                phone=phone, password_hash=hashes[CUSTOMER_PASSWORD],
                display_name=f"顾客{i + 1}", role=Role.CUSTOMER.value,
            )  # fmt: skip
        report.logins.append(("customer", "13300000000", CUSTOMER_PASSWORD))
        await session.commit()
    return report


async def _seed_workers(
    session: AsyncSession,
    report: SeedReport,
    rng: np.random.Generator,
    spec: EnterpriseSpec,
    enterprise_id: int,
    password_hash: str,
) -> None:
    # Draw every random number whether or not the row exists, so reruns stay deterministic.
    n = spec.workers
    district = rng.choice(np.asarray(spec.districts), size=n)
    u, v = rng.random(n), rng.random(n)
    n_skills = rng.integers(1, 4, size=n)
    skill_order = [rng.permutation(len(spec.skills)) for _ in range(n)]
    starts = rng.choice(np.asarray([7 * 60, 8 * 60, 9 * 60, 10 * 60]), size=n)
    days_off = rng.integers(0, 7, size=n)
    ratings = np.round(4.0 + rng.random(n), 1)
    prefix = "13200" + ("1" if spec.code == ENTERPRISES[0].code else "2")
    for i in range(n):
        phone = f"{prefix}{i:05d}"
        minx, miny, maxx, maxy = district_box(int(district[i])).bounds
        lat = float(miny + v[i] * (maxy - miny))
        lng = float(minx + u[i] * (maxx - minx))
        skills = sorted(spec.skills[j] for j in skill_order[i][: int(n_skills[i])])
        shifts = [
            {"weekday": day, "start_min": int(starts[i]), "end_min": int(starts[i]) + 9 * 60}
            for day in range(7)
            if day != int(days_off[i])
        ]
        user = await _get_or_create(
            session, report, "users", User, User.phone == phone,
            phone=phone, password_hash=password_hash, display_name=f"师傅{spec.code}-{i + 1}",
            role=Role.WORKER.value, enterprise_id=enterprise_id,
        )  # fmt: skip
        await _get_or_create(
            session, report, "workers", Worker, Worker.user_id == user.id,
            user_id=user.id, enterprise_id=enterprise_id, display_name=user.display_name,
            skills=skills, shifts=shifts, rating=float(ratings[i]), home_lat=lat,
            home_lng=lng, home_cell=point_cell(lat, lng),
        )  # fmt: skip
