"""Catalog logic: categories, services, service areas, hot services, search.

No FastAPI here. Areas are stored as WGS-84 WKB; containment goes through a
bounding-box prefilter in SQL and then the exact polygon test in geo.areas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio
import anyio.to_thread
import shapely
from sqlalchemy import BigInteger, and_, column, func, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from api.auth.models import Role, User
from api.catalog.models import Service, ServiceArea, ServiceCategory
from api.core.db import UTCDateTime
from api.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.core.geo_edge import CoordType
from api.tenants.models import Enterprise
from geo.areas import AreaSet as GeoAreaSet
from geo.areas import Geometry
from geo.areas import ServiceArea as GeoServiceArea
from geo.errors import GeoError, InvalidCoordinate

#: Window of the hot-services ranking.
HOT_WINDOW = timedelta(days=30)


class ServiceNotFound(NotFound):
    """Unknown (or inactive) service id."""

    code = "service_not_found"
    message = "Service not found."


class CategoryNotFound(NotFound):
    """Unknown category id or code."""

    code = "category_not_found"
    message = "Service category not found."


class CategoryCodeTaken(Conflict):
    """A category code that already exists."""

    code = "category_code_taken"
    message = "This category code is already used."


class AreaNotFound(NotFound):
    """Unknown service area id."""

    code = "area_not_found"
    message = "Service area not found."


class InvalidArea(InvalidInput):
    """GeoJSON that is not a usable polygon."""

    status_code = 422
    code = "invalid_area"
    message = "Invalid service area polygon: {reason}"


class NotYourEnterprise(Forbidden):
    """Staff acting on another enterprise's data."""

    code = "not_your_enterprise"
    message = "This belongs to another enterprise."


class EnterpriseRequired(InvalidInput):
    """An admin must say which enterprise a new service or area is for."""

    code = "enterprise_required"
    message = "Choose the enterprise (enterprise_id)."


# ---------------------------------------------------------------- tenancy


async def resolve_enterprise(session: AsyncSession, actor: User, enterprise_id: int | None) -> int:
    """The enterprise an admin or staff member acts for (staff: always their own)."""
    if Role(actor.role) is Role.STAFF:
        if enterprise_id is not None and enterprise_id != actor.enterprise_id:
            raise NotYourEnterprise()
        assert actor.enterprise_id is not None  # the users CHECK constraint guarantees it
        return actor.enterprise_id
    if enterprise_id is None:
        raise EnterpriseRequired()
    if await session.get(Enterprise, enterprise_id) is None:
        from api.auth.service import EnterpriseNotFound

        raise EnterpriseNotFound()
    return enterprise_id


def check_owner(actor: User, enterprise_id: int) -> None:
    """Staff may only touch their own enterprise's rows; admins anything."""
    if Role(actor.role) is Role.ADMIN:
        return
    if Role(actor.role) is not Role.STAFF or actor.enterprise_id != enterprise_id:
        raise NotYourEnterprise()


# ---------------------------------------------------------------- categories


async def list_categories(session: AsyncSession) -> list[ServiceCategory]:
    """Active categories in display order."""
    rows = await session.scalars(
        select(ServiceCategory)
        .where(ServiceCategory.is_active.is_(True))
        .order_by(ServiceCategory.sort_order, ServiceCategory.id)
    )
    return list(rows)


async def create_category(
    session: AsyncSession, *, code: str, names: dict[str, str], sort_order: int
) -> ServiceCategory:
    """A new category (admin)."""
    if await session.scalar(select(ServiceCategory.id).where(ServiceCategory.code == code)):
        raise CategoryCodeTaken()
    category = ServiceCategory(code=code, names=names, sort_order=sort_order)
    session.add(category)
    await session.commit()
    return category


async def category_by_code(session: AsyncSession, code: str) -> ServiceCategory:
    """The category with ``code``."""
    category = await session.scalar(select(ServiceCategory).where(ServiceCategory.code == code))
    if category is None:
        raise CategoryNotFound()
    return category


# ---------------------------------------------------------------- services


def search_text_of(names: dict[str, str], descriptions: dict[str, str], skills: list[str]) -> str:
    """The lower-cased text keyword search matches against."""
    return "\n".join([*names.values(), *descriptions.values(), *skills]).lower()


async def create_service(session: AsyncSession, actor: User, data: dict[str, Any]) -> Service:
    """A new service of the actor's (staff) or the named (admin) enterprise."""
    enterprise_id = await resolve_enterprise(session, actor, data.pop("enterprise_id", None))
    if await session.get(ServiceCategory, data["category_id"]) is None:
        raise CategoryNotFound()
    service = Service(enterprise_id=enterprise_id, **data)
    service.search_text = search_text_of(
        service.names, service.descriptions or {}, service.required_skills or []
    )
    session.add(service)
    await session.commit()
    return service


async def update_service(
    session: AsyncSession, actor: User, service_id: int, changes: dict[str, Any]
) -> Service:
    """Apply ``changes`` to a service the actor's enterprise owns."""
    service = await session.get(Service, service_id)
    if service is None:
        raise ServiceNotFound()
    check_owner(actor, service.enterprise_id)
    category_id = changes.get("category_id")
    if category_id is not None and await session.get(ServiceCategory, category_id) is None:
        raise CategoryNotFound()
    for key, value in changes.items():
        if value is not None:
            setattr(service, key, value)
    service.search_text = search_text_of(
        service.names, service.descriptions, service.required_skills
    )
    await session.commit()
    return service


async def get_service(
    session: AsyncSession, service_id: int, *, active_only: bool = True
) -> Service:
    """A service by id (404 when unknown or, for customers, inactive)."""
    service = await session.get(Service, service_id)
    if service is None or (active_only and not service.is_active):
        raise ServiceNotFound()
    return service


async def categories_by_id(session: AsyncSession, ids: set[int]) -> dict[int, ServiceCategory]:
    """Categories for a set of ids."""
    if not ids:
        return {}
    rows = await session.scalars(select(ServiceCategory).where(ServiceCategory.id.in_(ids)))
    return {c.id: c for c in rows}


@dataclass(frozen=True)
class ReviewStats:
    """Review count and mean rating of one service."""

    count: int = 0
    average_rating: float | None = None


async def review_stats(session: AsyncSession, service_ids: list[int]) -> dict[int, ReviewStats]:
    """Review summary per service; zero until the reviews table exists (no invented numbers)."""
    if not service_ids or not await _has_table(session, "reviews"):
        return {}
    reviews = table("reviews", column("service_id"), column("rating"))
    rows = await session.execute(
        select(reviews.c.service_id, func.count(), func.avg(reviews.c.rating))
        .where(reviews.c.service_id.in_(service_ids))
        .group_by(reviews.c.service_id)
    )
    return {
        int(sid): ReviewStats(int(n), None if avg is None else round(float(avg), 2))
        for sid, n, avg in rows
    }


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search_services(
    session: AsyncSession,
    *,
    keyword: str | None,
    category_id: int | None,
    enterprise_ids: set[int] | None,
    limit: int,
    offset: int,
) -> tuple[list[Service], int]:
    """Active services filtered by keyword, category and enterprises; newest popular first."""
    conditions: list[ColumnElement[bool]] = [Service.is_active.is_(True)]
    if keyword:
        for word in keyword.lower().split():
            conditions.append(Service.search_text.like(f"%{_escape_like(word)}%", escape="\\"))
    if category_id is not None:
        conditions.append(Service.category_id == category_id)
    if enterprise_ids is not None:
        if not enterprise_ids:
            return [], 0
        conditions.append(Service.enterprise_id.in_(enterprise_ids))
    total = await session.scalar(select(func.count()).select_from(Service).where(*conditions))
    rows = await session.scalars(
        select(Service)
        .where(*conditions)
        .order_by(Service.popularity.desc(), Service.id)
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def _has_table(session: AsyncSession, name: str) -> bool:
    conn = await session.connection()
    return bool(await conn.run_sync(lambda c: inspect(c).has_table(name)))


#: The columns of ``orders`` the ranking counts. The catalog sits below orders (orders
#: import the catalog), so it names the table rather than importing its model, as
#: ``review_stats`` does for ``reviews``.
_PAID_ORDERS = table(
    "orders",
    column("service_id", BigInteger()),
    column("service_area_id", BigInteger()),
    column("paid_at", UTCDateTime()),
)


async def hot_services(
    session: AsyncSession,
    *,
    enterprise_ids: set[int] | None,
    area_ids: list[int],
    now: datetime,
    limit: int,
) -> tuple[list[tuple[Service, int]], str]:
    """Services ranked by paid orders in the caller's areas over the last 30 days.

    Counts orders paid within ``HOT_WINDOW`` (ties broken by ``popularity``).
    Where nothing was paid in the window yet (a new area, a new platform) the
    ranking falls back to the services' ``popularity`` field (set by operators
    / the seed), reported as ``ranking_basis = "popularity"`` so clients can
    tell the two apart.
    """
    orders = _PAID_ORDERS.c
    base = [Service.is_active.is_(True)]
    if enterprise_ids is not None:
        if not enterprise_ids:
            return [], "popularity"
        base.append(Service.enterprise_id.in_(enterprise_ids))
    order_filter = [orders.paid_at.is_not(None), orders.paid_at >= now - HOT_WINDOW]
    if area_ids:
        order_filter.append(orders.service_area_id.in_(area_ids))
    counts = (
        select(orders.service_id.label("service_id"), func.count().label("n"))
        .where(and_(*order_filter))
        .group_by(orders.service_id)
        .subquery()
    )
    score = func.coalesce(counts.c.n, 0)
    rows = (
        await session.execute(
            select(Service, score)
            .outerjoin(counts, counts.c.service_id == Service.id)
            .where(*base)
            .order_by(score.desc(), Service.popularity.desc(), Service.id)
            .limit(limit)
        )
    ).all()
    if any(int(n) for _, n in rows):
        return [(svc, int(n)) for svc, n in rows], "paid_orders_30d"
    return [(svc, svc.popularity) for svc, _ in rows], "popularity"


# ---------------------------------------------------------------- service areas


def parse_area(geojson: dict[str, Any], coord_type: CoordType) -> Geometry:
    """A validated WGS-84 (Multi)Polygon from client GeoJSON (``[lng, lat]``) in ``coord_type``.

    Validation and conversion are ``geo.areas.AreaSet.from_geojson``'s; its precise
    (English, technical) reason goes to ``details``, the message is translated.
    """
    try:
        parsed = GeoAreaSet.from_geojson(geojson, coord_type=coord_type)
    except InvalidCoordinate as exc:
        raise InvalidArea(reason=_BAD_COORDS, details={"reason": str(exc)}) from exc
    except GeoError as exc:
        raise InvalidArea(reason=_BAD_POLYGON, details={"reason": str(exc)}) from exc
    if len(parsed) != 1:
        raise InvalidArea(reason=_ONE_AREA, details={"areas": len(parsed)})
    return parsed.areas[0].geometry


_BAD_COORDS = "coordinates must be [lng, lat] within range"
_BAD_POLYGON = "not a valid polygon (see details)"
_ONE_AREA = "send exactly one area"


def _geo_area(area: ServiceArea) -> GeoServiceArea:
    return GeoServiceArea(
        area_id=str(area.id), name=area.name, geometry=shapely.from_wkb(area.polygon_wkb)
    )


def area_geojson(area: ServiceArea, coord_type: CoordType) -> dict[str, Any]:
    """The area's polygon as a GeoJSON geometry in ``coord_type``."""
    collection = GeoAreaSet((_geo_area(area),)).to_geojson(coord_type)
    geometry: dict[str, Any] = collection["features"][0]["geometry"]
    return geometry


def _apply_geometry(area: ServiceArea, geom: Geometry) -> None:
    min_lng, min_lat, max_lng, max_lat = geom.bounds
    area.polygon_wkb = shapely.to_wkb(geom)
    area.min_lat, area.min_lng, area.max_lat, area.max_lng = min_lat, min_lng, max_lat, max_lng


async def create_area(
    session: AsyncSession,
    actor: User,
    *,
    enterprise_id: int | None,
    name: str,
    city: str,
    geom: Geometry,
    is_active: bool,
) -> ServiceArea:
    """A new service area of the actor's (staff) or named (admin) enterprise."""
    owner = await resolve_enterprise(session, actor, enterprise_id)
    area = ServiceArea(enterprise_id=owner, name=name, city=city, is_active=is_active)
    _apply_geometry(area, geom)
    session.add(area)
    await session.commit()
    return area


async def update_area(
    session: AsyncSession,
    actor: User,
    area_id: int,
    *,
    name: str | None,
    city: str | None,
    geom: Geometry | None,
    is_active: bool | None,
) -> ServiceArea:
    """Change an area the actor's enterprise owns."""
    area = await session.get(ServiceArea, area_id)
    if area is None:
        raise AreaNotFound()
    check_owner(actor, area.enterprise_id)
    if name is not None:
        area.name = name
    if city is not None:
        area.city = city
    if is_active is not None:
        area.is_active = is_active
    if geom is not None:
        _apply_geometry(area, geom)
    await session.commit()
    return area


async def get_area(session: AsyncSession, area_id: int) -> ServiceArea:
    """A service area by id."""
    area = await session.get(ServiceArea, area_id)
    if area is None:
        raise AreaNotFound()
    return area


async def list_areas(session: AsyncSession, *, enterprise_id: int | None) -> list[ServiceArea]:
    """Active areas, optionally of one enterprise."""
    stmt = select(ServiceArea).where(ServiceArea.is_active.is_(True))
    if enterprise_id is not None:
        stmt = stmt.where(ServiceArea.enterprise_id == enterprise_id)
    return list(await session.scalars(stmt.order_by(ServiceArea.id)))


@dataclass(frozen=True)
class AreaHit:
    """An active service area covering a point."""

    area_id: int
    enterprise_id: int


class AreaLookup:
    """Point-in-area answers from a ``geo.areas.AreaSet`` of every active area.

    The set (with its H3 cover) is rebuilt only when the active areas change: each
    query first reads a cheap fingerprint (count, max id, id sum, last update), so
    several API processes stay consistent without any messaging between them.
    """

    def __init__(self, cover_res: int = 7) -> None:
        self._cover_res = cover_res
        self._key: tuple[Any, ...] | None = None
        self._set: GeoAreaSet | None = None
        self._owners: dict[str, int] = {}
        self._lock = anyio.Lock()

    @staticmethod
    def fingerprint_columns() -> tuple[Any, ...]:
        """Scalar subqueries whose values change whenever the active areas change.

        A caller that queries anyway can select these alongside and pass the values
        as ``key``, saving the lookup its own round trip.
        """
        active = ServiceArea.is_active.is_(True)
        return tuple(
            select(agg).where(active).scalar_subquery()
            for agg in (
                func.count(ServiceArea.id),
                func.max(ServiceArea.id),
                func.sum(ServiceArea.id),
                func.max(ServiceArea.updated_at),
            )
        )

    async def _fingerprint(self, session: AsyncSession) -> tuple[Any, ...]:
        return tuple((await session.execute(select(*self.fingerprint_columns()))).one())

    async def area_set(
        self, session: AsyncSession, key: tuple[Any, ...] | None = None
    ) -> tuple[GeoAreaSet, dict[str, int]]:
        """The current AreaSet and area id → enterprise id (``key``: a fingerprint just read)."""
        if key is None:
            key = await self._fingerprint(session)
        if self._set is not None and key == self._key:
            return self._set, self._owners
        async with self._lock:
            if self._set is None or key != self._key:
                rows = list(
                    await session.scalars(
                        select(ServiceArea)
                        .where(ServiceArea.is_active.is_(True))
                        .order_by(ServiceArea.id)
                    )
                )
                areas = tuple(_geo_area(a) for a in rows)
                # Building the H3 cover is CPU work: keep it off the event loop.
                area_set = await anyio.to_thread.run_sync(_build_area_set, areas, self._cover_res)
                self._set, self._key = area_set, key
                self._owners = {str(a.id): a.enterprise_id for a in rows}
            return self._set, self._owners

    async def containing(
        self, session: AsyncSession, lat: float, lng: float, key: tuple[Any, ...] | None = None
    ) -> list[AreaHit]:
        """Active areas containing the WGS-84 point, by id."""
        area_set, owners = await self.area_set(session, key)
        if len(area_set) == 0:
            return []
        ids = area_set.areas_containing(lat, lng)[0]
        return [AreaHit(int(i), owners[i]) for i in ids]


def _build_area_set(areas: tuple[GeoServiceArea, ...], cover_res: int) -> GeoAreaSet:
    area_set = GeoAreaSet(areas, cover_res=cover_res)
    area_set.cover()
    return area_set
