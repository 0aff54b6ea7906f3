"""The outbox relay: delivers pending messages, at least once, idempotent by outbox id.

``relay_once`` is what the tests drive; ``run_relay`` is the lifespan task of the
embedded mode (it also expires unpaid orders). Failures are retried with
exponential backoff and never dropped; WeChat's 43101 is final (REFUSED).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import anyio
import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.auth.models import SocialIdentity, SocialProvider, User
from api.core.broker import worker_channel
from api.core.db import utcnow
from api.core.i18n import translate
from api.notifications.models import InboxMessage, OutboxMessage
from api.notifications.outbox import WORKER, Channel, OutboxStatus
from api.notifications.texts import topic_title
from api.notifications.wechat import SendFailed, SendOutcome, WeChatSubscribeSender

log = structlog.get_logger("api.notifications.relay")

MAX_BACKOFF = timedelta(hours=1)


class Presence(Protocol):
    """Who listens where now (the app's ``Broker``): a worker with a live socket somewhere
    subscribes ``worker_channel(worker_id)``."""

    async def subscribers(self, channel: str) -> int:
        """How many subscribers ``channel`` has now."""
        ...


def backoff(attempts: int) -> timedelta:
    """Delay before retry number ``attempts`` (2, 4, 8 … seconds, at most an hour)."""
    return min(timedelta(seconds=2 ** min(attempts, 20)), MAX_BACKOFF)


@dataclass
class RelayReport:
    """What one pass did, by outcome."""

    counts: dict[str, int] = field(default_factory=dict)

    def bump(self, outcome: str) -> None:
        """Count one message with ``outcome``."""
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


async def _deliver_inbox(session: AsyncSession, msg: OutboxMessage, now: datetime) -> None:
    exists = await session.scalar(select(InboxMessage.id).where(InboxMessage.outbox_id == msg.id))
    if exists is None:
        async with session.begin_nested():
            session.add(
                InboxMessage(
                    user_id=msg.user_id,
                    outbox_id=msg.id,
                    topic=msg.topic,
                    order_id=msg.order_id,
                    payload=msg.payload,
                    created_at=now,
                )
            )


async def _worker_reached(
    msg: OutboxMessage, presence: Presence | None, now: datetime
) -> OutboxStatus | None:
    """For a message to a worker: LIVE while the worker has a live socket (it got the frame),
    SKIPPED for an offer already expired; None when WeChat should carry it."""
    expires = msg.payload.get("expires_at")
    if expires and datetime.fromisoformat(str(expires)) <= now:
        return OutboxStatus.SKIPPED
    worker_id = msg.payload.get("worker_id")
    if presence is None or worker_id is None:
        return None
    try:
        listening = await presence.subscribers(worker_channel(int(worker_id)))
    except Exception as exc:  # Redis unreachable: unknown, so neither send nor drop yet
        raise SendFailed(f"presence: {type(exc).__name__}") from exc
    return OutboxStatus.LIVE if listening > 0 else None


async def _deliver_wechat(
    session: AsyncSession,
    msg: OutboxMessage,
    sender: WeChatSubscribeSender | None,
    presence: Presence | None,
    now: datetime,
) -> OutboxStatus:
    if sender is None:
        return OutboxStatus.SKIPPED
    if msg.payload.get("recipient") == WORKER:
        settled = await _worker_reached(msg, presence, now)
        if settled is not None:
            return settled
    openid = await session.scalar(
        select(SocialIdentity.openid).where(
            SocialIdentity.user_id == msg.user_id,
            SocialIdentity.provider == SocialProvider.WECHAT.value,
        )
    )
    if openid is None:
        return OutboxStatus.SKIPPED
    locale = await session.scalar(select(User.locale).where(User.id == msg.user_id)) or "zh-CN"
    title = translate(topic_title(msg.topic), locale)
    outcome = await sender.send(
        openid,
        title=title,
        order_no=str(msg.payload.get("order_no", "")),
        when=str(msg.payload.get("slot_start", ""))[:16].replace("T", " "),
        lang=locale,
        target=sender.config.target(msg.payload),
    )
    return OutboxStatus.REFUSED if outcome is SendOutcome.REFUSED else OutboxStatus.DELIVERED


async def relay_once(
    maker: async_sessionmaker[AsyncSession],
    *,
    sender: WeChatSubscribeSender | None = None,
    now: datetime | None = None,
    batch: int = 100,
    presence: Presence | None = None,
) -> RelayReport:
    """Deliver every due pending message once.

    ``presence`` (the app's broker) tells whether a worker has a live socket: a message to
    a worker who has one is settled ``live`` instead of sent (it got the socket frame).

    Messages that need no network call (the in-app inbox, and WeChat messages while no
    sender is configured) are settled a batch at a time in one transaction: the rows are
    locked (``SKIP LOCKED`` on PostgreSQL, so several relays share the work), inbox rows
    inserted in one statement that ignores an outbox id already delivered (a crash
    between delivery and marking re-delivers idempotently), and marked. If that batch
    fails, its messages fall back to one transaction each, so one bad message only
    delays itself. WeChat sends go one message per transaction.
    """
    now = now or utcnow()
    report = RelayReport()
    async with maker() as session:
        stmt = (
            select(OutboxMessage)
            .where(
                OutboxMessage.status == OutboxStatus.PENDING.value,
                OutboxMessage.next_attempt_at <= now,
            )
            .order_by(OutboxMessage.id)
            .limit(batch)
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        due = list(await session.scalars(stmt))
        local = [m for m in due if m.channel == Channel.INBOX.value or sender is None]
        remote = [m.id for m in due if m.channel != Channel.INBOX.value and sender is not None]
        try:
            await _settle_local(session, local, now, report)
            await session.commit()
        except IntegrityError as exc:
            await session.rollback()
            log.warning("relay_batch_failed", error=str(exc)[:200], messages=len(local))
            remote = sorted([m.id for m in local] + remote)
            report.counts.clear()
    for msg_id in remote:
        await _relay_one(maker, msg_id, sender, now, report, presence)
    return report


async def _settle_local(
    session: AsyncSession, msgs: list[OutboxMessage], now: datetime, report: RelayReport
) -> None:
    """Deliver inbox messages and skip WeChat ones (no sender) for a batch, unflushed."""
    inbox = [m for m in msgs if m.channel == Channel.INBOX.value]
    if inbox:
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        await session.execute(
            insert(InboxMessage)
            .values(
                [
                    {
                        "user_id": m.user_id,
                        "outbox_id": m.id,
                        "topic": m.topic,
                        "order_id": m.order_id,
                        "payload": m.payload,
                        "created_at": now,
                    }
                    for m in inbox
                ]
            )
            .on_conflict_do_nothing(index_elements=["outbox_id"])
        )
    for msg in msgs:
        inbox_ = msg.channel == Channel.INBOX.value
        _settle(msg, OutboxStatus.DELIVERED if inbox_ else OutboxStatus.SKIPPED, now, report)
    await session.flush()


def _settle(msg: OutboxMessage, status: OutboxStatus, now: datetime, report: RelayReport) -> None:
    """Mark ``msg`` done with ``status`` (one more attempt) and count it."""
    msg.status = status.value
    msg.attempts += 1
    msg.delivered_at = now
    report.bump(status.value)


async def _relay_one(
    maker: async_sessionmaker[AsyncSession],
    msg_id: int,
    sender: WeChatSubscribeSender | None,
    now: datetime,
    report: RelayReport,
    presence: Presence | None = None,
) -> None:
    """Deliver one message in its own transaction; a failure schedules a retry."""
    async with maker() as session:
        stmt = select(OutboxMessage).where(OutboxMessage.id == msg_id)
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        msg = await session.scalar(stmt)
        if msg is None or msg.status != OutboxStatus.PENDING.value:
            return
        try:
            if msg.channel == Channel.INBOX.value:
                await _deliver_inbox(session, msg, now)
                status = OutboxStatus.DELIVERED
            else:
                status = await _deliver_wechat(session, msg, sender, presence, now)
        except (SendFailed, IntegrityError) as exc:
            await session.rollback()
            msg = await session.get(OutboxMessage, msg_id)
            if msg is None:
                return
            msg.attempts += 1
            msg.next_attempt_at = now + backoff(msg.attempts)
            msg.last_error = str(exc)[:256]
            report.bump("retry")
            await session.commit()
            return
        _settle(msg, status, now, report)
        await session.commit()


async def run_relay(
    maker: async_sessionmaker[AsyncSession],
    *,
    interval_s: float,
    sender: WeChatSubscribeSender | None,
    expire: object = None,
    presence: Presence | None = None,
) -> None:
    """Loop forever: relay the outbox (and run ``expire(maker)``) every ``interval_s``.

    A pass that found a full batch goes again at once, so a busy hour's outbox drains
    at the rate it fills instead of ``batch`` messages per interval.
    """
    full = False
    while True:
        try:
            if callable(expire) and not full:
                await expire(maker)
            full = False
            report = await relay_once(maker, sender=sender, batch=RELAY_BATCH, presence=presence)
            full = sum(report.counts.values()) >= RELAY_BATCH
        except Exception as exc:  # the loop must survive a bad pass; it retries next tick
            log.warning("relay_pass_failed", error=type(exc).__name__, detail=str(exc)[:200])
        await anyio.sleep(0 if full else interval_s)


#: messages per relay pass (one transaction on the local channels)
RELAY_BATCH = 100
