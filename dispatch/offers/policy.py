"""The offer policies' knobs (:class:`OfferPolicy`), validated on construction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dispatch.errors import InvalidInput
from dispatch.offers.base import (
    DispatchMode,
    as_int,
)


@dataclass(frozen=True)
class OfferPolicy:
    """Knobs of the offer policies; validated on construction, field named on error.

    Durations are whole seconds. ``mode`` may be given as ``"auto"``/``"grab"``.
    """

    mode: DispatchMode = DispatchMode.AUTO
    #: seconds a worker has to accept an auto-assign offer.
    accept_timeout_s: int = 30
    #: seconds a grab-pool order stays claimable before falling back to auto-assign.
    grab_window_s: int = 60
    #: H3 k-ring radius the caller uses to pick grab-pool eligible workers (0 = own cell).
    grab_rings: int = 2
    #: offers per order (declined or timed out) before escalating to a human dispatcher.
    max_offers_per_order: int = 5
    #: length of the sliding window in which offers and claims count towards fairness.
    fairness_window_s: int = 3600
    #: offers + claims within the window at which a worker stops being eligible.
    fairness_max_offers: int = 12
    #: seconds after a declined or timed-out offer before the worker is offered again.
    miss_cooldown_s: int = 60

    def __post_init__(self) -> None:
        try:
            mode = DispatchMode(self.mode)
        except ValueError:
            allowed = ", ".join(repr(m.value) for m in DispatchMode)
            raise InvalidInput(f"mode must be one of {allowed}, got {self.mode!r}") from None
        object.__setattr__(self, "mode", mode)
        minimums = {
            "accept_timeout_s": 1,
            "grab_window_s": 1,
            "grab_rings": 0,
            "max_offers_per_order": 1,
            "fairness_window_s": 1,
            "fairness_max_offers": 1,
            "miss_cooldown_s": 0,
        }
        for name, minimum in minimums.items():
            value = as_int(getattr(self, name), name)
            if value < minimum:
                raise InvalidInput(f"{name} must be >= {minimum}, got {value}")
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (for snapshots and settings files)."""
        out = asdict(self)
        out["mode"] = self.mode.value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OfferPolicy:
        """Build from :meth:`to_dict` output; unknown keys raise ``InvalidInput``."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"policy must be a mapping, got {type(data).__name__}")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidInput(f"policy has unknown field(s) {unknown}")
        return cls(**dict(data))
