"""Push to workers: an offer, an assignment or a withdrawal reaches the worker's live socket.

Nothing here decides anything; it watches what is written. Session hooks (the pattern of
the trip cache, api/tracking/trips.py, on engines registered with ``attach``) see every
ORM flush and every ORM bulk statement on ``dispatch_offers``:

* a new auto offer to a worker                               -> ``offer``
* an order that became committed to a worker (accepted offer, won grab claim, staff
  assignment or reassignment)                                -> ``assigned``
* a live offer withdrawn or expired, an order cancelled while offered, a committed
  order cancelled or moved to another worker                 -> ``withdrawn`` (with ``reason``)

In the same transaction a WeChat subscribe message for the worker goes into the outbox
(``api.notifications.outbox.worker_row``) for an offer, an assignment made by someone else
and the withdrawal of a committed job (not for an unanswered offer going away: one
authorisation is one message). After the commit the frames are published on the
worker's channel (``api.core.broker.worker_channel``) through the ``Broker``, in commit order:
in process, or over Redis pub/sub to whichever API process holds the worker's socket
(the dispatcher may run elsewhere, ``daojia dispatcher``). The socket subscribes that
channel, so "the worker has a live socket somewhere" is "the channel has a subscriber":
the outbox relay sends the WeChat message only when nobody subscribes it (else it is
settled ``live``). Pub/sub is at most once: a socket that connects gets the worker's
current offers first, and ``GET /v1/worker/offers`` stays the fallback.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

import structlog
from sqlalchemy import Connection, Table, event, insert, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from api.core.broker import Broker, Subscription, encode_message, worker_channel
from api.core.db import utcnow
from api.core.live import LiveBackends
from api.dispatcher.models import LIVE_STATES, DispatchOffer, OfferMode, OfferState
from api.dispatcher.offer_flow import current_offers
from api.notifications.models import OutboxMessage
from api.notifications.outbox import WorkerTopic, worker_row
from api.orders.models import Order, OrderEvent
from api.orders.state import COMMITTED, OrderEventType, OrderStatus
from api.tenants.models import Worker

_log = structlog.get_logger("api.dispatcher.push")
_OUTBOX = cast(Table, OutboxMessage.__table__)  # Core inserts: no ORM events inside a flush

_PENDING = "daojia_push_pending"  # session.info: [(change, order summary)] to publish at commit
_SEEN = "daojia_push_seen"  # session.info: frame keys already recorded in this transaction
_CANCELLED = "daojia_push_cancelled"  # session.info: order ids cancelled in this transaction
#: Offer states that mean "the offer went away" (a frame to its worker); the others are
#: the worker's own answer (accepted, declined) or the grab pool's.
_CLOSED = {OfferState.WITHDRAWN.value, OfferState.EXPIRED.value}


class FrameType(StrEnum):
    """``type`` of a frame on the worker's socket."""

    OFFER = "offer"
    ASSIGNED = "assigned"
    WITHDRAWN = "withdrawn"


class WithdrawReason(StrEnum):
    """``reason`` of a ``withdrawn`` frame."""

    CANCELLED = "cancelled"
    REASSIGNED = "reassigned"
    EXPIRED = "expired"


_TOPIC = {
    FrameType.OFFER: WorkerTopic.OFFER,
    FrameType.ASSIGNED: WorkerTopic.ASSIGNED,
    FrameType.WITHDRAWN: WorkerTopic.WITHDRAWN,
}


@dataclass(frozen=True, slots=True)
class Change:
    """One thing a worker is told, as found in a flush (``reason`` None: resolved at commit)."""

    kind: FrameType
    worker_id: int
    order_id: int
    at: datetime
    offer_id: int | None = None
    expires_at: datetime | None = None
    reason: WithdrawReason | None = None
    #: Also a WeChat message (when the worker has no live socket).
    wechat: bool = False
    #: Who made an assignment (no WeChat message when it is the worker's own user).
    actor_id: int | None = None

    @property
    def key(self) -> tuple[str, int, str, int]:
        """One frame per key and transaction (an offer, or a job, per worker)."""
        if self.offer_id is not None:
            return self.kind.value, self.worker_id, "offer", self.offer_id
        return self.kind.value, self.worker_id, "order", self.order_id


def offer_frame(
    offer_id: int, expires_at: datetime, order: Any, *, mode: str = OfferMode.AUTO.value
) -> dict[str, Any]:
    """The ``offer`` frame of an offer of ``order`` (an ``Order`` or a row with its columns)."""
    return {
        "type": FrameType.OFFER.value,
        "offer_id": offer_id,
        "mode": mode,
        "expires_at": expires_at.isoformat(),
        **_order_part(order),
    }


def _order_part(order: Any) -> dict[str, Any]:
    return {
        "order_id": int(order.id),
        "order_no": str(order.order_no),
        "service_id": int(order.service_id),
        "slot_start": order.slot_start.isoformat(),
        "duration_min": int(order.duration_min),
    }


def frame(change: Change, order: Any, cancelled: set[int]) -> dict[str, Any]:
    """The socket frame of ``change`` (``order``: its order's columns)."""
    if change.kind is FrameType.OFFER and change.offer_id is not None and change.expires_at:
        return offer_frame(change.offer_id, change.expires_at, order)
    out: dict[str, Any] = {"type": change.kind.value, "offer_id": change.offer_id}
    out.update(_order_part(order))
    if change.kind is FrameType.WITHDRAWN:
        reason = change.reason or (
            WithdrawReason.CANCELLED if change.order_id in cancelled else WithdrawReason.REASSIGNED
        )
        out["reason"] = reason.value
    return out


# ------------------------------------------------------------------ publishing


class WorkerPush:
    """Publishes each committed transaction's frames on the workers' channels, in commit order."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self._tail: asyncio.Task[None] | None = None
        self.published = 0

    def publish_soon(self, frames: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """Publish ``(worker id, frame)`` pairs after everything handed over before."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a commit outside the event loop: polling covers it
            _log.warning("worker_push_no_loop", frames=len(frames))
            return
        self._tail = loop.create_task(self._publish(self._tail, list(frames)))

    async def _publish(
        self, before: asyncio.Task[None] | None, frames: list[tuple[int, dict[str, Any]]]
    ) -> None:
        if before is not None and not before.done():
            await asyncio.wait([before])  # never raises: order only
        for worker_id, data in frames:
            try:
                await self.broker.publish(worker_channel(worker_id), data)
                self.published += 1
            except Exception as exc:  # Redis down: the worker polls, the outbox stays
                _log.warning("worker_push_failed", worker_id=worker_id, error=type(exc).__name__)

    async def drain(self) -> None:
        """Wait until everything handed over so far is published."""
        while self._tail is not None and not self._tail.done():
            await asyncio.wait([self._tail])


_pushes: weakref.WeakKeyDictionary[Engine, WorkerPush] = weakref.WeakKeyDictionary()


def attach(engine: AsyncEngine, broker: Broker) -> WorkerPush:
    """Have commits through ``engine``'s sessions push to workers over ``broker``."""
    push = WorkerPush(broker)
    _pushes[engine.sync_engine] = push
    return push


def _push_of(session: Session) -> WorkerPush | None:
    bind = session.bind
    if isinstance(bind, Engine):
        return _pushes.get(bind)
    if bind is not None:  # a Connection
        return _pushes.get(bind.engine)
    return None


# ------------------------------------------------------------------ finding changes


def _before(obj: object, key: str) -> Any:
    """The attribute's value before this flush (None when it was not loaded)."""
    history = inspect(obj).attrs[key].history
    if history.deleted:
        return history.deleted[0]
    return None if history.added else getattr(obj, key)


def _committed(status: Any, sub: Any, worker_id: Any) -> int | None:
    """The worker an order is committed to in this state, if any."""
    if status == OrderStatus.PENDING_SERVICE.value and sub in COMMITTED and worker_id is not None:
        return int(worker_id)
    return None


def order_changes(order: Order, actors: dict[int, int | None]) -> list[Change]:
    """What an order's flushed change means to its workers (``actors``: order id ->
    who made this flush's assignment event)."""
    keys = ("status", "dispatch_status", "worker_id")
    if not any(inspect(order).attrs[k].history.has_changes() for k in keys):
        return []
    before = _committed(*(_before(order, k) for k in keys))
    after = _committed(order.status, order.dispatch_status, order.worker_id)
    at = order.updated_at or utcnow()
    out = []
    if after is not None and after != before:
        actor = actors.get(order.id)
        out.append(Change(FrameType.ASSIGNED, after, order.id, at, wechat=True, actor_id=actor))
    if before is not None and after != before:
        reason = (
            WithdrawReason.CANCELLED
            if order.status == OrderStatus.CANCELLED.value
            else WithdrawReason.REASSIGNED
        )
        out.append(Change(FrameType.WITHDRAWN, before, order.id, at, reason=reason, wechat=True))
    return out


def _offer_change(offer: DispatchOffer, new: bool) -> Change | None:
    if offer.worker_id is None or offer.mode != OfferMode.AUTO.value:
        return None
    if new:
        if offer.state != OfferState.OFFERED.value:
            return None
        return Change(
            FrameType.OFFER, int(offer.worker_id), int(offer.order_id), offer.offered_at,
            offer_id=int(offer.id), expires_at=offer.expires_at, wechat=True,
        )  # fmt: skip
    if offer.state not in _CLOSED or _before(offer, "state") not in LIVE_STATES:
        return None
    return _withdrawn(offer.id, offer.worker_id, offer.order_id, offer.state)


def _withdrawn(offer_id: int, worker_id: int, order_id: int, state: str) -> Change:
    reason = WithdrawReason.EXPIRED if state == OfferState.EXPIRED.value else None
    return Change(
        FrameType.WITHDRAWN, int(worker_id), int(order_id), utcnow(),
        offer_id=int(offer_id), reason=reason,
    )  # fmt: skip


def _live_offers(
    conn: Connection, order_ids: Iterable[int], reason: WithdrawReason
) -> list[Change]:
    """Withdrawals of the live auto offers of orders (cancelled while offered)."""
    rows = conn.execute(
        select(DispatchOffer.id, DispatchOffer.worker_id, DispatchOffer.order_id).where(
            DispatchOffer.order_id.in_(list(order_ids)),
            DispatchOffer.state == OfferState.OFFERED.value,
            DispatchOffer.worker_id.is_not(None),
        )
    ).all()
    return [replace(_withdrawn(r.id, r.worker_id, r.order_id, ""), reason=reason) for r in rows]


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context: UOWTransaction) -> None:
    if _push_of(session) is None:
        return
    found: list[Change] = []
    actors: dict[int, int | None] = {}
    for obj in session.new:
        if isinstance(obj, DispatchOffer):
            if (change := _offer_change(obj, True)) is not None:
                found.append(change)
        elif isinstance(obj, OrderEvent) and obj.event in (
            OrderEventType.ACCEPTED.value,
            OrderEventType.REASSIGNED.value,
        ):
            actors[int(obj.order_id)] = obj.actor_id
    cancelled: list[int] = []
    for obj in session.dirty:
        if isinstance(obj, DispatchOffer):
            if (change := _offer_change(obj, False)) is not None:
                found.append(change)
        elif isinstance(obj, Order):
            found.extend(order_changes(obj, actors))
            if obj.status == OrderStatus.CANCELLED.value and _before(obj, "status") not in (
                None,
                OrderStatus.CANCELLED.value,
            ):
                cancelled.append(int(obj.id))
    if cancelled:
        session.info.setdefault(_CANCELLED, set()).update(cancelled)
        found.extend(_live_offers(session.connection(), cancelled, WithdrawReason.CANCELLED))
    if found:
        record(session, found)


@event.listens_for(Session, "do_orm_execute")
def _bulk(state: ORMExecuteState) -> Any:
    """ORM bulk statements on ``dispatch_offers``: withdrawals/expiries, batched inserts."""
    if not (state.is_update or state.is_insert):
        return None
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) != DispatchOffer.__tablename__:
        return None
    if _push_of(state.session) is None:
        return None
    conn = state.session.connection()
    if state.is_update:
        return _bulk_update(state, conn)
    return _bulk_insert(state, conn)


def _set_value(state: ORMExecuteState, key: str) -> Any:
    """The value a bulk UPDATE sets ``key`` to (``.values(...)`` or execute parameters)."""
    params = state.parameters
    if isinstance(params, dict) and key in params:
        return params[key]
    statement: Any = state.statement
    return statement.compile().params.get(key)


def _bulk_update(state: ORMExecuteState, conn: Connection) -> Any:
    target = _set_value(state, "state")
    if target not in _CLOSED:
        return None
    where = getattr(state.statement, "whereclause", None)
    live = select(DispatchOffer.id, DispatchOffer.worker_id, DispatchOffer.order_id).where(
        DispatchOffer.state.in_(LIVE_STATES),
        DispatchOffer.worker_id.is_not(None),
        DispatchOffer.mode == OfferMode.AUTO.value,
    )
    before = conn.execute(live if where is None else live.where(where)).all()
    result = state.invoke_statement()
    if before:
        # Only the rows this statement closed (a concurrent accept may have won one).
        closed = set(
            conn.execute(
                select(DispatchOffer.id).where(
                    DispatchOffer.id.in_([r.id for r in before]), DispatchOffer.state == target
                )
            ).scalars()
        )
        found = [
            _withdrawn(r.id, r.worker_id, r.order_id, target) for r in before if r.id in closed
        ]
        if found:
            record(state.session, found)
    return result


def _bulk_insert(state: ORMExecuteState, conn: Connection) -> Any:
    params = state.parameters
    rows = params if isinstance(params, list) else [params] if isinstance(params, dict) else []
    orders = [
        int(p["order_id"])
        for p in rows
        if p.get("state") == OfferState.OFFERED.value and p.get("worker_id") is not None
    ]
    result = state.invoke_statement()
    if orders:
        made = conn.execute(
            select(
                DispatchOffer.id, DispatchOffer.worker_id, DispatchOffer.order_id,
                DispatchOffer.offered_at, DispatchOffer.expires_at,
            ).where(
                DispatchOffer.order_id.in_(orders),
                DispatchOffer.state == OfferState.OFFERED.value,
                DispatchOffer.mode == OfferMode.AUTO.value,
                DispatchOffer.worker_id.is_not(None),
            )
        ).all()  # fmt: skip
        found = [
            Change(
                FrameType.OFFER,
                int(r.worker_id),
                int(r.order_id),
                r.offered_at,
                offer_id=int(r.id),
                expires_at=r.expires_at,
                wechat=True,
            )
            for r in made
        ]
        if found:
            record(state.session, found)
    return result


# ------------------------------------------------------------------ recording and commit


def record(session: Session, changes: Sequence[Change]) -> None:
    """Keep ``changes`` for the commit and write their WeChat messages (same transaction)."""
    seen: set[tuple[str, int, str, int]] = session.info.setdefault(_SEEN, set())
    fresh = []
    for change in changes:
        if change.key not in seen:
            seen.add(change.key)
            fresh.append(change)
    if not fresh:
        return
    conn = session.connection()
    cols = (Order.id, Order.order_no, Order.service_id, Order.slot_start, Order.duration_min)
    orders = {
        int(r.id): r
        for r in conn.execute(select(*cols).where(Order.id.in_({c.order_id for c in fresh})))
    }
    wanted = {c.worker_id for c in fresh if c.wechat}
    users = (
        dict(conn.execute(select(Worker.id, Worker.user_id).where(Worker.id.in_(wanted))).all())
        if wanted
        else {}
    )
    pending = session.info.setdefault(_PENDING, [])
    messages = []
    for change in fresh:
        order = orders.get(change.order_id)
        if order is None:
            continue
        pending.append((change, order))
        user_id = users.get(change.worker_id)
        if user_id is not None and change.actor_id != user_id and change.wechat:
            messages.append(_message(change, order, int(user_id)))
    if messages:
        conn.execute(insert(_OUTBOX), messages)


def _message(change: Change, order: Any, user_id: int) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "worker_id": change.worker_id,
        "order_id": change.order_id,
        "order_no": order.order_no,
        "slot_start": order.slot_start.isoformat(),
        "service_id": order.service_id,
    }
    if change.offer_id is not None:
        payload["offer_id"] = change.offer_id
    if change.expires_at is not None:
        payload["expires_at"] = change.expires_at.isoformat()
    if change.reason is not None:
        payload["reason"] = change.reason.value
    return worker_row(user_id, _TOPIC[change.kind], payload, now=change.at)


@event.listens_for(Session, "after_commit")
def _commit(session: Session) -> None:
    pending = session.info.pop(_PENDING, None)
    cancelled = session.info.pop(_CANCELLED, set())
    session.info.pop(_SEEN, None)
    push = _push_of(session)
    if not pending or push is None:
        return
    push.publish_soon([(c.worker_id, frame(c, order, cancelled)) for c, order in pending])


@event.listens_for(Session, "after_rollback")
def _rollback(session: Session) -> None:
    for key in (_PENDING, _CANCELLED, _SEEN):
        session.info.pop(key, None)


# ------------------------------------------------------------------ the socket side


async def catch_up(
    session: AsyncSession, live: LiveBackends, worker_id: int, *, now: datetime
) -> list[bytes]:
    """``offer`` frames of the worker's open offers (sent first on a new socket)."""
    worker = await session.get(Worker, worker_id)
    if worker is None:
        return []
    views = await current_offers(session, live, worker, now=now)
    return [
        encode_message(offer_frame(v.offer.id, v.offer.expires_at, v.order, mode=v.offer.mode))
        for v in views
    ]


async def forward(sub: Subscription, send: Callable[[str], Awaitable[None]]) -> None:
    """Send every frame of the worker's channel to its socket until cancelled."""
    async for message in sub:
        await send(message.data.decode())
