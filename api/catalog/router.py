"""HTTP endpoints of the catalog: categories, services, hot services, search, service areas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.auth.dependencies import AdminUser, ManagerUser
from api.catalog import service
from api.catalog.dependencies import AreaLookupDep, OptionalPoint
from api.catalog.models import Service, ServiceArea, ServiceCategory
from api.catalog.schemas import (
    AreaIn,
    AreaOut,
    AreaPatch,
    CategoryIn,
    CategoryOut,
    HotServiceList,
    HotServiceOut,
    ReviewSummary,
    ServiceIn,
    ServiceList,
    ServiceOut,
    ServicePatch,
    localized,
)
from api.core.db import utcnow
from api.core.deps import IdPath, JsonBody, LocaleDep, SessionDep
from api.core.errors import error_responses
from api.core.geo_edge import CoordType

_errors = error_responses(400, 401, 403, 404, 409, 413, 415, 422)
router = APIRouter(
    prefix="/v1/catalog", tags=["catalog"], dependencies=[JsonBody], responses=_errors
)

Limit = Annotated[int, Query(ge=1, le=100)]
Offset = Annotated[int, Query(ge=0, le=10_000)]
CoordTypeQ = Annotated[CoordType, Query(description="coordinate system of returned geometry")]


def _category_out(category: ServiceCategory, locale: str) -> CategoryOut:
    return CategoryOut(
        id=category.id,
        code=category.code,
        name=localized(category.names, locale),
        names=category.names,
        sort_order=category.sort_order,
    )


def _service_fields(
    svc: Service,
    categories: dict[int, ServiceCategory],
    reviews: dict[int, service.ReviewStats],
    locale: str,
) -> dict[str, object]:
    stats = reviews.get(svc.id, service.ReviewStats())
    category = categories.get(svc.category_id)
    return {
        "id": svc.id,
        "enterprise_id": svc.enterprise_id,
        "category_id": svc.category_id,
        "category_code": category.code if category else "",
        "name": localized(svc.names, locale),
        "description": localized(svc.descriptions, locale) if svc.descriptions else "",
        "names": svc.names,
        "descriptions": svc.descriptions,
        "price_fen": svc.price_fen,
        "duration_min": svc.duration_min,
        "required_skills": svc.required_skills,
        "images": svc.images,
        "is_active": svc.is_active,
        "review_summary": ReviewSummary(count=stats.count, average_rating=stats.average_rating),
    }


async def _services_out(
    session: SessionDep, services: list[Service], locale: str
) -> list[ServiceOut]:
    categories = await service.categories_by_id(session, {s.category_id for s in services})
    reviews = await service.review_stats(session, [s.id for s in services])
    return [ServiceOut(**_service_fields(s, categories, reviews, locale)) for s in services]


def _area_out(area: ServiceArea, coord_type: CoordType) -> AreaOut:
    return AreaOut(
        id=area.id,
        enterprise_id=area.enterprise_id,
        name=area.name,
        city=area.city,
        is_active=area.is_active,
        coord_type=coord_type,
        geojson=service.area_geojson(area, coord_type),
    )


@router.get("/categories", summary="Service categories")
async def list_categories(session: SessionDep, locale: LocaleDep) -> list[CategoryOut]:
    """Active categories in display order, names in the request's locale."""
    return [_category_out(c, locale) for c in await service.list_categories(session)]


@router.post("/categories", status_code=status.HTTP_201_CREATED, summary="Create a category")
async def create_category(
    body: CategoryIn, _: AdminUser, session: SessionDep, locale: LocaleDep
) -> CategoryOut:
    """A new category (admin only)."""
    category = await service.create_category(
        session, code=body.code, names=body.names, sort_order=body.sort_order
    )
    return _category_out(category, locale)


async def _enterprises_at(
    session: SessionDep, lookup: AreaLookupDep, point: OptionalPoint
) -> tuple[set[int] | None, list[int]]:
    if point is None:
        return None, []
    hits = await lookup.containing(session, point.lat, point.lng)
    return {h.enterprise_id for h in hits}, [h.area_id for h in hits]


@router.get("/services", summary="Search services")
async def search_services(
    session: SessionDep,
    locale: LocaleDep,
    lookup: AreaLookupDep,
    point: OptionalPoint,
    q: Annotated[str | None, Query(max_length=64, description="keyword, any language")] = None,
    category: Annotated[str | None, Query(max_length=64, description="category code")] = None,
    area_id: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> ServiceList:
    """Active services by keyword, category, service area and/or the caller's location."""
    category_id = (await service.category_by_code(session, category)).id if category else None
    enterprise_ids, _ = await _enterprises_at(session, lookup, point)
    if area_id is not None:
        area = await service.get_area(session, area_id)
        area_ents = {area.enterprise_id} if area.is_active else set()
        enterprise_ids = area_ents if enterprise_ids is None else enterprise_ids & area_ents
    rows, total = await service.search_services(
        session,
        keyword=q.strip() if q else None,
        category_id=category_id,
        enterprise_ids=enterprise_ids,
        limit=limit,
        offset=offset,
    )
    items = await _services_out(session, rows, locale)
    return ServiceList(items=items, total=total, limit=limit, offset=offset)


@router.get("/services/hot", summary="Hot services near me")
async def hot_services(
    session: SessionDep,
    locale: LocaleDep,
    lookup: AreaLookupDep,
    point: OptionalPoint,
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> HotServiceList:
    """Services ranked by paid orders in the caller's service areas over the last 30 days."""
    enterprise_ids, area_ids = await _enterprises_at(session, lookup, point)
    ranked, basis = await service.hot_services(
        session, enterprise_ids=enterprise_ids, area_ids=area_ids, now=utcnow(), limit=limit
    )
    services = [s for s, _ in ranked]
    categories = await service.categories_by_id(session, {s.category_id for s in services})
    reviews = await service.review_stats(session, [s.id for s in services])
    items = [
        HotServiceOut(
            **_service_fields(s, categories, reviews, locale),
            rank=i + 1,
            score=score,
        )
        for i, (s, score) in enumerate(ranked)
    ]
    return HotServiceList(items=items, ranking_basis=basis, area_ids=area_ids)


@router.get("/services/{service_id:int}", summary="Service details")
async def get_service(service_id: IdPath, session: SessionDep, locale: LocaleDep) -> ServiceOut:
    """A service with its price (fen), duration and review summary."""
    svc = await service.get_service(session, service_id)
    return (await _services_out(session, [svc], locale))[0]


@router.post("/services", status_code=status.HTTP_201_CREATED, summary="Create a service")
async def create_service(
    body: ServiceIn, actor: ManagerUser, session: SessionDep, locale: LocaleDep
) -> ServiceOut:
    """Staff create services for their enterprise; admins for any."""
    svc = await service.create_service(session, actor, body.model_dump())
    return (await _services_out(session, [svc], locale))[0]


@router.patch("/services/{service_id:int}", summary="Update a service")
async def update_service(
    service_id: IdPath,
    body: ServicePatch,
    actor: ManagerUser,
    session: SessionDep,
    locale: LocaleDep,
) -> ServiceOut:
    """Change a service of the caller's enterprise (admins: any)."""
    svc = await service.update_service(
        session, actor, service_id, body.model_dump(exclude_unset=True)
    )
    return (await _services_out(session, [svc], locale))[0]


@router.get("/areas", summary="Service areas")
async def list_areas(
    session: SessionDep,
    lookup: AreaLookupDep,
    point: OptionalPoint,
    enterprise_id: Annotated[int | None, Query(ge=1, le=2**53)] = None,
    out_coord_type: Annotated[
        CoordType, Query(alias="out_coord_type", description="system of returned geometry")
    ] = CoordType.WGS84,
) -> list[AreaOut]:
    """Active areas, optionally of one enterprise or covering a point."""
    if point is not None:
        hits = await lookup.containing(session, point.lat, point.lng)
        wanted = [h.area_id for h in hits if enterprise_id in (None, h.enterprise_id)]
        areas = [await service.get_area(session, area_id) for area_id in wanted]
    else:
        areas = await service.list_areas(session, enterprise_id=enterprise_id)
    return [_area_out(a, out_coord_type) for a in areas]


@router.get("/areas/{area_id:int}", summary="One service area")
async def get_area(
    area_id: IdPath, session: SessionDep, coord_type: CoordTypeQ = CoordType.WGS84
) -> AreaOut:
    """A service area's polygon as GeoJSON in ``coord_type``."""
    return _area_out(await service.get_area(session, area_id), coord_type)


@router.post("/areas", status_code=status.HTTP_201_CREATED, summary="Create a service area")
async def create_area(body: AreaIn, actor: ManagerUser, session: SessionDep) -> AreaOut:
    """A new area from GeoJSON in ``coord_type`` (stored as WGS-84)."""
    geom = service.parse_area(body.geojson, body.coord_type)
    area = await service.create_area(
        session,
        actor,
        enterprise_id=body.enterprise_id,
        name=body.name,
        city=body.city,
        geom=geom,
        is_active=body.is_active,
    )
    return _area_out(area, body.coord_type)


@router.patch("/areas/{area_id:int}", summary="Update a service area")
async def update_area(
    area_id: IdPath, body: AreaPatch, actor: ManagerUser, session: SessionDep
) -> AreaOut:
    """Change an area of the caller's enterprise (admins: any)."""
    geom = service.parse_area(body.geojson, body.coord_type) if body.geojson is not None else None
    area = await service.update_area(
        session,
        actor,
        area_id,
        name=body.name,
        city=body.city,
        geom=geom,
        is_active=body.is_active,
    )
    return _area_out(area, body.coord_type)
