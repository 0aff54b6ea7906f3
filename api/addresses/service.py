"""Address logic: convert once to WGS-84, index by H3, require a service area, one default."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.addresses.models import Address
from api.auth.models import User
from api.catalog.service import AreaLookup
from api.core.errors import Conflict, InvalidInput, NotFound
from api.core.geo_edge import CoordType, point_cell, to_wgs84
from geo.errors import GeoError

#: A generous cap that stops scripted abuse without bothering anyone real.
MAX_ADDRESSES_PER_USER = 50


class AddressNotFound(NotFound):
    """Unknown address, or one that belongs to somebody else (we do not say which)."""

    code = "address_not_found"
    message = "Address not found."


class OutsideServiceArea(InvalidInput):
    """The point is outside every active service area."""

    status_code = 422
    code = "outside_service_area"
    message = "Sorry, this address is outside our service areas."


class InvalidCoordinates(InvalidInput):
    """A point that cannot be converted (out of range after conversion)."""

    status_code = 422
    code = "invalid_coordinates"
    message = "Give both lat and lng as valid coordinates."


class TooManyAddresses(InvalidInput):
    """The user already has the maximum number of addresses."""

    status_code = 409
    code = "too_many_addresses"
    message = "You can save at most {limit} addresses."


async def _locate(
    session: AsyncSession, lookup: AreaLookup, lat: float, lng: float, coord_type: CoordType
) -> tuple[float, float, int, list[int]]:
    try:
        wlat, wlng = to_wgs84(lat, lng, coord_type)
        cell = point_cell(wlat, wlng)
    except (GeoError, ValueError) as exc:
        raise InvalidCoordinates() from exc
    hits = await lookup.containing(session, wlat, wlng)
    if not hits:
        raise OutsideServiceArea()
    return wlat, wlng, cell, [h.area_id for h in hits]


class DefaultAddressRace(Conflict):
    """Two requests made different addresses the default at the same moment."""

    code = "default_address_conflict"
    message = "The request conflicts with the current state."


async def _commit_or_conflict(session: AsyncSession) -> None:
    # The partial unique index allows one default per user: a concurrent change loses
    # with a 409 the client can retry, instead of a 500.
    try:
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise DefaultAddressRace() from exc


async def _clear_default(session: AsyncSession, user_id: int) -> None:
    await session.execute(
        update(Address)
        .where(Address.user_id == user_id, Address.is_default.is_(True))
        .values(is_default=False)
    )


async def create_address(
    session: AsyncSession, lookup: AreaLookup, user: User, data: dict[str, Any]
) -> tuple[Address, list[int]]:
    """Save an address for ``user``; the first one becomes the default."""
    count = await session.scalar(
        select(func.count()).select_from(Address).where(Address.user_id == user.id)
    )
    if (count or 0) >= MAX_ADDRESSES_PER_USER:
        raise TooManyAddresses(limit=MAX_ADDRESSES_PER_USER)
    lat, lng, cell, area_ids = await _locate(
        session, lookup, data.pop("lat"), data.pop("lng"), data.pop("coord_type")
    )
    make_default = bool(data.pop("is_default", False)) or count == 0
    if make_default:
        await _clear_default(session, user.id)
    address = Address(
        user_id=user.id, lat=lat, lng=lng, h3_cell=cell, is_default=make_default, **data
    )
    session.add(address)
    await _commit_or_conflict(session)
    return address, area_ids


async def get_own(session: AsyncSession, user: User, address_id: int) -> Address:
    """The caller's address ``address_id``; 404 for anyone else's."""
    address = await session.get(Address, address_id)
    if address is None or address.user_id != user.id:
        raise AddressNotFound()
    return address


async def list_own(session: AsyncSession, user: User) -> list[Address]:
    """The caller's addresses, default first."""
    rows = await session.scalars(
        select(Address)
        .where(Address.user_id == user.id)
        .order_by(Address.is_default.desc(), Address.id.desc())
    )
    return list(rows)


async def update_address(
    session: AsyncSession,
    lookup: AreaLookup,
    user: User,
    address_id: int,
    changes: dict[str, Any],
) -> Address:
    """Change the caller's address; a new point is converted and re-checked."""
    address = await get_own(session, user, address_id)
    coord_type = changes.pop("coord_type", CoordType.WGS84)
    lat, lng = changes.pop("lat", None), changes.pop("lng", None)
    if lat is not None and lng is not None:
        address.lat, address.lng, address.h3_cell, _ = await _locate(
            session, lookup, lat, lng, coord_type
        )
    is_default = changes.pop("is_default", None)
    for key, value in changes.items():
        if value is not None:
            setattr(address, key, value)
    if is_default is True and not address.is_default:
        await _clear_default(session, user.id)
        await session.flush()
        address.is_default = True
    elif is_default is False:
        address.is_default = False
    await _commit_or_conflict(session)
    return address


async def delete_address(session: AsyncSession, user: User, address_id: int) -> None:
    """Delete the caller's address."""
    address = await get_own(session, user, address_id)
    await session.delete(address)
    await session.commit()


async def area_ids_of(session: AsyncSession, lookup: AreaLookup, address: Address) -> list[int]:
    """Active service areas covering a stored address (areas can change after saving)."""
    return [h.area_id for h in await lookup.containing(session, address.lat, address.lng)]
