"""Worker dispatch profiles: staff create and edit them, workers ask for schedule changes.

No FastAPI here. A profile is the ``workers`` row of a worker account (skills, weekly
shifts and breaks, home base, transport mode, active flag); creating one is what lets a
worker account go on duty and receive offers. Schedules are lists of ``Slot`` (local
minutes from midnight in ``settings.service_timezone``, Monday = 0); every schedule that
is stored, by staff or by an approved request, passes ``check_schedule`` first.

Tenancy: staff act only in their own enterprise (403 for another enterprise's path, as
``POST /v1/enterprises/{id}/members``); a worker or request id of another enterprise is
404. Every check runs before the first write, so bad input changes nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.addresses.service import InvalidCoordinates
from api.auth.models import Role, User
from api.catalog.models import Service
from api.core.errors import Conflict, Forbidden, InvalidInput, NotFound
from api.core.geo_edge import CoordType, GeoError, point_cell, to_wgs84
from api.enterprise.models import WorkerScheduleRequest
from api.enterprise.service import NoEnterprise, WorkerNotFound, enterprise_scope
from api.tenants.models import Enterprise, Worker

# ------------------------------------------------------------------ errors


class ProfileInvalid(InvalidInput):
    """A profile or schedule value is not acceptable; ``details.field`` names it."""

    status_code = 422
    code = "invalid_profile"

    def __init__(self, field: str, **params: Any) -> None:
        super().__init__(details={"field": field}, field=field, **params)


class SlotEndsBeforeStart(ProfileInvalid):
    """A shift or break that does not end after it starts."""

    code = "slot_ends_before_start"
    message = "{field}: the end must be later than the start."


class SlotsOverlap(ProfileInvalid):
    """Two shifts (or two breaks) of the same weekday overlap."""

    code = "slots_overlap"
    message = "{field} overlaps {other} on the same weekday."


class BreakOutsideShift(ProfileInvalid):
    """A break that does not lie inside one shift of its weekday."""

    code = "break_outside_shift"
    message = "{field} is not inside any shift of its weekday."


class UnknownSkill(ProfileInvalid):
    """A skill that no service of the enterprise requires."""

    code = "unknown_skill"
    message = "{field}: {skill} is not a skill any service of the enterprise requires."


class BadHome(ProfileInvalid):
    """A home base that cannot be converted to a WGS-84 point."""

    code = InvalidCoordinates.code
    message = InvalidCoordinates.message


class MemberNotFound(NotFound):
    """No worker account with this id in the enterprise."""

    code = "member_not_found"
    message = "No such worker account in this enterprise."


class NotAWorkerAccount(Conflict):
    """Only accounts added with the worker role get a dispatch profile."""

    code = "not_a_worker_account"
    message = "Only worker accounts can have a worker profile."


class ProfileExists(Conflict):
    """The account already has a profile (edit it instead)."""

    code = "worker_profile_exists"
    message = "This account already has a worker profile."


class ScheduleRequestNotFound(NotFound):
    """No such schedule change request in the enterprise."""

    code = "schedule_request_not_found"
    message = "No such schedule change request."


class ScheduleRequestDecided(Conflict):
    """The request was already approved, rejected or replaced."""

    code = "schedule_request_decided"
    message = "This schedule change request was already decided."


class ScheduleRequestRace(Conflict):
    """Two requests of one worker were sent at the same moment."""

    code = "schedule_request_race"
    message = "Another schedule change request was sent at the same moment; try again."


# ------------------------------------------------------------------ schedules


class RequestStatus(StrEnum):
    """Where a schedule change request stands."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    #: The worker sent a newer request before staff decided this one.
    SUPERSEDED = "superseded"


class Decision(StrEnum):
    """What staff do with a pending request."""

    APPROVE = "approve"
    REJECT = "reject"


@dataclass(frozen=True)
class Slot:
    """One weekly interval: ``weekday`` 0-6 (Monday = 0), minutes from local midnight."""

    weekday: int
    start_min: int
    end_min: int

    def as_json(self) -> dict[str, int]:
        """The stored shape (``workers.shifts`` / ``workers.breaks``)."""
        return {"weekday": self.weekday, "start_min": self.start_min, "end_min": self.end_min}

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Slot:
        """From the stored shape."""
        return cls(int(raw["weekday"]), int(raw["start_min"]), int(raw["end_min"]))


def _first_overlap(name: str, slots: Sequence[Slot]) -> None:
    """Raise SlotsOverlap for the first pair of same-weekday slots that overlap."""
    order = sorted(range(len(slots)), key=lambda i: (slots[i].weekday, slots[i].start_min, i))
    for prev, cur in itertools.pairwise(order):
        a, b = slots[prev], slots[cur]
        if a.weekday == b.weekday and b.start_min < a.end_min:
            first, second = sorted((prev, cur))
            raise SlotsOverlap(f"{name}[{second}]", other=f"{name}[{first}]")


def check_schedule(shifts: Sequence[Slot], breaks: Sequence[Slot]) -> None:
    """Raise a ProfileInvalid naming the first bad slot (``shifts[i]`` / ``breaks[i]``).

    Each slot ends after it starts (a night shift is two slots, one per day); shifts of
    a weekday do not overlap, nor do its breaks; each break lies inside one shift of its
    weekday. Ranges (weekday 0-6, minutes 0-1440) are the request schema's.
    """
    for name, slots in (("shifts", shifts), ("breaks", breaks)):
        for i, slot in enumerate(slots):
            if slot.end_min <= slot.start_min:
                raise SlotEndsBeforeStart(f"{name}[{i}]")
        _first_overlap(name, slots)
    for i, br in enumerate(breaks):
        if not any(
            s.weekday == br.weekday and s.start_min <= br.start_min and br.end_min <= s.end_min
            for s in shifts
        ):
            raise BreakOutsideShift(f"breaks[{i}]")


def _stored(slots: Iterable[Slot]) -> list[dict[str, int]]:
    return [s.as_json() for s in sorted(slots, key=lambda s: (s.weekday, s.start_min))]


# ------------------------------------------------------------------ profiles


@dataclass(frozen=True)
class Home:
    """A home base as the client sent it."""

    lat: float
    lng: float
    coord_type: CoordType = CoordType.WGS84


@dataclass(frozen=True)
class ProfileChange:
    """Profile fields to set; None = keep (all are required when creating)."""

    display_name: str | None = None
    skills: Sequence[str] | None = None
    shifts: Sequence[Slot] | None = None
    breaks: Sequence[Slot] | None = None
    home: Home | None = None
    transport_mode: str | None = None
    is_active: bool | None = None


async def _own_enterprise(session: AsyncSession, actor: User, enterprise_id: int) -> None:
    """Staff only in their own enterprise (Forbidden); the enterprise must exist."""
    scope = enterprise_scope(actor)
    if scope is not None and scope != enterprise_id:
        raise Forbidden()
    if await session.get(Enterprise, enterprise_id) is None:
        raise NoEnterprise()


async def known_skills(session: AsyncSession, enterprise_id: int) -> frozenset[str]:
    """Every skill some service of the enterprise requires (the skills a worker may have)."""
    rows = await session.scalars(
        select(Service.required_skills).where(Service.enterprise_id == enterprise_id)
    )
    return frozenset(skill for row in rows for skill in (row or ()))


async def _checked_skills(
    session: AsyncSession, enterprise_id: int, skills: Sequence[str]
) -> list[str]:
    known = await known_skills(session, enterprise_id)
    for i, skill in enumerate(skills):
        if skill not in known:
            raise UnknownSkill(f"skills[{i}]", skill=skill)
    return sorted(set(skills))


def _home_point(home: Home) -> tuple[float, float, int]:
    try:
        lat, lng = to_wgs84(home.lat, home.lng, home.coord_type)
        return lat, lng, point_cell(lat, lng)
    except (GeoError, ValueError) as exc:
        raise BadHome("home") from exc


async def _apply(
    session: AsyncSession, worker: Worker, change: ProfileChange, enterprise_id: int
) -> None:
    """Validate every changed field against the merged profile, then set them (no flush)."""
    skills = None
    if change.skills is not None:
        skills = await _checked_skills(session, enterprise_id, change.skills)
    shifts = change.shifts
    breaks = change.breaks
    if shifts is not None or breaks is not None:
        shifts = shifts if shifts is not None else [Slot.of(s) for s in worker.shifts or []]
        breaks = breaks if breaks is not None else [Slot.of(b) for b in worker.breaks or []]
        check_schedule(shifts, breaks)
    home = _home_point(change.home) if change.home is not None else None
    # Every check passed: now write.
    if change.display_name is not None:
        worker.display_name = change.display_name
    if skills is not None:
        worker.skills = skills
    if shifts is not None and breaks is not None:
        worker.shifts, worker.breaks = _stored(shifts), _stored(breaks)
    if home is not None:
        worker.home_lat, worker.home_lng, worker.home_cell = home
    if change.transport_mode is not None:
        worker.transport_mode = change.transport_mode
    if change.is_active is not None:
        worker.is_active = change.is_active


async def create_profile(
    session: AsyncSession, actor: User, enterprise_id: int, user_id: int, change: ProfileChange
) -> Worker:
    """Give the enterprise's worker account ``user_id`` its dispatch profile.

    ``change`` carries every field (the router's schema requires them). The account can
    then go on duty, ping and receive offers.
    """
    await _own_enterprise(session, actor, enterprise_id)
    user = await session.get(User, user_id)
    if user is None or user.enterprise_id != enterprise_id:
        raise MemberNotFound()
    if user.role != Role.WORKER.value:
        raise NotAWorkerAccount()
    if await session.scalar(select(Worker.id).where(Worker.user_id == user_id)) is not None:
        raise ProfileExists()
    assert change.display_name is not None, "the schema requires it"
    assert change.home is not None, "the schema requires it"
    worker = Worker(
        user_id=user_id,
        enterprise_id=enterprise_id,
        display_name=change.display_name,
        skills=[],
        shifts=[],
        breaks=[],
    )
    await _apply(session, worker, change, enterprise_id)
    session.add(worker)
    try:
        await session.commit()
    except IntegrityError as exc:  # the same account's profile was created concurrently
        await session.rollback()
        raise ProfileExists() from exc
    return worker


async def enterprise_worker(
    session: AsyncSession, actor: User, enterprise_id: int, worker_id: int
) -> Worker:
    """The enterprise's worker (WorkerNotFound for another enterprise's or unknown ids)."""
    await _own_enterprise(session, actor, enterprise_id)
    worker = await session.get(Worker, worker_id)
    if worker is None or worker.enterprise_id != enterprise_id:
        raise WorkerNotFound()
    return worker


async def list_profiles(session: AsyncSession, actor: User, enterprise_id: int) -> list[Worker]:
    """Every worker profile of the enterprise (active or not), by id."""
    await _own_enterprise(session, actor, enterprise_id)
    rows = await session.scalars(
        select(Worker).where(Worker.enterprise_id == enterprise_id).order_by(Worker.id)
    )
    return list(rows)


async def update_profile(
    session: AsyncSession, actor: User, enterprise_id: int, worker_id: int, change: ProfileChange
) -> Worker:
    """Change some fields of the enterprise's worker's profile (all checked before any is set)."""
    worker = await enterprise_worker(session, actor, enterprise_id, worker_id)
    await _apply(session, worker, change, enterprise_id)
    await session.commit()
    return worker


# ------------------------------------------------------------------ schedule change requests


async def request_schedule(
    session: AsyncSession,
    worker: Worker,
    shifts: Sequence[Slot],
    breaks: Sequence[Slot],
    note: str | None,
) -> WorkerScheduleRequest:
    """The worker proposes a new weekly schedule; it replaces their pending proposal, if any."""
    check_schedule(shifts, breaks)
    await session.execute(
        update(WorkerScheduleRequest)
        .where(
            WorkerScheduleRequest.worker_id == worker.id,
            WorkerScheduleRequest.status == RequestStatus.PENDING.value,
        )
        .values(status=RequestStatus.SUPERSEDED.value)
    )
    request = WorkerScheduleRequest(
        worker_id=worker.id,
        enterprise_id=worker.enterprise_id,
        shifts=_stored(shifts),
        breaks=_stored(breaks),
        note=note,
        status=RequestStatus.PENDING.value,
    )
    session.add(request)
    try:
        await session.commit()
    except IntegrityError as exc:  # a concurrent request of the same worker won the race
        await session.rollback()
        raise ScheduleRequestRace() from exc
    return request


async def worker_requests(session: AsyncSession, worker: Worker) -> list[WorkerScheduleRequest]:
    """The worker's own requests, newest first."""
    rows = await session.scalars(
        select(WorkerScheduleRequest)
        .where(WorkerScheduleRequest.worker_id == worker.id)
        .order_by(WorkerScheduleRequest.id.desc())
    )
    return list(rows)


async def pending_request(session: AsyncSession, worker: Worker) -> WorkerScheduleRequest | None:
    """The worker's request waiting for staff, if any."""
    result: WorkerScheduleRequest | None = await session.scalar(
        select(WorkerScheduleRequest).where(
            WorkerScheduleRequest.worker_id == worker.id,
            WorkerScheduleRequest.status == RequestStatus.PENDING.value,
        )
    )
    return result


async def enterprise_requests(
    session: AsyncSession, actor: User, enterprise_id: int, status: RequestStatus | None
) -> list[WorkerScheduleRequest]:
    """The enterprise's requests in ``status`` (None = any), oldest first."""
    await _own_enterprise(session, actor, enterprise_id)
    stmt = select(WorkerScheduleRequest).where(WorkerScheduleRequest.enterprise_id == enterprise_id)
    if status is not None:
        stmt = stmt.where(WorkerScheduleRequest.status == status.value)
    return list(await session.scalars(stmt.order_by(WorkerScheduleRequest.id)))


async def decide_request(
    session: AsyncSession,
    actor: User,
    enterprise_id: int,
    request_id: int,
    *,
    approve: bool,
    note: str | None,
    now: datetime,
) -> WorkerScheduleRequest:
    """Approve (the proposal becomes the worker's schedule) or reject a pending request.

    The status moves by one conditional UPDATE, so two staff deciding at once cannot
    both win; the loser gets ScheduleRequestDecided.
    """
    await _own_enterprise(session, actor, enterprise_id)
    request = await session.get(WorkerScheduleRequest, request_id)
    if request is None or request.enterprise_id != enterprise_id:
        raise ScheduleRequestNotFound()
    if request.status != RequestStatus.PENDING.value:
        raise ScheduleRequestDecided()
    worker = await session.get(Worker, request.worker_id)
    assert worker is not None  # the foreign key cascades deletes
    shifts = [Slot.of(s) for s in request.shifts]
    breaks = [Slot.of(b) for b in request.breaks]
    if approve:
        check_schedule(shifts, breaks)
    moved = await session.execute(
        update(WorkerScheduleRequest)
        .where(
            WorkerScheduleRequest.id == request_id,
            WorkerScheduleRequest.status == RequestStatus.PENDING.value,
        )
        .values(
            status=(RequestStatus.APPROVED if approve else RequestStatus.REJECTED).value,
            decided_by=actor.id,
            decided_at=now,
            decision_note=note,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if getattr(moved, "rowcount", 0) != 1:
        await session.rollback()
        raise ScheduleRequestDecided()
    if approve:
        worker.shifts, worker.breaks = _stored(shifts), _stored(breaks)
    await session.commit()
    await session.refresh(request)
    return request
