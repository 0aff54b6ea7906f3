"""Typed errors of the geo library; each subclasses a built-in so callers may catch either."""

from __future__ import annotations


class GeoError(Exception):
    """Base class of every error raised by geo/."""


class InvalidCoordinate(GeoError, ValueError):
    """A latitude/longitude is NaN, infinite or out of range."""


class ShapeMismatch(GeoError, ValueError):
    """Arrays that must pair up element by element have different shapes."""


class InvalidPolygon(GeoError, ValueError):
    """A service-area polygon cannot be repaired into a valid area."""


class InvalidParameter(GeoError, ValueError):
    """A model or function parameter is outside its allowed range."""


class InvalidCell(InvalidParameter):
    """An integer is not a valid H3 cell index."""
