"""Fairness: :class:`FairnessLedger`, recent load and miss cooldowns per worker."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch.errors import InvalidInput
from dispatch.model import Fleet
from dispatch.offers.base import (
    SNAPSHOT_VERSION,
    IdArray,
    as_id_array,
    as_int,
    as_time,
    check_version,
    field_of,
)
from dispatch.offers.events import (
    Claimed,
    Event,
    OfferDeclined,
    OfferExpired,
    OfferMade,
)
from dispatch.offers.policy import (
    OfferPolicy,
)


class FairnessLedger:
    """Recent load and miss cooldowns per worker, from the event stream.

    *Load*: every ``OfferMade`` and ``Claimed`` counts 1 for its worker during
    ``[at, at + fairness_window_s)``. A worker whose load reaches
    ``fairness_max_offers`` is not eligible for new offers until older
    entries slide out of the window, so one well-placed worker is not handed
    everything in a dense area. ``penalty`` is ``min(load / fairness_max_offers,
    1)`` in [0, 1]: multiply it by the cost model's fairness weight (seconds
    of travel one "full" worker is worth) to prefer less-loaded workers
    before the hard cap bites.

    *Cooldown*: after an ``OfferDeclined`` or ``OfferExpired`` the worker is
    not eligible during ``[at, at + miss_cooldown_s)``, so a worker with the
    app in a pocket is not hit by the next order straight away.

    Queries take worker ids (e.g. a Fleet's ``ids``) and return arrays
    aligned with them. :meth:`apply_to_fleet` folds both into a ``Fleet`` for
    ``match``: ineligible workers become unavailable (a hard filter in
    candidate generation) and the recent load is added to ``load_today``, which
    the cost model's fairness term (``CostWeights.fairness_per_order``)
    already prices.
    """

    def __init__(self, policy: OfferPolicy | None = None) -> None:
        """Empty ledger under ``policy`` (default :class:`OfferPolicy`)."""
        self.policy = policy if policy is not None else OfferPolicy()
        self._log: deque[tuple[int, int]] = deque()  # (at, worker_id), roughly time-ordered
        self._cooldown_until: dict[int, int] = {}
        self._latest = 0
        # Kept with the log: entries per worker, whether the log is in time order (then a
        # query at or after its last entry needs no scan), and sorted arrays of the counts
        # rebuilt only after the log changed.
        self._counts: dict[int, int] = {}
        self._in_order = True
        self._count_arrays: tuple[IdArray, IdArray] | None = None

    def observe(self, events: Iterable[Event]) -> None:
        """Record the loads and misses in ``events``; other event kinds are ignored."""
        for event in events:
            if isinstance(event, OfferMade):
                self._record_load(event.worker_id, event.offered_at)
            elif isinstance(event, Claimed):
                self._record_load(event.worker_id, event.claimed_at)
            elif isinstance(event, OfferDeclined | OfferExpired):
                at = event.declined_at if isinstance(event, OfferDeclined) else event.expired_at
                until = at + self.policy.miss_cooldown_s
                if until > self._cooldown_until.get(event.worker_id, -1):
                    self._cooldown_until[event.worker_id] = until
                self._latest = max(self._latest, at)
        self._prune()

    def _record_load(self, worker_id: int, at: int) -> None:
        if self._log and at < self._log[-1][0]:
            self._in_order = False
        self._log.append((at, worker_id))
        self._counts[worker_id] = self._counts.get(worker_id, 0) + 1
        self._count_arrays = None
        self._latest = max(self._latest, at)

    def _prune(self) -> None:
        # Entries are appended in event order, which is time order up to small clock skew;
        # anything missed here is still masked out by time in the queries.
        horizon = self._latest - self.policy.fairness_window_s
        while self._log and self._log[0][0] <= horizon:
            _, wid = self._log.popleft()
            left = self._counts[wid] - 1
            if left:
                self._counts[wid] = left
            else:
                del self._counts[wid]
            self._count_arrays = None
        if not self._log:
            self._in_order = True
        stale = [w for w, until in self._cooldown_until.items() if until <= self._latest]
        for wid in stale:
            del self._cooldown_until[wid]

    def recent_load(self, worker_ids: ArrayLike, now: int) -> NDArray[np.int64]:
        """Offers + claims per worker in ``(now - fairness_window_s, now]``, aligned with ids."""
        ids = as_id_array(worker_ids, "worker_ids")
        t = as_time(now)
        if not self._log:
            return np.zeros(ids.size, dtype=np.int64)
        if (
            self._in_order
            and self._log[-1][0] <= t
            and self._log[0][0] > t - self.policy.fairness_window_s
        ):
            # Every logged entry is inside the window: the running counts are the answer.
            if self._count_arrays is None:
                keys = np.fromiter(self._counts, dtype=np.int64, count=len(self._counts))
                values = np.fromiter(self._counts.values(), dtype=np.int64, count=keys.size)
                order = np.argsort(keys)
                self._count_arrays = (keys[order], values[order])
            return _lookup(*self._count_arrays, ids, 0)
        log = np.array(self._log, dtype=np.int64).reshape(-1, 2)
        live = (log[:, 0] <= t) & (log[:, 0] > t - self.policy.fairness_window_s)
        loaded, counts = np.unique(log[live, 1], return_counts=True)
        return _lookup(loaded, counts.astype(np.int64), ids, 0)

    def penalty(self, worker_ids: ArrayLike, now: int) -> NDArray[np.float64]:
        """Fairness penalty in [0, 1] per worker (recent load / cap, clipped), aligned with ids."""
        load = self.recent_load(worker_ids, now)
        return np.minimum(load / float(self.policy.fairness_max_offers), 1.0)

    def cooling_down(self, worker_ids: ArrayLike, now: int) -> NDArray[np.bool_]:
        """True where the worker missed an offer less than ``miss_cooldown_s`` before ``now``."""
        ids = as_id_array(worker_ids, "worker_ids")
        t = as_time(now)
        if not self._cooldown_until:
            return np.zeros(ids.size, dtype=np.bool_)
        keys = np.fromiter(self._cooldown_until, dtype=np.int64, count=len(self._cooldown_until))
        until = np.fromiter(
            self._cooldown_until.values(), dtype=np.int64, count=len(self._cooldown_until)
        )
        order = np.argsort(keys)
        return _lookup(keys[order], until[order], ids, -1) > t

    def eligible_mask(
        self, worker_ids: ArrayLike, now: int, busy_worker_ids: ArrayLike = ()
    ) -> NDArray[np.bool_]:
        """True where a worker may get a new offer: under the load cap, not cooling down, not busy.

        Pass :meth:`OfferBook.busy_worker_ids` as ``busy_worker_ids``.
        """
        ids = as_id_array(worker_ids, "worker_ids")
        busy = as_id_array(busy_worker_ids, "busy_worker_ids")
        under_cap = self.recent_load(ids, now) < self.policy.fairness_max_offers
        return under_cap & ~self.cooling_down(ids, now) & ~np.isin(ids, busy)

    def apply_to_fleet(self, fleet: Fleet, now: int, busy_worker_ids: ArrayLike = ()) -> Fleet:
        """A copy of ``fleet`` for the next ``match``: ineligible workers unavailable, load added.

        ``available &= eligible_mask(...)``; ``load_today += recent_load(...)`` (orders).
        """
        eligible = self.eligible_mask(fleet.ids, now, busy_worker_ids)
        available = np.asarray(fleet.available, dtype=np.bool_) & eligible
        load_today = np.asarray(fleet.load_today, dtype=np.int64) + self.recent_load(fleet.ids, now)
        for arr in (available, load_today):
            arr.setflags(write=False)  # Fleet arrays are read-only by contract
        return replace(fleet, available=available, load_today=load_today)

    def snapshot(self) -> dict[str, Any]:
        """Whole state as plain dicts/lists/ints (JSON-safe) for persistence or replay."""
        return {
            "version": SNAPSHOT_VERSION,
            "policy": self.policy.to_dict(),
            "loads": [[at, wid] for at, wid in self._log],
            "cooldowns": [[wid, until] for wid, until in self._cooldown_until.items()],
            "latest": self._latest,
        }

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> FairnessLedger:
        """Rebuild a ledger from :meth:`snapshot` output; ``InvalidInput`` names a bad field."""
        check_version(data, "fairness ledger")
        ledger = cls(OfferPolicy.from_dict(field_of(data, "policy", "snapshot")))
        for i, pair in enumerate(field_of(data, "loads", "snapshot")):
            at, wid = _pair(pair, f"snapshot.loads[{i}]")
            ledger._record_load(wid, as_time(at, f"snapshot.loads[{i}][0]"))
        for i, pair in enumerate(field_of(data, "cooldowns", "snapshot")):
            wid, until = _pair(pair, f"snapshot.cooldowns[{i}]")
            ledger._cooldown_until[wid] = until
        ledger._latest = as_time(field_of(data, "latest", "snapshot"), "snapshot.latest")
        return ledger


def _pair(value: object, name: str) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidInput(f"{name} must be a pair of integers, got {value!r}")
    return as_int(value[0], f"{name}[0]"), as_int(value[1], f"{name}[1]")


def _lookup(
    sorted_keys: IdArray, values: IdArray, query: IdArray, missing: int
) -> NDArray[np.int64]:
    """values[k] where sorted_keys[k] == query[i], else ``missing`` — vectorised dict lookup."""
    if sorted_keys.size == 0:
        return np.full(query.size, missing, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_keys, query), sorted_keys.size - 1)
    return np.where(sorted_keys[pos] == query, values[pos], missing)
