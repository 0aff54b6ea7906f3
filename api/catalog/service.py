"""Catalog logic: categories, services, service areas, hot services, search.

No FastAPI here. Areas are stored as WGS-84 WKB; containment goes through a
bounding-box prefilter in SQL and then the exact polygon test in geo.areas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from sqlalchemy import and_, column, func, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from api.auth.models import Role, User
from api.catalog.models import Service, ServiceArea, ServiceCategory
from api.enterprise.models import Enterprise
from api.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.geo_edge import CoordType, from_wgs84_many, to_wgs84_many
from geo.errors import GeoError

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


async def hot_services(
    session: AsyncSession,
    *,
    enterprise_ids: set[int] | None,
    area_ids: list[int],
    now: datetime,
    limit: int,
) -> tuple[list[tuple[Service, int]], str]:
    """Services ranked by paid orders in the caller's areas over the last 30 days.

    The ranking reads the ``orders`` table (``service_id``, ``service_area_id``,
    ``paid_at``) when it exists. Until the orders migration lands there is
    nothing to count, and the documented fallback is the services'
    ``popularity`` field (set by operators / the seed), reported as
    ``ranking_basis = "popularity"`` so clients can tell.
    """
    base = [Service.is_active.is_(True)]
    if enterprise_ids is not None:
        if not enterprise_ids:
            return [], "popularity"
        base.append(Service.enterprise_id.in_(enterprise_ids))
    if await _has_table(session, "orders"):
        orders = table("orders", column("service_id"), column("service_area_id"), column("paid_at"))
        order_filter = [orders.c.paid_at.is_not(None), orders.c.paid_at >= now - HOT_WINDOW]
        if area_ids:
            order_filter.append(orders.c.service_area_id.in_(area_ids))
        counts = (
            select(orders.c.service_id.label("service_id"), func.count().label("n"))
            .where(and_(*order_filter))
            .group_by(orders.c.service_id)
            .subquery()
        )
        score = func.coalesce(counts.c.n, 0)
        rows = await session.execute(
            select(Service, score)
            .outerjoin(counts, counts.c.service_id == Service.id)
            .where(*base)
            .order_by(score.desc(), Service.popularity.desc(), Service.id)
            .limit(limit)
        )
        return [(s, int(n)) for s, n in rows], "paid_orders_30d"
    services = await session.scalars(
        select(Service).where(*base).order_by(Service.popularity.desc(), Service.id).limit(limit)
    )
    return [(s, s.popularity) for s in services], "popularity"


# ---------------------------------------------------------------- service areas


def parse_area(geojson: dict[str, Any], coord_type: CoordType) -> MultiPolygon:
    """A WGS-84 MultiPolygon from client GeoJSON (lng, lat order) in ``coord_type``."""
    obj = geojson
    if obj.get("type") == "Feature":
        obj = obj.get("geometry") or {}
    if obj.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidArea(reason="type must be Polygon, MultiPolygon or a Feature of one")
    try:
        geom = shape(obj)
    except Exception as exc:  # shapely raises many kinds for malformed coordinates
        raise InvalidArea(reason="malformed coordinates") from exc
    if geom.is_empty:
        raise InvalidArea(reason="empty polygon")
    coords = shapely.get_coordinates(geom)
    if (
        not np.isfinite(coords).all()
        or (np.abs(coords[:, 0]) > 180).any()
        or (np.abs(coords[:, 1]) > 90).any()
    ):
        raise InvalidArea(reason="coordinates must be [lng, lat] within range")
    try:
        lat, lng = to_wgs84_many(coords[:, 1], coords[:, 0], coord_type)
    except GeoError as exc:
        raise InvalidArea(reason="coordinates must be [lng, lat] within range") from exc
    wgs = shapely.set_coordinates(geom, np.column_stack([lng, lat]))
    if not wgs.is_valid:
        wgs = shapely.make_valid(wgs)
    polys = [g for g in getattr(wgs, "geoms", [wgs]) if isinstance(g, Polygon | MultiPolygon)]
    parts: list[Polygon] = []
    for g in polys:
        parts.extend(g.geoms if isinstance(g, MultiPolygon) else [g])
    parts = [p for p in parts if p.area > 0]
    if not parts:
        raise InvalidArea(reason="the polygon has no area")
    return MultiPolygon(parts)


def area_geojson(area: ServiceArea, coord_type: CoordType) -> dict[str, Any]:
    """The area's polygon as GeoJSON in ``coord_type``."""
    geom = shapely.from_wkb(area.polygon_wkb)
    coords = shapely.get_coordinates(geom)
    lat, lng = from_wgs84_many(coords[:, 1], coords[:, 0], coord_type)
    out = shapely.set_coordinates(geom, np.column_stack([lng, lat]))
    return dict(mapping(out))


def _apply_geometry(area: ServiceArea, geom: MultiPolygon) -> None:
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
    geom: MultiPolygon,
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
    geom: MultiPolygon | None,
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


async def areas_containing(session: AsyncSession, lat: float, lng: float) -> list[ServiceArea]:
    """Active areas whose polygon covers the WGS-84 point (bbox in SQL, exact test in geo)."""
    candidates = list(
        await session.scalars(
            select(ServiceArea)
            .where(
                ServiceArea.is_active.is_(True),
                ServiceArea.min_lat <= lat,
                ServiceArea.max_lat >= lat,
                ServiceArea.min_lng <= lng,
                ServiceArea.max_lng >= lng,
            )
            .order_by(ServiceArea.id)
        )
    )
    if not candidates:
        return []
    hits = covering_indices([shapely.from_wkb(a.polygon_wkb) for a in candidates], lat, lng)
    return [candidates[i] for i in hits]


def covering_indices(polygons: list[Any], lat: float, lng: float) -> list[int]:
    """Indices of the WGS-84 polygons that cover a point (edges count as inside)."""
    point = shapely.points(lng, lat)
    mask = shapely.covers(np.asarray(polygons, dtype=object), point)
    return [int(i) for i in np.flatnonzero(mask)]
