"""Address dependencies: "this address exists and belongs to the caller"."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from api.addresses import service
from api.addresses.models import Address
from api.auth.dependencies import CurrentUser
from api.core.deps import IdPath, SessionDep


async def own_address(address_id: IdPath, user: CurrentUser, session: SessionDep) -> Address:
    """The caller's address from the path; 404 when it is unknown or someone else's."""
    return await service.get_own(session, user, address_id)


OwnAddress = Annotated[Address, Depends(own_address)]
