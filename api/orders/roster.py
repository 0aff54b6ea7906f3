"""The booking roster: each enterprise's active workers, cached per process as arrays.

Booking and slot searches need every eligible worker's skills, weekly shifts and
home point. Reading and JSON-decoding all of them on every request was most of a
booking's cost, so each API process keeps them per enterprise as numpy arrays and
rebuilds only when the roster's fingerprint (active count, newest ``updated_at``)
changes. The fingerprint is a pair of scalar subqueries that ride along with a query
the request makes anyway (``fingerprint_columns``), so a fresh roster costs no extra
round trip and several processes stay consistent without messaging.

The cache is not what makes a booking correct: the reservation insert re-checks that
the worker is still active (``still_active``), and PostgreSQL's exclusion constraint
forbids overlapping reservations.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import numpy as np
from numpy.typing import NDArray
from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from api.tenants.models import Worker
from geo.projection import haversine_m

#: minutes from local midnight; NO_SHIFT marks a weekday without a shift.
NO_SHIFT = -1


def fingerprint_columns(enterprise_id: Any) -> tuple[Any, Any]:
    """Scalar subqueries (active workers, newest update) of ``enterprise_id``'s roster.

    ``enterprise_id`` may be a value or a column of the enclosing query (correlated).
    """
    active = (Worker.enterprise_id == enterprise_id, Worker.is_active.is_(True))
    count = select(func.count(Worker.id)).where(*active).scalar_subquery()
    newest = select(func.max(Worker.updated_at)).where(Worker.enterprise_id == enterprise_id)
    return count, newest.scalar_subquery()


def still_active(worker_id: Any) -> ColumnElement[bool]:
    """SQL condition: the worker (an id or a bound parameter) exists and is active."""
    return exists().where(Worker.id == worker_id, Worker.is_active.is_(True))


@dataclass(frozen=True)
class WorkerBrief:
    """What an order view shows of its worker."""

    id: int
    display_name: str
    rating: float


@dataclass(frozen=True)
class Roster:
    """One enterprise's active workers as parallel arrays (row i = one worker)."""

    ids: NDArray[np.int64]
    lat: NDArray[np.float64]
    lng: NDArray[np.float64]
    #: (n, 7) local shift start / end in minutes from midnight per weekday (Mon = 0)
    shift_start: NDArray[np.int32]
    shift_end: NDArray[np.int32]
    skills: tuple[frozenset[str], ...]
    briefs: tuple[WorkerBrief, ...]
    #: transport mode name per worker (``dispatch.model.TRANSPORT_MODES``)
    modes: tuple[str, ...] = ()
    #: per worker, per weekday: breaks as (start, end) minutes from local midnight
    breaks: tuple[tuple[tuple[tuple[int, int], ...], ...], ...] = ()
    _skill_masks: dict[frozenset[str], NDArray[np.bool_]] = field(default_factory=dict)
    _rows: dict[int, int] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: list[Any]) -> Roster:
        """Build from (id, skills, shifts, home lat, lng, display_name, rating, mode, breaks)."""
        n = len(rows)
        start = np.full((n, 7), NO_SHIFT, dtype=np.int32)
        end = np.full((n, 7), NO_SHIFT, dtype=np.int32)
        for i, row in enumerate(rows):
            # The first shift listed for a weekday is the one booking uses.
            for shift in reversed(row[2] or []):
                weekday = int(shift.get("weekday", -1))
                if 0 <= weekday < 7:
                    start[i, weekday] = int(shift["start_min"])
                    end[i, weekday] = int(shift["end_min"])
        return cls(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            lat=np.array([r[3] for r in rows], dtype=np.float64),
            lng=np.array([r[4] for r in rows], dtype=np.float64),
            shift_start=start,
            shift_end=end,
            skills=tuple(frozenset(r[1] or ()) for r in rows),
            briefs=tuple(WorkerBrief(int(r[0]), r[5], float(r[6])) for r in rows),
            modes=tuple(str(r[7] or "ebike") for r in rows),
            breaks=tuple(_weekly(r[8] or ()) for r in rows),
        )

    def row_of(self, worker_id: int) -> int:
        """The row of ``worker_id`` (IndexError when it is not in the roster)."""
        if not self._rows:
            self._rows.update((int(w), i) for i, w in enumerate(self.ids.tolist()))
        try:
            return self._rows[int(worker_id)]
        except KeyError:
            raise IndexError(f"worker {worker_id} is not in the roster") from None

    def rows_of(self, worker_ids: Sequence[int]) -> NDArray[np.intp]:
        """The rows of ``worker_ids``, in their order (IndexError for one not here)."""
        return np.array([self.row_of(w) for w in worker_ids], dtype=np.intp)

    def breaks_on(self, row: int, day: date, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
        """The worker's breaks on local ``day`` as aware datetimes."""
        midnight = datetime.combine(day, time(0), tzinfo=tz)
        return [
            (midnight + timedelta(minutes=a), midnight + timedelta(minutes=b))
            for a, b in self.breaks[row][day.weekday()]
        ]

    def __len__(self) -> int:
        return len(self.ids)

    def skilled(self, need: frozenset[str]) -> NDArray[np.bool_]:
        """Mask of workers holding every skill in ``need`` (memoised per skill set)."""
        mask = self._skill_masks.get(need)
        if mask is None:
            mask = np.fromiter((need <= s for s in self.skills), dtype=bool, count=len(self))
            self._skill_masks[need] = mask
        return mask

    def in_reach(
        self, need: frozenset[str], lat: float, lng: float, reach_m: float
    ) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
        """Rows of skilled workers whose home is within ``reach_m``, nearest first (ties by id)."""
        rows = np.flatnonzero(self.skilled(need))
        if rows.size == 0:
            return rows, np.empty(0)
        dist = haversine_m(
            np.full(rows.size, lat), np.full(rows.size, lng), self.lat[rows], self.lng[rows]
        )
        keep = dist <= reach_m
        rows, dist = rows[keep], dist[keep]
        order = np.lexsort((self.ids[rows], dist))
        return rows[order], dist[order]

    def shift_window(self, row: int, day: date, tz: ZoneInfo) -> tuple[datetime, datetime] | None:
        """The worker's shift on local ``day`` as aware datetimes, None when off."""
        weekday = day.weekday()
        start = int(self.shift_start[row, weekday])
        if start == NO_SHIFT:
            return None
        midnight = datetime.combine(day, time(0), tzinfo=tz)
        end = int(self.shift_end[row, weekday])
        return midnight + timedelta(minutes=start), midnight + timedelta(minutes=end)

    def on_shift(
        self, rows: NDArray[np.intp], start: datetime, end: datetime, tz: ZoneInfo
    ) -> NDArray[np.intp]:
        """The ``rows`` whose shift on ``start``'s local day covers ``[start, end]``."""
        local = start.astimezone(tz)
        midnight = datetime.combine(local.date(), time(0), tzinfo=tz)
        begin_min = (start - midnight).total_seconds() / 60.0
        end_min = (end - midnight).total_seconds() / 60.0
        weekday = local.weekday()
        s = self.shift_start[rows, weekday]
        e = self.shift_end[rows, weekday]
        fits: NDArray[np.intp] = rows[(s != NO_SHIFT) & (s <= begin_min) & (end_min <= e)]
        return fits


def _weekly(breaks: Any) -> tuple[tuple[tuple[int, int], ...], ...]:
    days: list[list[tuple[int, int]]] = [[] for _ in range(7)]
    for b in breaks:
        weekday = int(b.get("weekday", -1))
        if 0 <= weekday < 7:
            days[weekday].append((int(b["start_min"]), int(b["end_min"])))
    return tuple(tuple(sorted(d)) for d in days)


class RosterCache:
    """Per-process rosters by enterprise, rebuilt when their fingerprint changes."""

    def __init__(self) -> None:
        self._rosters: dict[int, tuple[tuple[Any, ...], Roster]] = {}
        self._lock = anyio.Lock()

    async def get(
        self, session: AsyncSession, enterprise_id: int, fingerprint: tuple[Any, ...] | None = None
    ) -> Roster:
        """The enterprise's roster; pass the fingerprint if the caller already read it."""
        if fingerprint is None:
            count, newest = fingerprint_columns(enterprise_id)
            fingerprint = tuple((await session.execute(select(count, newest))).one())
        cached = self._rosters.get(enterprise_id)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        async with self._lock:
            cached = self._rosters.get(enterprise_id)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
            rows = (
                await session.execute(
                    select(
                        Worker.id,
                        Worker.skills,
                        Worker.shifts,
                        Worker.home_lat,
                        Worker.home_lng,
                        Worker.display_name,
                        Worker.rating,
                        Worker.transport_mode,
                        Worker.breaks,
                    )
                    .where(Worker.enterprise_id == enterprise_id, Worker.is_active.is_(True))
                    .order_by(Worker.id)
                )
            ).all()
            roster = Roster.from_rows(list(rows))
            self._rosters[enterprise_id] = (fingerprint, roster)
            return roster
