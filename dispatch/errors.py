"""Typed errors of the dispatch library; each subclasses a built-in so callers may catch either."""

from __future__ import annotations


class DispatchError(Exception):
    """Base class of every error raised by dispatch/."""


class InvalidInput(DispatchError, ValueError):
    """An input array or parameter is malformed; the message names the field (and index)."""


class UnknownSkill(InvalidInput, KeyError):
    """A skill name is not in the SkillCatalog."""

    def __str__(self) -> str:
        # KeyError quotes its argument; keep the plain message readable.
        return str(self.args[0]) if self.args else ""


class DuplicateId(InvalidInput):
    """Two workers (or two orders) share one id."""


class ShapeMismatch(InvalidInput):
    """Arrays that must pair up element by element have different lengths."""


class UnknownWorker(DispatchError, KeyError):
    """A worker id is not in the Fleet or WorkerIndex."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UnknownOrder(DispatchError, KeyError):
    """An order id is not in the OrderBatch or Assignment."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class SolverError(DispatchError, RuntimeError):
    """The flow solver failed in a way that is not the caller's fault."""
