"""Worker flow over HTTP: presence, pings, offers, grab pool, the visit, the service code.

The worker's planned day is a plans route (``api.plans.router.worker_router``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

import pydantic_core
import structlog
from fastapi import APIRouter, Depends, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import Response
from pydantic import ValidationError

from api.auth import service as auth_service
from api.auth.dependencies import CurrentUser
from api.core.broker import worker_channel
from api.core.deps import (
    IdPath,
    JsonBody,
    LiveDep,
    NowDep,
    SessionDep,
    get_now,
    json_model,
    json_model_openapi,
    websocket_token,
)
from api.core.errors import (
    VALIDATION_SUMMARY,
    DomainError,
    Unauthorized,
    UpstreamUnavailable,
    error_responses,
    field_errors,
)
from api.core.geo_edge import GeoError, to_wgs84
from api.core.i18n import negotiate_locale, translate
from api.core.live import LiveBackends
from api.core.settings import Settings
from api.dispatcher import offer_flow, push
from api.dispatcher.models import OfferMode
from api.tracking.service import TrackWriter
from api.tracking.trips import PingContext
from api.workers import service
from api.workers.dependencies import (
    PingingWorkerDep,
    WorkerCall,
    WorkerCallDep,
    WorkerDep,
    ping_context,
)
from api.workers.schemas import (
    CompleteIn,
    DeclineIn,
    OfferOut,
    OrderBrief,
    PingsIn,
    PingsOut,
    PresenceIn,
    PresenceOut,
    ServiceCodeOut,
    SocketPingsIn,
    StartIn,
)
from api.workers.views import brief

_log = structlog.get_logger("api.workers")

#: Every error is an ErrorResponse (documented so clients and the schema checks know them).
ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 415, 422, 429)
router = APIRouter(prefix="/v1/worker", tags=["worker"], dependencies=[JsonBody], responses=ERRORS)
customer_router = APIRouter(prefix="/v1/orders", tags=["tracking"], responses=ERRORS)
#: The worker's location socket (no JSON-body check: that is for HTTP requests).
socket_router = APIRouter(prefix="/v1/worker", tags=["worker"])


def _offer(view: offer_flow.OfferView) -> OfferOut:
    return OfferOut(
        offer_id=view.offer.id,
        mode=view.offer.mode,
        expires_at=view.offer.expires_at,
        seconds_left=view.seconds_left,
        distance_m=None if view.distance_m is None else round(view.distance_m, 1),
        order=brief(view.order),
    )


@router.post("/presence", summary="Go online or offline")
async def presence(body: PresenceIn, worker: WorkerDep, live: LiveDep, now: NowDep) -> PresenceOut:
    """Online needs a position: in the body or from an earlier ping (422 otherwise)."""
    position = None
    if body.lat is not None and body.lng is not None:
        try:
            position = to_wgs84(body.lat, body.lng, body.coord_type)
        except (GeoError, ValueError):
            raise service.LocationRequired() from None
    got = await service.set_presence(live, worker, online=body.online, position=position, now=now)
    return PresenceOut(state=got.value)


@router.post(
    "/pings",
    summary="Location pings (batch)",
    response_model=PingsOut,
    openapi_extra=json_model_openapi(PingsIn),
)
async def pings(
    request: Request,
    body: Annotated[PingsIn, Depends(json_model(PingsIn))],
    worker: PingingWorkerDep,
) -> Response:
    """Each fix is accepted or flagged (out_of_range, stale, future, impossible_jump, ...)."""
    # The hottest request of the platform: the app's live layer, settings and track
    # writer are read off its state, not as four more dependencies for FastAPI to solve
    # (that cost ~15 % of a 100-fix request).
    state = request.app.state
    now = await get_now(request)
    verdicts = await _ingest(body, state.live, worker, state.settings, now, state.track_writer)
    return Response(pydantic_core.to_json(_verdicts_out(verdicts)), media_type="application/json")


@socket_router.websocket("/live")
async def live_socket(websocket: WebSocket, token: Annotated[str | None, Query()] = None) -> None:
    """Location pings up and offers, assignments and withdrawals down, over one WebSocket.

    The same batches and verdicts as ``POST /v1/worker/pings`` without an HTTP request
    per fix: the app opens ``/v1/worker/live`` (token as ``?token=`` or the subprotocol
    pair ``bearer, <token>``) and sends ``PingsIn`` JSON texts, optionally with an
    ``"id"`` to echo; each gets ``{"type": "ack", "id", "accepted", "results"}``, or
    ``{"type": "error", "code", "message", "details"}`` (translated; the socket stays
    open) for a text that is not a valid batch. Pushed to the worker as they are
    committed (api/dispatcher/push.py): ``{"type": "offer", "offer_id", "expires_at", ...}``
    (first the worker's open offers, then each new one), ``{"type": "assigned", ...}``
    and ``{"type": "withdrawn", "reason": "cancelled"|"reassigned"|"expired", ...}``,
    each with the order's ``order_id``, ``order_no``, ``service_id``, ``slot_start``,
    ``duration_min``. Close codes: 4401 bad or expired token (reconnect with a fresh
    one), 4403 not an active worker (also when that changes while connected).
    """
    state = websocket.app.state
    raw, subprotocol = websocket_token(websocket, token)
    try:
        if raw is None:
            raise Unauthorized()
        uid = int(auth_service.decode_access_token(state.token_config, raw)["sub"])
        ctx = await ping_context(state, uid)
    except service.NotAWorker:
        await websocket.close(code=4403)
        return
    except (DomainError, ValueError):
        await websocket.close(code=4401)
        return
    locale = negotiate_locale(websocket.headers.get("accept-language"))
    await websocket.accept(subprotocol=subprotocol)
    lock = asyncio.Lock()  # pushed frames and acks come from two tasks

    async def send(text: str) -> None:
        async with lock:
            await websocket.send_text(text)

    async with contextlib.AsyncExitStack() as stack:
        await _push_feed(websocket, stack, ctx.worker_id, send)
        await _serve_pings(websocket, raw, uid, locale, send)


async def _push_feed(
    websocket: WebSocket,
    stack: contextlib.AsyncExitStack,
    worker_id: int,
    send: Callable[[str], Awaitable[None]],
) -> None:
    """Subscribe the worker's channel, send its open offers, forward what comes (until
    ``stack`` closes). A broker or database failure leaves the socket to pings (the app
    polls offers)."""
    state = websocket.app.state
    try:
        sub = await stack.enter_async_context(
            state.live.broker.subscribe(worker_channel(worker_id))
        )
        async with state.sessionmaker() as session:
            frames = await push.catch_up(
                session, state.live, worker_id, now=await get_now(websocket)
            )
    except Exception as exc:  # Redis or the database is down: pings still work
        _log.warning("live_socket_push_unavailable", error=type(exc).__name__, detail=str(exc))
        return
    for data in frames:
        await send(data.decode())
    task = asyncio.create_task(push.forward(sub, send), name=f"push-worker-{worker_id}")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    stack.push_async_callback(stop)


async def _serve_pings(
    websocket: WebSocket,
    raw: str,
    uid: int,
    locale: str,
    send: Callable[[str], Awaitable[None]],
) -> None:
    """The socket's receive loop: ping batches in, acks or errors out, until it closes."""
    state = websocket.app.state
    settings: Settings = state.settings
    live: LiveBackends = state.live
    while True:
        try:
            text = await websocket.receive_text()
        except WebSocketDisconnect:
            return
        try:
            # Expiry is checked on every batch; the signature check is remembered.
            auth_service.decode_access_token(state.token_config, raw)
            ctx = await ping_context(state, uid)
        except service.NotAWorker:
            await websocket.close(code=4403)
            return
        except DomainError:
            await websocket.close(code=4401)
            return
        try:
            body = SocketPingsIn.model_validate_json(text)
        except ValidationError as exc:
            await send(_socket_error(exc, locale))
            continue
        try:
            now = await get_now(websocket)
            verdicts = await _ingest(body, live, ctx, settings, now, state.track_writer)
        except Exception as exc:  # the live layer failed (Redis down...): say so, stay open
            _log.warning("live_socket_ingest_failed", error=type(exc).__name__, detail=str(exc))
            await send(_socket_unavailable(body.id, locale))
            continue
        ack = {"type": "ack", "id": body.id, **_verdicts_out(verdicts)}
        await send(pydantic_core.to_json(ack).decode())


async def _ingest(
    body: PingsIn,
    live: LiveBackends,
    ctx: PingContext,
    settings: Settings,
    now: datetime,
    writer: TrackWriter,
) -> list[service.PingVerdict]:
    """``service.ingest_pings`` of a batch as both transports receive it."""
    return await service.ingest_pings(
        live, ctx, body.pings, body.coord_type, settings, now=now, writer=writer
    )


def _verdicts_out(verdicts: list[service.PingVerdict]) -> dict[str, Any]:
    """``PingsOut`` as JSON-ready data (built directly: one pydantic object per fix cost
    more than the rest of a 100-fix request's response)."""
    return {
        "accepted": sum(v.accepted for v in verdicts),
        "results": [
            {"index": v.index, "accepted": v.accepted, "reason": v.reason} for v in verdicts
        ],
    }


def _socket_unavailable(batch_id: str | int | None, locale: str) -> str:
    err = UpstreamUnavailable()
    return json.dumps(
        {
            "type": "error",
            "id": batch_id,
            "code": err.code,
            "message": translate(err.message, locale),
            "details": None,
        },
        ensure_ascii=False,
    )


def _socket_error(exc: ValidationError, locale: str) -> str:
    return json.dumps(
        {
            "type": "error",
            "code": "validation_error",
            "message": translate(VALIDATION_SUMMARY, locale),
            "details": field_errors(exc.errors(), locale),
        },
        ensure_ascii=False,
    )


@router.get("/offers", summary="My current offers with countdown")
async def offers(call: WorkerCallDep) -> list[OfferOut]:
    """Auto offers waiting for my answer, soonest to expire first."""
    views = await offer_flow.current_offers(call.session, call.live, call.worker, now=call.now)
    return [_offer(v) for v in views]


async def _take(call: WorkerCall, offer_id: int, mode: OfferMode) -> OrderBrief:
    """``offer_flow.take_offer`` of an auto offer (accept) or a pool order (claim)."""
    order = await offer_flow.take_offer(
        call.session,
        call.live,
        call.worker,
        call.user,
        offer_id,
        mode,
        settings=call.settings,
        now=call.now,
    )
    return brief(order)


@router.post("/offers/{offer_id}/accept", summary="Accept an offer")
async def accept(offer_id: IdPath, call: WorkerCallDep) -> OrderBrief:
    """409 ``offer_gone`` when expired, withdrawn or already answered."""
    return await _take(call, offer_id, OfferMode.AUTO)


@router.post("/offers/{offer_id}/decline", summary="Decline an offer")
async def decline(offer_id: IdPath, body: DeclineIn, call: WorkerCallDep) -> dict[str, bool]:
    """The order is re-offered to someone else (or handed to staff after too many)."""
    await offer_flow.decline_offer(
        call.session, call.worker, offer_id, body.reason, settings=call.settings, now=call.now
    )
    return {"declined": True}


@router.get("/grab-pool", summary="Open orders near me (抢单)")
async def grab_pool(call: WorkerCallDep) -> list[OfferOut]:
    """Open pool orders shown to me (the dispatcher chose the workers near each), nearest first."""
    views = await offer_flow.grab_pool(
        call.session, call.live, call.worker, call.settings, now=call.now
    )
    return [_offer(v) for v in views]


@router.post("/grab-pool/{offer_id}/claim", summary="Claim a pool order")
async def claim(offer_id: IdPath, call: WorkerCallDep) -> OrderBrief:
    """The first valid claim wins; later ones get 409 ``offer_gone``."""
    return await _take(call, offer_id, OfferMode.GRAB)


@router.post("/orders/{order_id}/depart", summary="On my way")
async def depart(order_id: IdPath, call: WorkerCallDep) -> OrderBrief:
    """accepted -> en_route."""
    order = await service.depart(
        call.session, call.live, call.worker, call.user, order_id, now=call.now
    )
    return brief(order)


@router.post("/orders/{order_id}/arrive", summary="Arrived at the address")
async def arrive(order_id: IdPath, call: WorkerCallDep) -> OrderBrief:
    """Only within ``arrive_radius_m`` of the address (422 ``not_at_address``)."""
    order = await service.arrive(
        call.session, call.live, call.worker, call.user, order_id, call.settings, now=call.now
    )
    return brief(order)


@router.post("/orders/{order_id}/start", summary="Start with the customer's service code")
async def start(order_id: IdPath, body: StartIn, call: WorkerCallDep) -> OrderBrief:
    """Wrong code: 422; too many wrong codes: 429 ``service_code_locked``."""
    order = await service.start(
        call.session,
        call.live,
        call.worker,
        call.user,
        order_id,
        body.code,
        call.settings,
        now=call.now,
    )
    return brief(order)


@router.post("/orders/{order_id}/complete", summary="Complete (optional photos)")
async def complete(order_id: IdPath, body: CompleteIn, call: WorkerCallDep) -> OrderBrief:
    """in_service -> completed; the live position stops being served."""
    order = await service.complete(
        call.session,
        call.live,
        call.worker,
        call.user,
        order_id,
        body.photos,
        call.settings,
        now=call.now,
    )
    return brief(order)


@customer_router.get("/{order_id}/service-code", summary="My service code (核销码)")
async def service_code(order_id: IdPath, user: CurrentUser, session: SessionDep) -> ServiceCodeOut:
    """For the order's customer, once a worker accepted; show it to the worker at the door."""
    return ServiceCodeOut(
        order_id=order_id, code=await service.service_code_for(session, user, order_id)
    )
