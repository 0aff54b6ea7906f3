"""Shared pieces of the offer policies: checked ids and times, enums, snapshots, order table."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Generic, Protocol, TypeAlias, TypeVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

from dispatch.errors import DispatchError, InvalidInput, UnknownOrder

IdArray: TypeAlias = NDArray[np.int64]

#: Version of the plain-dict snapshot layout written by ``snapshot()``.
SNAPSHOT_VERSION = 1


class OfferConflict(DispatchError, RuntimeError):
    """A caller asked for a transition the current state forbids.

    Examples: offering an order that is not pending, offering a worker who
    already holds an outstanding offer or who is excluded for that order.
    These are caller bugs (the inputs to ``match`` should have prevented
    them), unlike a worker's late accept, which is an ordinary rejection event.
    """


class DispatchMode(StrEnum):
    """How new orders reach workers."""

    AUTO = "auto"  # 派单: the platform picks the worker and offers the order
    GRAB = "grab"  # 抢单: eligible workers see the order and the first claim wins


class RejectReason(StrEnum):
    """Why an accept, decline or claim was refused; stable codes for the API."""

    ALREADY_CLAIMED = "already_claimed"  # another worker already won the order
    NOT_ELIGIBLE = "not_eligible"  # grab: the worker was not shown this order
    EXPIRED = "expired"  # the accept timeout or grab window is over
    NOT_OFFERED = "not_offered"  # auto: no outstanding offer to this worker
    DECLINED = "declined"  # auto: this worker already declined the order
    ORDER_CLOSED = "order_closed"  # the order was cancelled or escalated
    WORKER_BUSY = "worker_busy"  # the worker holds an outstanding offer elsewhere


class ExclusionReason(StrEnum):
    """Why a worker may no longer be offered an order."""

    DECLINED = "declined"
    EXPIRED = "expired"
    GIVEN = "given"  # passed in by the caller when the order was queued


class EscalationReason(StrEnum):
    """Standard reasons an order goes to a human dispatcher (callers may use others)."""

    MAX_OFFERS = "max_offers_reached"
    NO_CANDIDATES = "no_candidates"


class FallbackReason(StrEnum):
    """Why a grab-pool order moved to auto-assign."""

    WINDOW_ELAPSED = "grab_window_elapsed"
    NO_ELIGIBLE_WORKERS = "no_eligible_workers"


class OrderStatus(StrEnum):
    """State of an order in the :class:`OfferBook`."""

    PENDING = "pending"  # waiting for the next match
    OFFERED = "offered"  # one outstanding offer
    ASSIGNED = "assigned"  # accepted; terminal for the book
    ESCALATED = "escalated"  # handed to a human dispatcher; terminal
    CANCELLED = "cancelled"  # withdrawn by the caller; terminal


class GrabStatus(StrEnum):
    """State of an order in the :class:`GrabPool`."""

    OPEN = "open"
    CLAIMED = "claimed"  # terminal
    FELL_BACK = "fell_back"  # moved to auto-assign; terminal for the pool
    CANCELLED = "cancelled"  # terminal


# --------------------------------------------------------------------------- validation


def as_int(value: object, name: str) -> int:
    if isinstance(value, bool | np.bool_):
        raise InvalidInput(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidInput(f"{name} must be an integer, got {value!r}") from None


def as_id(value: object, name: str) -> int:
    return as_int(value, name)


def as_time(value: object, name: str = "now") -> int:
    seconds = as_int(value, name)
    if seconds < 0:
        raise InvalidInput(f"{name} must be epoch seconds >= 0, got {seconds}")
    return seconds


def as_id_array(values: ArrayLike, name: str) -> IdArray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = np.atleast_1d(arr)
        if arr.ndim != 1:
            raise InvalidInput(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        if arr.dtype == object:
            return np.fromiter(
                (as_id(v, f"{name}[{i}]") for i, v in enumerate(arr)), np.int64, arr.size
            )
        raise InvalidInput(f"{name} must hold integer ids, got dtype {arr.dtype}")
    if arr.dtype == np.uint64 and (arr > np.iinfo(np.int64).max).any():
        bad = int(np.argmax(arr > np.iinfo(np.int64).max))
        raise InvalidInput(f"{name}[{bad}] does not fit in int64, got {arr[bad]}")
    return arr.astype(np.int64, copy=False)


def as_count(value: object, name: str) -> int:
    count = as_int(value, name)
    if count < 0:
        raise InvalidInput(f"{name} must be >= 0, got {count}")
    return count


def as_reason(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be a non-empty string, got {value!r}")
    return value


def first_duplicate(ids: IdArray) -> int | None:
    if ids.size < 2:
        return None
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    dup = np.flatnonzero(sorted_ids[1:] == sorted_ids[:-1])
    return None if dup.size == 0 else int(order[dup[0] + 1])


# --------------------------------------------------------------------------- snapshot helpers


def check_version(data: Mapping[str, Any], what: str) -> None:
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what} snapshot must be a mapping, got {type(data).__name__}")
    version = data.get("version")
    if version != SNAPSHOT_VERSION:
        raise InvalidInput(f"{what} snapshot version must be {SNAPSHOT_VERSION}, got {version!r}")


def field_of(data: Mapping[str, Any], key: str, where: str) -> Any:
    try:
        return data[key]
    except (KeyError, TypeError):
        raise InvalidInput(f"{where}.{key} is missing") from None


def opt_int(value: object, name: str) -> int | None:
    return None if value is None else as_int(value, name)


_E = TypeVar("_E", bound=StrEnum)


def as_enum(kind: type[_E], value: object, name: str) -> _E:
    try:
        return kind(value)  # type: ignore[arg-type]
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in kind)
        raise InvalidInput(f"{name} must be one of {allowed}, got {value!r}") from None


class HasStatus(Protocol):
    order_id: int

    @property
    def status(self) -> StrEnum: ...


Rec = TypeVar("Rec", bound=HasStatus)


class OrderTable(Generic[Rec]):
    """Orders by id, shared by the offer book and the grab pool."""

    _where: ClassVar[str]  # "offer book" / "grab pool", for messages
    _status_kind: ClassVar[type[StrEnum]]
    _orders: dict[int, Rec]

    def __contains__(self, order_id: object) -> bool:
        return isinstance(order_id, int | np.integer) and int(order_id) in self._orders

    def __len__(self) -> int:
        return len(self._orders)

    def _get(self, order_id: object) -> Rec:
        oid = as_id(order_id, "order_id")
        try:
            return self._orders[oid]
        except KeyError:
            raise UnknownOrder(f"order_id {oid} is not in the {self._where}") from None

    def order_ids(self, status: StrEnum | str | None = None) -> IdArray:
        """Ids of the orders in ``status`` (all when None), ascending."""
        if status is None:
            ids: Iterable[int] = self._orders
        else:
            wanted = as_enum(self._status_kind, status, "status")
            ids = (o for o, rec in self._orders.items() if rec.status is wanted)
        return np.sort(np.fromiter(ids, dtype=np.int64))
