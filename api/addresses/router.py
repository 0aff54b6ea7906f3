"""HTTP endpoints of saved addresses (the caller's own only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from api.addresses import service
from api.addresses.dependencies import OwnAddress
from api.addresses.models import Address
from api.addresses.schemas import AddressIn, AddressOut, AddressPatch, mask_phone
from api.auth.dependencies import CurrentUser
from api.catalog.dependencies import AreaLookupDep
from api.core.deps import IdPath, JsonBody, SessionDep
from api.core.errors import error_responses
from api.core.geo_edge import CoordType, from_wgs84

_errors = error_responses(400, 401, 404, 409, 413, 415, 422)
router = APIRouter(
    prefix="/v1/addresses", tags=["addresses"], dependencies=[JsonBody], responses=_errors
)
OutCoord = Annotated[
    CoordType, Query(description="coordinate system of the returned lat/lng (gcj02 for maps)")
]


def _out(address: Address, coord_type: CoordType, area_ids: list[int]) -> AddressOut:
    lat, lng = from_wgs84(address.lat, address.lng, coord_type)
    return AddressOut(
        id=address.id,
        contact_name=address.contact_name,
        contact_phone=address.contact_phone,
        contact_phone_masked=mask_phone(address.contact_phone),
        label=address.label,
        detail=address.detail,
        lat=lat,
        lng=lng,
        coord_type=coord_type,
        h3_cell=format(address.h3_cell, "x"),
        is_default=address.is_default,
        service_area_ids=area_ids,
    )


@router.get("", summary="My addresses")
async def list_addresses(
    user: CurrentUser,
    session: SessionDep,
    lookup: AreaLookupDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> list[AddressOut]:
    """The caller's saved addresses, default first."""
    rows = await service.list_own(session, user)
    return [_out(a, coord_type, await service.area_ids_of(session, lookup, a)) for a in rows]


@router.post("", status_code=status.HTTP_201_CREATED, summary="Save an address")
async def create_address(
    body: AddressIn,
    user: CurrentUser,
    session: SessionDep,
    lookup: AreaLookupDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> AddressOut:
    """Save an address (must be inside a service area); the first becomes the default."""
    address, area_ids = await service.create_address(session, lookup, user, body.model_dump())
    return _out(address, coord_type, area_ids)


@router.get("/{address_id:int}", summary="One of my addresses")
async def get_address(
    address: OwnAddress,
    session: SessionDep,
    lookup: AreaLookupDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> AddressOut:
    """One saved address of the caller."""
    return _out(address, coord_type, await service.area_ids_of(session, lookup, address))


@router.patch("/{address_id:int}", summary="Change an address")
async def update_address(
    address_id: IdPath,
    body: AddressPatch,
    user: CurrentUser,
    session: SessionDep,
    lookup: AreaLookupDep,
    coord_type: OutCoord = CoordType.WGS84,
) -> AddressOut:
    """Change contact, text, location or default flag of one of the caller's addresses."""
    address = await service.update_address(
        session, lookup, user, address_id, body.model_dump(exclude_unset=True)
    )
    return _out(address, coord_type, await service.area_ids_of(session, lookup, address))


@router.delete("/{address_id:int}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete")
async def delete_address(address_id: IdPath, user: CurrentUser, session: SessionDep) -> None:
    """Delete one of the caller's addresses."""
    await service.delete_address(session, user, address_id)
