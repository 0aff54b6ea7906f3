"""Customer tracking: WebSocket ``/v1/orders/{id}/track`` and the SSE fallback ``.../track/sse``.

Authentication on the WebSocket (browsers cannot set an Authorization header there):
either ``?token=<access token>`` or the subprotocol header
``Sec-WebSocket-Protocol: bearer, <access token>`` (the server then answers with the
``bearer`` subprotocol). The SSE endpoint takes the usual ``Authorization: Bearer``.

Messages are JSON objects: ``{"type": "status", "status", "dispatch_status", "final"}``,
``{"type": "position", "lat", "lng", "coord_type", "ts", "age_s", "stale", "eta_s",
"distance_m", "arrived"}`` (``"reanchored": true`` when the track gave up its old position
for this one: ``geo.plausibility``), ``{"type": "stale", "ts", "age_s"}`` when the position
shown grows older than ``position_stale_s`` with nothing new, and ``{"type": "keepalive"}``.
Positions are WGS-84 unless ``coord_type=gcj02|bd09`` is asked for. After a ``final``
status the stream closes.
WebSocket close codes: 4401 bad token, 4403 not allowed, 4410 order not active.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Annotated, Any

import pydantic_core
from fastapi import APIRouter, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth import service as auth_service
from api.auth.dependencies import CurrentUser
from api.core.deps import IdPath, LiveDep, SessionDep, SettingsDep, app_clock, websocket_token
from api.core.errors import DomainError, Unauthorized, error_responses
from api.core.geo_edge import CoordType
from api.core.live import LiveBackends
from api.orders.models import Order
from api.tracking import service
from api.tracking.dependencies import TrackWriterDep
from api.tracking.service import TrackingEnded, TrackingNotAllowed

ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 415, 422, 429)
router = APIRouter(prefix="/v1/orders", tags=["tracking"], responses=ERRORS)

#: Seconds without a message after which a keepalive is sent.
KEEPALIVE_S = 15.0
#: Every this many silent keepalives the order is re-read (did we miss its final status?).
#: Not at every one: 5,000 idle watchers would otherwise cost 333 queries a second.
RECHECK_EVERY = 4


def _text(message: dict[str, Any], coord_type: CoordType) -> str:
    return pydantic_core.to_json(service.for_client(message, coord_type)).decode()


async def _events(
    live: LiveBackends,
    maker: async_sessionmaker[AsyncSession],
    order: Order,
    first: list[dict[str, Any]],
    coord_type: CoordType,
    stale_after_s: float,
    clock: Callable[[], datetime],
) -> AsyncIterator[tuple[str, str]]:
    """(type, JSON text): snapshot, then live messages until a final status or inactivity.

    Published messages are already JSON in the WGS-84 client form, encoded once by the
    publisher: WGS-84 watchers get those bytes as they are, only others re-encode. When
    the position shown grows older than ``stale_after_s`` with nothing new, a ``stale``
    message says so (once, until the next position).
    """
    shown: float | None = None  # ts of the live position the watcher sees
    async with live.broker.subscribe(service.channel(order.id)) as sub:
        # A change between authorize and subscribe would otherwise be missed; checked
        # before the snapshot goes out, so a watcher never sees a stale snapshot of an
        # order that has already ended, only its final status.
        fresh = await service.reread(maker, order.id)
        if fresh is None or not service.is_active(fresh):
            if fresh is not None:
                yield "status", _text(service.status_message(fresh), coord_type)
            return
        for msg in first:
            if msg["type"] == "position" and not msg["stale"]:
                shown = msg["ts"]
            yield msg["type"], _text(msg, coord_type)
        silent = 0
        while True:
            got = await sub.get(timeout_s=KEEPALIVE_S)
            if got is None:
                silent += 1
                if silent % RECHECK_EVERY == 0 and not await service.still_active(maker, order.id):
                    return
                now = clock().timestamp()
                if shown is not None and now - shown > stale_after_s:
                    yield "stale", _text(service.stale_message(order.id, shown, now), coord_type)
                    shown = None
                yield "keepalive", '{"type": "keepalive"}'
                continue
            msg = got.json()
            if msg.get("type") == "position":
                shown = msg.get("ts")
            if coord_type is CoordType.WGS84 and "coord_type" in msg:
                yield msg["type"], got.data.decode()
            else:
                yield msg["type"], _text(msg, coord_type)
            if msg.get("type") == "status" and msg.get("final"):
                return


@router.websocket("/{order_id}/track")
async def track_ws(
    websocket: WebSocket,
    order_id: int,
    token: Annotated[str | None, Query()] = None,
    coord_type: Annotated[CoordType, Query()] = CoordType.WGS84,
) -> None:
    """Live position, smoothed ETA and status of an active order (see module docstring)."""
    app = websocket.app
    maker: async_sessionmaker[AsyncSession] = app.state.sessionmaker
    stale_after_s = app.state.settings.position_stale_s
    clock = app_clock(app)
    live: LiveBackends = app.state.live
    raw, subprotocol = websocket_token(websocket, token)
    try:
        async with maker() as session:
            if raw is None:
                raise Unauthorized()
            user = await auth_service.user_from_access_token(session, app.state.token_config, raw)
            order = await service.authorize(session, user, order_id)
            first = await service.snapshot(
                session, order, getattr(app.state, "track_writer", None),
                now=clock().timestamp(), stale_after_s=stale_after_s,
            )  # fmt: skip
    except TrackingNotAllowed:
        await websocket.close(code=4403)
        return
    except TrackingEnded:
        await websocket.close(code=4410)
        return
    except DomainError:
        await websocket.close(code=4401)
        return
    await websocket.accept(subprotocol=subprotocol)
    try:
        events = _events(live, maker, order, first, coord_type, stale_after_s, clock)
        async for _type, text in events:
            await websocket.send_text(text)
    except WebSocketDisconnect:
        return  # the client left: nothing to close
    await websocket.close(code=1000)


@router.get(
    "/{order_id}/track/sse",
    summary="Live tracking as Server-Sent Events (fallback of the WebSocket)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def track_sse(
    request: Request,
    order_id: IdPath,
    user: CurrentUser,
    session: SessionDep,
    live: LiveDep,
    writer: TrackWriterDep,
    settings: SettingsDep,
    coord_type: Annotated[CoordType, Query()] = CoordType.WGS84,
) -> StreamingResponse:
    """Same messages as the WebSocket, one ``data:`` line each; ends after a final status."""
    order = await service.authorize(session, user, order_id)
    stale_after_s = settings.position_stale_s
    clock = app_clock(request.app)
    first = await service.snapshot(
        session, order, writer, now=clock().timestamp(), stale_after_s=stale_after_s
    )
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker

    async def body() -> AsyncIterator[bytes]:
        events = _events(live, maker, order, first, coord_type, stale_after_s, clock)
        async for kind, text in events:
            yield f"event: {kind}\ndata: {text}\n\n".encode()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
