"""HeapKeeper: survivors are frozen each round; the daily full collection frees frozen cycles."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from api.core.heap import HeapKeeper

TZ = ZoneInfo("Asia/Shanghai")


class Node:
    """A cycle-capable object that can be weakly referenced."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture(autouse=True)
def _unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def _cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_a_round_freezes_the_survivors_and_frozen_cycles_wait_for_the_daily_collection() -> None:
    now = [datetime(2026, 11, 26, 14, 0, tzinfo=TZ)]
    keeper = HeapKeeper(clock=lambda: now[0])
    holder = [_cycle()]
    node = holder[0]()
    assert node is not None
    keeper.tick()
    assert gc.get_freeze_count() > 0
    assert (keeper.freezes, keeper.full_collections) == (1, 0)
    del node  # the cycle is garbage now, but frozen: ordinary collections skip it
    gc.collect()
    assert holder[0]() is not None
    now[0] = datetime(2026, 11, 27, 4, 5, tzinfo=TZ)
    keeper.tick()
    assert keeper.full_collections == 1
    assert holder[0]() is None
    keeper.tick()  # once a day, not once a round of that hour
    assert keeper.full_collections == 1


def test_young_garbage_cycles_are_collected_before_freezing() -> None:
    keeper = HeapKeeper(clock=lambda: datetime(2026, 11, 26, 14, 0, tzinfo=TZ))
    ref = _cycle()  # already garbage
    keeper.tick()
    assert ref() is None


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="freeze_every_s"):
        HeapKeeper(freeze_every_s=0)
    with pytest.raises(ValueError, match="full_hour"):
        HeapKeeper(full_hour=24)
