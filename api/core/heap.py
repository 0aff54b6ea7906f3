"""Short collector pauses in a process that holds thousands of live sockets.

CPython 3.11's cyclic collector walks every tracked object of the oldest generation in
one pass. An API process with 10,000 WebSocket connections holds millions of objects
that live as long as their connections; once enough of them pile up (a burst of
connections is enough), a full pass stops every request of the process for 1–2 s.

``HeapKeeper`` collects the young generations and then freezes the survivors every
``freeze_every_s`` (``gc.freeze`` is O(1)): full passes then walk only what was
allocated since, and stay short. The young collection itself walks every object
allocated since the last tick that is still alive, and a busy socket server keeps many
such objects a few seconds (each connection's wait for its next message: coroutines,
futures, timers — ~40 objects per message). At 1,000 location pings/s a 5 s tick
walked ~200k of them in one 150–250 ms pause, the tail of every live ETA; a 0.25 s
tick walks the same objects in twenty ~10 ms pauses (``daojia bench stream``: p99
200 ms → 18 ms at 5,000 subscribers). Objects that die later are still freed by
reference counting; only garbage *cycles* among frozen objects (those alive at a tick:
~100 objects a minute under that load) wait — for the daily full collection at
``full_hour`` (local time, when a 家政 platform is quietest), which unfreezes, collects
everything once, and freezes again. Collector pauses over ``slow_pause_s`` are logged
either way.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

_log = structlog.get_logger("api.core.heap")


class HeapKeeper:
    """Freezes survivors periodically and collects everything once a day (see module doc)."""

    def __init__(
        self,
        *,
        freeze_every_s: float = 0.25,
        full_hour: int = 4,
        tz: str = "Asia/Shanghai",
        slow_pause_s: float = 0.1,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not freeze_every_s > 0:
            raise ValueError(f"freeze_every_s must be > 0, got {freeze_every_s}")
        if not 0 <= full_hour <= 23:
            raise ValueError(f"full_hour must be 0..23, got {full_hour}")
        self.freeze_every_s = freeze_every_s
        self.full_hour = full_hour
        self._tz = ZoneInfo(tz)
        self._clock = clock or (lambda: datetime.now(self._tz))
        self._slow_pause_s = slow_pause_s
        self._last_full_day: Any = None
        self._started = 0.0
        self.freezes = 0
        self.full_collections = 0

    def tick(self) -> None:
        """One round: the daily full collection when due, else collect young and freeze."""
        now = self._clock()
        if now.hour == self.full_hour and now.date() != self._last_full_day:
            self._last_full_day = now.date()
            gc.unfreeze()
            started = time.perf_counter()
            freed = gc.collect()
            _log.info(
                "gc_full_collection",
                freed=freed,
                pause_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            self.full_collections += 1
        else:
            gc.collect(1)  # young cycles go now, not into the frozen heap
        gc.freeze()
        self.freezes += 1

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        if pause >= self._slow_pause_s:
            _log.warning(
                "gc_slow_pause",
                generation=info.get("generation"),
                pause_ms=round(pause * 1000, 1),
                collected=info.get("collected"),
            )

    async def run(self) -> None:
        """Tick every ``freeze_every_s`` until cancelled; logs slow collector pauses."""
        gc.callbacks.append(self._on_gc)
        try:
            while True:
                await asyncio.sleep(self.freeze_every_s)
                self.tick()
        finally:
            gc.callbacks.remove(self._on_gc)
