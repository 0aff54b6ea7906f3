"""Worker flow: presence, location pings, depart / arrive / start / complete, the service code.

No FastAPI here. Order state changes go through ``api.orders.state`` only. Answers to
offers and the grab pool are ``api.dispatcher.offer_flow``'s; the worker's planned day is
``api.plans.service.worker_day``'s. Times are UTC-aware datetimes; ping times are epoch
seconds.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import math
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import Role, User
from api.core.errors import Forbidden, InvalidInput, NotFound, RateLimited
from api.core.geo_edge import CoordType, GeoError, to_wgs84
from api.core.live import KEEP_STATE, HeldFix, LiveBackends, PingBatch, WorkerState
from api.core.settings import Settings
from api.dispatcher.positions import distance_m
from api.orders import state
from api.orders.models import Order
from api.orders.service import WorkerBusy as WorkerBusy  # re-exported: the worker API's error
from api.orders.service import lock_order, release_reservation
from api.orders.state import DispatchStatus, OrderEventType, OrderStatus
from api.tenants.models import Worker
from api.tracking import service as tracking
from api.tracking.models import OrderTrack
from api.tracking.trips import PingContext
from geo.coords import to_wgs84 as to_wgs84_many
from geo.plausibility import (
    DEFAULT_ACCURACY_M,
    MAX_ACCURACY_M,
    Fix,
    judge,
    reachable,
    reachable_steps,
)
from geo.travel import max_speed_mps

# ------------------------------------------------------------------ errors


class NotAWorker(Forbidden):
    """The caller has no active worker profile."""

    code = "not_a_worker"
    message = "Only workers can do this."


class LocationRequired(InvalidInput):
    """Going online needs a position (in the request or from an earlier ping)."""

    status_code = 422
    code = "location_required"
    message = "Send your location before going online."


class JobNotFound(NotFound):
    """No such order assigned to this worker."""

    code = "job_not_found"
    message = "No such job is assigned to you."


class NotAtAddress(InvalidInput):
    """Arrive pressed too far from the customer's address."""

    status_code = 422
    code = "not_at_address"
    message = "You are {distance_m} m from the address; arrive within {radius_m} m."


class NoRecentLocation(InvalidInput):
    """Arrive needs a current position."""

    status_code = 422
    code = "no_recent_location"
    message = "Your current location is unknown; turn on location and try again."


class WrongServiceCode(InvalidInput):
    """The service code does not match."""

    status_code = 422
    code = "wrong_service_code"
    message = "Wrong service code; ask the customer for the code shown in their order."


class ServiceCodeLocked(RateLimited):
    """Too many wrong codes."""

    code = "service_code_locked"
    message = "Too many wrong codes; try again in {minutes} minutes."


class BadPhoto(InvalidInput):
    """A completion photo is not a base64 JPEG or PNG within the size limit."""

    status_code = 422
    code = "bad_photo"
    message = "Photos must be JPEG or PNG images of at most {max_kib} KiB."


# ------------------------------------------------------------------ helpers

#: Dispatch sub-states in which the worker travels to the customer (positions are shared).
TRAVELLING = (DispatchStatus.ACCEPTED.value, DispatchStatus.EN_ROUTE.value)
def mask_phone(phone: str | None) -> str | None:
    """``13812345678`` -> ``138****5678``; short or missing numbers are hidden entirely."""
    if not phone:
        return None
    digits = phone.strip()
    if len(digits) < 7:
        return "****"
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


async def worker_of(session: AsyncSession, user: User) -> Worker:
    """The caller's active worker profile (NotAWorker otherwise)."""
    if user.role != Role.WORKER.value:
        raise NotAWorker()
    worker = await session.scalar(select(Worker).where(Worker.user_id == user.id))
    if worker is None or not worker.is_active:
        raise NotAWorker()
    return worker


# ------------------------------------------------------------------ presence and pings


class PingLike(Protocol):
    """One location ping as sent by the worker app (in ``coord_type``); the API's
    validated ``PingItem`` is one, taken as it is."""

    @property
    def lat(self) -> float: ...
    @property
    def lng(self) -> float: ...
    @property
    def ts(self) -> float: ...
    @property
    def accuracy_m(self) -> float | None: ...


@dataclass(frozen=True)
class PingVerdict:
    """What happened to one ping: accepted into LiveState, or why not."""

    index: int
    accepted: bool
    reason: str | None = None


class PingReason:
    """Why a ping was not used (stable codes in the response)."""

    OUT_OF_RANGE = "out_of_range"
    STALE = "stale"
    FUTURE = "future"
    IMPOSSIBLE_JUMP = "impossible_jump"
    OUT_OF_ORDER = "out_of_order"
    BAD_ACCURACY = "bad_accuracy"
    INACCURATE = "inaccurate"


async def set_presence(
    live: LiveBackends,
    worker: Worker,
    *,
    online: bool,
    position: tuple[float, float] | None,
    now: datetime,
) -> WorkerState:
    """Go online (optionally with a WGS-84 position) or offline; returns the new state."""
    wanted = WorkerState.ONLINE if online else WorkerState.OFFLINE
    if position is not None:
        batch = PingBatch.of(
            [worker.id], [position[0]], [position[1]], [now.timestamp()], states=[wanted.value]
        )
        await live.state.update_positions(batch)
        if await live.state.set_worker_state(worker.id, wanted):
            return wanted
    if await live.state.set_worker_state(worker.id, wanted):
        return wanted
    if online:
        raise LocationRequired()
    return wanted


@dataclass(frozen=True)
class _Walk:
    """What ``geo.plausibility.judge`` made of a batch's usable fixes (in time order)."""

    #: per fix: "" when kept, else out_of_order / impossible_jump
    reasons: NDArray[np.object_]
    #: whether the track re-anchored on one of the kept fixes
    reanchored: bool
    #: fixes held back after the batch (None: unchanged, nothing was held back or read)
    held: list[HeldFix] | None


#: Batches up to this many fixes are checked one by one (cheaper than numpy's set-up).
_WALK_BELOW = 8


def _follows(
    kept: Fix,
    lat: NDArray[np.float64],
    lng: NDArray[np.float64],
    ts: NDArray[np.float64],
    acc: NDArray[np.float64],
    speed_mps: float,
) -> bool:
    """Whether every fix is reachable from the one before it (the first from ``kept``)."""
    if ts.size <= _WALK_BELOW:
        prev = kept
        for a, b, t, r in zip(lat.tolist(), lng.tolist(), ts.tolist(), acc.tolist(), strict=True):
            fix = Fix(a, b, t, r)
            if not reachable(prev, fix, speed_mps):
                return False
            prev = fix
        return True
    steps = reachable_steps(
        np.concatenate(([kept.lat], lat)), np.concatenate(([kept.lng], lng)),
        np.concatenate(([kept.t], ts)), np.concatenate(([kept.accuracy_m], acc)), speed_mps,
    )  # fmt: skip
    return bool(steps.all())


async def _walk_track(
    live: LiveBackends,
    worker_id: int,
    mode: str,
    kept: Fix | None,
    lat: NDArray[np.float64],
    lng: NDArray[np.float64],
    ts: NDArray[np.float64],
    acc: NDArray[np.float64],
) -> _Walk:
    """Judge each fix against the track (``geo.plausibility.judge``, by the worker's mode).

    The usual batch follows from the worker's position fix by fix: one vectorised check.
    Otherwise the fixes are judged one by one, with the fixes held back earlier (read
    from the live state only then); the caller stores what is held back after.
    """
    out = np.full(ts.size, "", dtype=object)
    if ts.size == 0:
        return _Walk(out, False, None)
    if kept is not None and _follows(kept, lat, lng, ts, acc, max_speed_mps(mode)):
        return _Walk(out, False, None)
    held = tuple(Fix(*f) for f in await live.state.held_fixes(worker_id))
    reanchored = False
    for i, (a, b, t, r) in enumerate(
        zip(lat.tolist(), lng.tolist(), ts.tolist(), acc.tolist(), strict=True)
    ):
        fix = Fix(a, b, t, r)
        if kept is not None and t <= kept.t:
            out[i] = PingReason.OUT_OF_ORDER
            continue
        verdict = judge(kept, held, fix, mode)
        held = verdict.pending
        if verdict.accepted:
            kept = fix
            reanchored = reanchored or verdict.reanchored
        else:
            out[i] = PingReason.IMPOSSIBLE_JUMP
    return _Walk(out, reanchored, [(f.lat, f.lng, f.t, f.accuracy_m) for f in held])


async def ingest_pings(
    live: LiveBackends,
    ctx: PingContext,
    pings: Sequence[PingLike],
    coord_type: CoordType,
    settings: Settings,
    *,
    now: datetime,
    writer: tracking.TrackWriter,
) -> list[PingVerdict]:
    """Validate a batch of pings, store the good ones, and update tracking of active orders.

    ``ctx`` is the pinging worker and the orders it travels to (api.tracking.trips).
    Each ping is accepted or flagged (out of range, stale, from the future, an
    impossible jump from the previous good fix, out of order); nothing raises.
    ``writer`` writes the tracking rows behind the live path.
    """
    now_s = now.timestamp()
    n = len(pings)
    lat_in = np.fromiter((p.lat for p in pings), np.float64, n)
    lng_in = np.fromiter((p.lng for p in pings), np.float64, n)
    ts = np.fromiter((p.ts for p in pings), np.float64, n)
    has_acc = np.fromiter((p.accuracy_m is not None for p in pings), bool, n)
    acc = np.fromiter(
        (math.nan if p.accuracy_m is None else p.accuracy_m for p in pings), np.float64, n
    )
    # First failing check wins, in this order: written last to first, so an earlier
    # check overwrites a later one (masks, not np.select: ~10x less overhead per batch).
    reason = np.full(n, "", dtype=object)  # object: later reasons are longer than these
    reason[~((np.abs(lat_in) <= 90.0) & (np.abs(lng_in) <= 180.0))] = PingReason.OUT_OF_RANGE
    reason[ts < now_s - settings.ping_max_age_s] = PingReason.STALE
    reason[~np.isfinite(ts) | (ts > now_s + settings.ping_max_future_s)] = PingReason.FUTURE
    reason[has_acc & (acc > MAX_ACCURACY_M)] = PingReason.INACCURATE
    reason[has_acc & ~(np.isfinite(acc) & (acc >= 0))] = PingReason.BAD_ACCURACY
    lat, lng = lat_in.copy(), lng_in.copy()
    rows = np.flatnonzero(reason == "")
    if coord_type is not CoordType.WGS84 and rows.size:
        try:
            lat[rows], lng[rows] = to_wgs84_many(lat_in[rows], lng_in[rows], coord_type)
        except (GeoError, ValueError):
            for i in rows.tolist():  # find the culprits one by one (rare)
                try:
                    lat[i], lng[i] = to_wgs84(float(lat_in[i]), float(lng_in[i]), coord_type)
                except (GeoError, ValueError):
                    reason[i] = PingReason.OUT_OF_RANGE
            rows = np.flatnonzero(reason == "")
    # Time order (ties by index); each fix is checked against the previous good one.
    rows = rows[np.lexsort((rows, ts[rows]))]
    worker_id = ctx.worker_id
    prev = await live.positions.get_positions([worker_id])
    judged_acc = np.where(np.isnan(acc), DEFAULT_ACCURACY_M, acc)
    kept = None
    if prev.found[0]:
        prev_acc = float(prev.accuracy_m[0])
        kept = Fix(float(prev.lat[0]), float(prev.lng[0]), float(prev.ts[0]),
                   DEFAULT_ACCURACY_M if math.isnan(prev_acc) else prev_acc)  # fmt: skip
    walk = await _walk_track(
        live, worker_id, ctx.mode, kept, lat[rows], lng[rows], ts[rows], judged_acc[rows]
    )
    if walk.held is not None:
        await live.state.hold_fixes(worker_id, walk.held)
    reason[rows] = walk.reasons
    good_rows = rows[walk.reasons == ""]
    verdicts = {i: PingVerdict(i, False, str(r)) for i, r in enumerate(reason.tolist()) if r != ""}
    if good_rows.size:
        batch = PingBatch.of(
            np.full(good_rows.size, worker_id, dtype=np.int64),
            lat[good_rows],
            lng[good_rows],
            ts[good_rows],
            accuracy_m=acc[good_rows],
            states=np.full(good_rows.size, KEEP_STATE, dtype=np.uint8),
        )
        result = await live.positions.update_positions(batch)
        # Only the newest ping of a batch becomes the position (the others are superseded,
        # which is fine); if even that one lost, a newer fix arrived through another process.
        newest = int(good_rows[-1])
        applied = bool(result.applied[-1])
        for i in good_rows[:-1].tolist():
            verdicts[i] = PingVerdict(i, True, None)
        verdicts[newest] = PingVerdict(
            newest, applied, None if applied else PingReason.OUT_OF_ORDER
        )
        if applied and ctx.trips:
            newest_acc = float(acc[newest])
            await tracking.on_worker_position(
                live.broker,
                ctx,
                float(lat[newest]),
                float(lng[newest]),
                float(ts[newest]),
                None if math.isnan(newest_acc) else newest_acc,
                now=now,
                writer=writer,
                reanchored=walk.reanchored,
                stale_after_s=settings.position_stale_s,
            )
    return [verdicts[i] for i in range(len(pings))]


# ------------------------------------------------------------------ the visit


async def my_job(session: AsyncSession, worker: Worker, order_id: int) -> Order:
    """An order assigned to this worker, row-locked (JobNotFound otherwise)."""
    order = await session.get(Order, order_id)
    if order is None or order.worker_id != worker.id:
        raise JobNotFound()
    return await lock_order(session, order_id)


async def depart(
    session: AsyncSession,
    live: LiveBackends,
    worker: Worker,
    actor: User,
    order_id: int,
    *,
    now: datetime,
) -> Order:
    """On the way (accepted -> en_route)."""
    order = await my_job(session, worker, order_id)
    await state.apply(session, order, OrderEventType.DEPARTED, actor_id=actor.id, now=now)
    await session.commit()
    await tracking.publish_status(live.broker, order)
    return order


async def arrive(
    session: AsyncSession,
    live: LiveBackends,
    worker: Worker,
    actor: User,
    order_id: int,
    settings: Settings,
    *,
    now: datetime,
) -> Order:
    """Arrived (en_route -> arrived), only inside the geofence of the address."""
    order = await my_job(session, worker, order_id)
    pos = await live.state.get_positions([worker.id])
    # The very position the customer's stream shows (ingest and the tracker keep the same
    # fixes, ``geo.plausibility``); a stale one says nothing about where the worker is.
    if not pos.found[0] or float(pos.ts[0]) < now.timestamp() - settings.position_stale_s:
        raise NoRecentLocation()
    d = distance_m(float(pos.lat[0]), float(pos.lng[0]), order.lat, order.lng)
    if d > settings.arrive_radius_m:
        raise NotAtAddress(
            distance_m=round(d), radius_m=round(settings.arrive_radius_m),
            details={"distance_m": round(d), "radius_m": settings.arrive_radius_m},
        )  # fmt: skip
    await state.apply(session, order, OrderEventType.ARRIVED, actor_id=actor.id, now=now)
    await session.commit()
    await tracking.publish_status(live.broker, order)
    return order


async def start(
    session: AsyncSession,
    live: LiveBackends,
    worker: Worker,
    actor: User,
    order_id: int,
    code: str,
    settings: Settings,
    *,
    now: datetime,
) -> Order:
    """Start the service with the customer's code (核销码); wrong codes are counted and locked."""
    order = await my_job(session, worker, order_id)
    track = await session.get(OrderTrack, order.id)
    if track is None:
        raise JobNotFound()
    if not state.allowed(order, OrderEventType.STARTED):
        # Raises the typed 409 (not arrived yet, or already started).
        await state.apply(session, order, OrderEventType.STARTED, actor_id=actor.id, now=now)
    if track.code_locked_until is not None and track.code_locked_until > now:
        minutes = math.ceil((track.code_locked_until - now).total_seconds() / 60)
        raise ServiceCodeLocked(minutes=minutes, headers={"Retry-After": str(minutes * 60)})
    if not hmac.compare_digest(track.service_code.encode(), code.strip().encode()):
        track.code_failures += 1
        if track.code_failures >= settings.service_code_max_failures:
            track.code_failures = 0
            track.code_locked_until = now + timedelta(seconds=settings.service_code_lockout_s)
        await session.commit()
        raise WrongServiceCode()
    track.code_failures = 0
    await state.apply(session, order, OrderEventType.STARTED, actor_id=actor.id, now=now)
    await tracking.forget_position(track, now)
    await session.commit()
    await tracking.publish_status(live.broker, order)
    return order


_MAGIC = {b"\xff\xd8\xff": "jpg", b"\x89PNG\r\n\x1a\n": "png"}


def _decode_photo(data: str, max_bytes: int) -> tuple[bytes, str]:
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise BadPhoto(max_kib=max_bytes // 1024) from None
    for magic, ext in _MAGIC.items():
        if raw.startswith(magic) and len(raw) <= max_bytes:
            return raw, ext
    raise BadPhoto(max_kib=max_bytes // 1024)


async def complete(
    session: AsyncSession,
    live: LiveBackends,
    worker: Worker,
    actor: User,
    order_id: int,
    photos: Sequence[str],
    settings: Settings,
    *,
    now: datetime,
) -> Order:
    """Complete the service (optional base64 JPEG/PNG photos, stored under var/)."""
    decoded = [_decode_photo(p, settings.completion_photo_max_bytes) for p in photos]
    order = await my_job(session, worker, order_id)
    await state.apply(session, order, OrderEventType.COMPLETED, actor_id=actor.id, now=now)
    # The job is done: its worker is free again for the rest of the booked window.
    await release_reservation(session, order, now)
    track = await session.get(OrderTrack, order.id)
    names: list[str] = []
    if decoded:
        folder = Path(settings.var_dir) / "photos" / str(order.id)
        folder.mkdir(parents=True, exist_ok=True)
        for raw, ext in decoded:
            name = f"{secrets.token_hex(8)}.{ext}"
            (folder / name).write_bytes(raw)
            names.append(f"photos/{order.id}/{name}")
    if track is not None:
        track.photos = [*track.photos, *names]
        await tracking.forget_position(track, now)
    await session.commit()
    await live.state.set_worker_state(worker.id, WorkerState.ONLINE)
    await tracking.publish_status(live.broker, order)
    return order


# ------------------------------------------------------------------ customer code


async def service_code_for(session: AsyncSession, user: User, order_id: int) -> str:
    """The order's service code, for its customer only, once a worker has accepted."""
    order = await session.get(Order, order_id)
    if order is None or order.customer_id != user.id:
        raise JobNotFound()
    track = await session.get(OrderTrack, order_id)
    if track is None or order.status not in (
        OrderStatus.PENDING_SERVICE.value,
        OrderStatus.IN_SERVICE.value,
    ):
        raise JobNotFound()
    return track.service_code
