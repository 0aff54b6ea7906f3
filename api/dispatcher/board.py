"""An enterprise's dispatch board settings and the offer policy they give (one place).

Staff store them through the enterprise board (``PUT /v1/enterprise/dispatch-settings``);
the dispatcher, the worker's answers and staff assignment read them here. Without stored
settings an enterprise dispatches under the platform's (``DAOJIA_*`` settings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.core.errors import InvalidInput
from api.core.settings import Settings
from api.tenants.models import Enterprise
from dispatch.cost import CostWeights
from dispatch.errors import InvalidInput as DispatchInvalid
from dispatch.offers import DispatchMode, OfferPolicy

log = structlog.get_logger("api.dispatcher")


class BadDispatchSettings(InvalidInput):
    """Dispatch settings out of range (CostWeights / OfferPolicy validation)."""

    status_code = 422
    code = "bad_dispatch_settings"
    message = "Invalid dispatch settings: {reason}"


@dataclass(frozen=True)
class DispatchSettings:
    """One enterprise's dispatch knobs: mode, batch window (s), accept timeout (s), weights."""

    mode: DispatchMode
    batch_window_s: float
    accept_timeout_s: int
    grab_window_s: int
    weights: CostWeights

    def as_json(self) -> dict[str, Any]:
        """The stored form (enterprises.dispatch_settings)."""
        return {
            "mode": self.mode.value,
            "batch_window_s": self.batch_window_s,
            "accept_timeout_s": self.accept_timeout_s,
            "grab_window_s": self.grab_window_s,
            "weights": dataclasses.asdict(self.weights),
        }


def parse_dispatch_settings(raw: dict[str, Any] | None) -> DispatchSettings:
    """Validate stored or submitted settings (missing keys = defaults); BadDispatchSettings."""
    raw = raw or {}
    try:
        policy = OfferPolicy(
            mode=raw.get("mode", DispatchMode.AUTO),
            accept_timeout_s=raw.get("accept_timeout_s", 30),
            grab_window_s=raw.get("grab_window_s", 60),
        )
        weights = CostWeights(**(raw.get("weights") or {}))
    except (DispatchInvalid, TypeError) as exc:
        raise BadDispatchSettings(reason=str(exc)) from None
    window = raw.get("batch_window_s", 2.0)
    if isinstance(window, bool) or not isinstance(window, int | float) or not 0 < window <= 60:
        raise BadDispatchSettings(reason=f"batch_window_s must be in (0, 60], got {window!r}")
    return DispatchSettings(
        mode=DispatchMode(policy.mode),
        batch_window_s=float(window),
        accept_timeout_s=policy.accept_timeout_s,
        grab_window_s=policy.grab_window_s,
        weights=weights,
    )


def offer_policy(settings: Settings, own: DispatchSettings | None) -> OfferPolicy:
    """An enterprise's offer policy: its stored board settings, else the platform's."""
    if own is not None:
        return OfferPolicy(
            mode=own.mode, accept_timeout_s=own.accept_timeout_s, grab_window_s=own.grab_window_s
        )
    return OfferPolicy(
        mode=DispatchMode.GRAB if settings.grab_window_s > 0 else DispatchMode.AUTO,
        accept_timeout_s=settings.offer_timeout_s,
        grab_window_s=max(1, settings.grab_window_s),
    )


async def stored_settings(
    session: AsyncSession, enterprise_ids: Iterable[int]
) -> dict[int, DispatchSettings]:
    """Stored settings per enterprise; enterprises without any (or unreadable) are absent."""
    rows = await session.execute(
        select(Enterprise.id, Enterprise.dispatch_settings).where(
            Enterprise.id.in_(list(enterprise_ids)), Enterprise.dispatch_settings.is_not(None)
        )
    )
    out = {}
    for ent_id, raw in rows.all():
        try:
            out[int(ent_id)] = parse_dispatch_settings(raw)
        except BadDispatchSettings:  # stored rows were validated; never stop dispatching
            log.warning("dispatch_settings_invalid", enterprise_id=ent_id)
    return out
