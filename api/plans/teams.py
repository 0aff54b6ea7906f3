"""Teams: named sets of an enterprise's workers whose day is planned together."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth.models import User
from api.enterprise.service import NoEnterprise, enterprise_scope
from api.plans.errors import EnterpriseRequired, TeamNameTaken, TeamNotFound, UnknownTeamWorker
from api.plans.models import Team, TeamMember
from api.tenants.models import Enterprise, Worker


@dataclass(frozen=True)
class TeamRef:
    """Whose day is planned: an enterprise, a team (None = every worker) and its members."""

    enterprise_id: int
    team_id: int | None
    name: str
    worker_ids: tuple[int, ...]

    @property
    def scope(self) -> str:
        """The ``day_plans.scope`` key."""
        return "all" if self.team_id is None else f"team:{self.team_id}"


async def _enterprise_of(session: AsyncSession, user: User, enterprise_id: int | None) -> int:
    scope = enterprise_scope(user)
    if scope is not None:
        if enterprise_id is not None and enterprise_id != scope:
            raise NoEnterprise()
        enterprise_id = scope
    if enterprise_id is None:
        raise EnterpriseRequired(details={"field": "enterprise_id"})
    if await session.get(Enterprise, enterprise_id) is None:
        raise NoEnterprise()
    return enterprise_id


async def _team_row(session: AsyncSession, user: User, team_id: int) -> Team:
    team = await session.get(Team, team_id)
    scope = enterprise_scope(user)
    if team is None or (scope is not None and team.enterprise_id != scope):
        raise TeamNotFound(details={"field": "team_id"})
    return team


async def _members(session: AsyncSession, team_id: int) -> tuple[int, ...]:
    rows = await session.scalars(
        select(TeamMember.worker_id).where(TeamMember.team_id == team_id).order_by("worker_id")
    )
    return tuple(int(r) for r in rows)


async def resolve_team(
    session: AsyncSession, user: User, team_id: int | None, enterprise_id: int | None
) -> TeamRef:
    """The team (or the default team of every active worker of the caller's enterprise)."""
    if team_id is not None:
        team = await _team_row(session, user, team_id)
        return TeamRef(team.enterprise_id, team.id, team.name, await _members(session, team.id))
    ent = await _enterprise_of(session, user, enterprise_id)
    rows = await session.scalars(
        select(Worker.id)
        .where(Worker.enterprise_id == ent, Worker.is_active.is_(True))
        .order_by(Worker.id)
    )
    return TeamRef(ent, None, "", tuple(int(r) for r in rows))


async def _check_workers(
    session: AsyncSession, enterprise_id: int, worker_ids: Sequence[int]
) -> None:
    known = set(
        await session.scalars(
            select(Worker.id).where(
                Worker.enterprise_id == enterprise_id, Worker.id.in_(worker_ids)
            )
        )
    )
    for wid in worker_ids:
        if wid not in known:
            raise UnknownTeamWorker(
                worker_id=wid, field="worker_ids", details={"field": "worker_ids"}
            )


async def save_team(
    session: AsyncSession,
    user: User,
    name: str,
    worker_ids: Sequence[int],
    *,
    team_id: int | None = None,
    enterprise_id: int | None = None,
    now: datetime,
) -> TeamRef:
    """Create (``team_id`` None) or replace a team's name and members; commits."""
    ids = sorted(set(worker_ids))
    if team_id is None:
        ent = await _enterprise_of(session, user, enterprise_id)
        await _check_workers(session, ent, ids)
        team = Team(enterprise_id=ent, name=name, created_at=now, updated_at=now)
        session.add(team)
    else:
        team = await _team_row(session, user, team_id)
        await _check_workers(session, team.enterprise_id, ids)
        team.name, team.updated_at = name, now
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise TeamNameTaken(details={"field": "name"}) from None
    await session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    session.add_all([TeamMember(team_id=team.id, worker_id=w) for w in ids])
    await session.commit()
    return TeamRef(team.enterprise_id, team.id, team.name, tuple(ids))


async def list_teams(session: AsyncSession, user: User, enterprise_id: int | None) -> list[TeamRef]:
    """The enterprise's teams by name."""
    ent = await _enterprise_of(session, user, enterprise_id)
    teams = await session.scalars(select(Team).where(Team.enterprise_id == ent).order_by(Team.name))
    return [TeamRef(t.enterprise_id, t.id, t.name, await _members(session, t.id)) for t in teams]


async def get_team(session: AsyncSession, user: User, team_id: int) -> TeamRef:
    """One team of the caller's enterprise."""
    return await resolve_team(session, user, team_id, None)


async def delete_team(session: AsyncSession, user: User, team_id: int) -> None:
    """Delete a team (its plans go with it); commits."""
    team = await _team_row(session, user, team_id)
    await session.delete(team)
    await session.commit()
