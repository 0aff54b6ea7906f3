"""Service areas: validated WGS-84 polygons with vectorised, H3-accelerated point lookup.

An ``AreaSet`` is built from GeoJSON (WGS-84, GCJ-02 or BD-09 vertices; GCJ-02/BD-09 are
converted vertex by vertex), repaired where the repair is unambiguous (unclosed rings are
closed, windings oriented as RFC 7946 asks) and otherwise rejected with the reason and the
place. Lookups answer from an H3 cover: points in cells that lie wholly inside an area are
answered by a sorted-array lookup, only points in cells crossed by a border take the exact
polygon test, so ``locate`` gives the same answer as testing every polygon.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final, TypeAlias, cast, overload

import h3
import h3.api.basic_int as h3i
import numpy as np
import shapely
from numpy.typing import ArrayLike, NDArray
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.polygon import orient
from shapely.validation import explain_validity

from geo import cells as geo_cells
from geo._arrays import FloatArray, as_latlng
from geo.coords import CoordType, from_wgs84, parse_coord_type, to_wgs84
from geo.errors import InvalidCoordinate, InvalidParameter, InvalidPolygon

__all__ = ["AreaCover", "AreaSet", "ServiceArea"]

Geometry: TypeAlias = Polygon | MultiPolygon
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: Default H3 resolution of the lookup cover (~0.46 km edges, ~0.7 km² cells).
DEFAULT_COVER_RES: Final = 8
# A cell counts as "inside" only if it clears the border by this fraction of its edge length.
# H3 cell edges are great-circle arcs while shapely draws straight lines in lng/lat; the arcs
# bow out from the chords by ~1e-5 of the edge at city resolutions, so 0.1 is a wide margin.
_CELL_MARGIN_EDGES: Final = 0.1
_METRES_PER_DEGREE: Final = 111_320.0


@dataclass(frozen=True)
class ServiceArea:
    """One service area: id, display name, WGS-84 (Multi)Polygon (x=lng, y=lat), properties."""

    area_id: str
    name: str
    geometry: Geometry
    properties: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if not isinstance(self.area_id, str) or not self.area_id:
            raise InvalidParameter(f"area_id must be a non-empty string, got {self.area_id!r}")
        if not isinstance(self.name, str):
            raise InvalidParameter(f"name must be a string, got {self.name!r}")
        if not isinstance(self.geometry, (Polygon, MultiPolygon)):
            raise InvalidPolygon(
                f"geometry of area {self.area_id!r} must be a shapely Polygon or MultiPolygon, "
                f"got {type(self.geometry).__name__}"
            )
        if self.geometry.is_empty:
            raise InvalidPolygon(f"geometry of area {self.area_id!r} is empty")
        minx, miny, maxx, maxy = self.geometry.bounds
        if not (-180.0 <= minx <= maxx <= 180.0 and -90.0 <= miny <= maxy <= 90.0):
            raise InvalidCoordinate(
                f"geometry of area {self.area_id!r} must be WGS-84 lng/lat degrees, "
                f"got bounds {self.geometry.bounds}"
            )
        if not self.geometry.is_valid:
            raise InvalidPolygon(
                f"geometry of area {self.area_id!r} is invalid: {explain_validity(self.geometry)}"
            )
        if not isinstance(self.properties, Mapping):
            raise InvalidParameter(
                f"properties of area {self.area_id!r} must be a mapping, "
                f"got {type(self.properties).__name__}"
            )
        object.__setattr__(self, "properties", MappingProxyType(dict(self.properties)))
        shapely.prepare(self.geometry)


@dataclass(frozen=True)
class AreaCover:
    """H3 cover of an ``AreaSet`` at one resolution.

    Per area: ``interior_cells[i]`` (sorted) lie wholly inside area ``i``; ``boundary_cells[i]``
    (sorted) are crossed by its border. Merged over areas for ``locate``: ``cells`` (sorted,
    unique), ``first_interior`` (lowest area index with the cell inside it, or the number of
    areas if none) and, CSR-style, the border areas with a lower index than that:
    ``boundary_areas[boundary_offsets[k]:boundary_offsets[k + 1]]`` for ``cells[k]``.
    """

    res: int
    interior_cells: tuple[NDArray[np.uint64], ...]
    boundary_cells: tuple[NDArray[np.uint64], ...]
    cells: NDArray[np.uint64]
    first_interior: IntArray
    boundary_offsets: IntArray
    boundary_areas: IntArray

    @property
    def n_interior(self) -> int:
        """Number of (cell, area) pairs answered without a polygon test."""
        return sum(int(c.size) for c in self.interior_cells)

    @property
    def n_boundary(self) -> int:
        """Number of (cell, area) pairs whose points take the exact polygon test."""
        return sum(int(c.size) for c in self.boundary_cells)


def _edge_margin_deg(geometry: Geometry, res: int) -> float:
    """Margin (degrees) a cell must keep from the border to count as wholly inside."""
    edge_m = float(h3.average_hexagon_edge_length(res, unit="m"))
    _, miny, _, maxy = geometry.bounds
    # Degrees of longitude shrink with latitude; size the margin for the area's worst latitude.
    cos_lat = math.cos(math.radians(min(max(abs(miny), abs(maxy)), 85.0)))
    return _CELL_MARGIN_EDGES * edge_m / (_METRES_PER_DEGREE * cos_lat)


def _cell_polygons(cells: NDArray[np.uint64]) -> NDArray[np.object_]:
    """Shapely polygons of valid H3 cells (straight edges between the cells' vertices).

    Calls h3 directly: ``geo.cells.cell_to_boundary`` validates each cell on every call, which
    dominates when covering thousands of cells that ``polygon_to_cells`` just produced.
    """
    boundary = h3i.cell_to_boundary
    polygons = np.empty(cells.size, dtype=object)
    for k, cell in enumerate(cells.tolist()):  # cover building, not a per-point path
        polygons[k] = Polygon([(lng, lat) for lat, lng in boundary(cell)])
    return polygons


def _classify(geometry: Geometry, res: int) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """(interior cells, boundary cells) of one area at ``res``, both sorted."""
    margin = _edge_margin_deg(geometry, res)
    # Fill a slightly grown area with "overlap" so every cell touching the area is a candidate
    # even where a cell's arc edge bows over the border between two of its vertices.
    grown = geometry.buffer(margin, quad_segs=2)  # a coarse arc: fewer vertices for h3 to fill
    candidates = geo_cells.polygon_to_cells(grown, res, contain="overlap")
    if candidates.size == 0:
        return candidates, candidates
    polygons = _cell_polygons(candidates)
    border_distance = shapely.distance(geometry.boundary, polygons)
    clear = border_distance > margin
    centre_inside = shapely.contains_xy(
        geometry,
        shapely.get_x(shapely.centroid(polygons)),
        shapely.get_y(shapely.centroid(polygons)),
    )
    interior = clear & centre_inside
    outside = clear & ~centre_inside
    return candidates[interior], candidates[~interior & ~outside]


def _merge(
    interior: Sequence[NDArray[np.uint64]], boundary: Sequence[NDArray[np.uint64]]
) -> tuple[NDArray[np.uint64], IntArray, IntArray, IntArray]:
    """Merge per-area covers into (cells, first_interior, boundary_offsets, boundary_areas)."""
    n_areas = len(interior)
    parts_cells = [*interior, *boundary]
    parts_area = [np.full(c.size, i, dtype=np.int64) for i, c in enumerate(interior)] + [
        np.full(c.size, i, dtype=np.int64) for i, c in enumerate(boundary)
    ]
    parts_interior = [np.ones(c.size, dtype=np.bool_) for c in interior] + [
        np.zeros(c.size, dtype=np.bool_) for c in boundary
    ]
    all_cells = np.concatenate([np.empty(0, dtype=np.uint64), *parts_cells])
    all_area = np.concatenate([np.empty(0, dtype=np.int64), *parts_area])
    all_interior = np.concatenate([np.empty(0, dtype=np.bool_), *parts_interior])
    order = np.lexsort((all_area, all_cells))
    all_cells, all_area, all_interior = all_cells[order], all_area[order], all_interior[order]
    cells, starts = np.unique(all_cells, return_index=True)
    row_cell = np.repeat(np.arange(cells.size), np.diff(np.append(starts, all_cells.size)))
    first_interior = np.full(cells.size, n_areas, dtype=np.int64)
    np.minimum.at(first_interior, row_cell[all_interior], all_area[all_interior])
    # Only border areas listed before the first interior one can change a "first area" answer.
    keep = ~all_interior & (all_area < first_interior[row_cell])
    counts = np.bincount(row_cell[keep], minlength=cells.size)
    offsets = np.zeros(cells.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return cells, first_interior, offsets, all_area[keep]


# ---------------------------------------------------------------------------------------------
# GeoJSON reading
# ---------------------------------------------------------------------------------------------


def _ring(coordinates: Any, where: str, coord_type: CoordType) -> list[tuple[float, float]]:
    """Validate one linear ring, convert it to WGS-84 and close it; ``(lng, lat)`` vertices."""
    if not isinstance(coordinates, (list, tuple)) or len(coordinates) == 0:
        raise InvalidPolygon(f"{where} is empty")
    try:
        vertices = np.asarray([list(v)[:2] for v in coordinates], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinate(
            f"{where} must be a list of [lng, lat] number pairs: {exc}"
        ) from exc
    if vertices.ndim != 2 or vertices.shape[1] != 2:
        raise InvalidCoordinate(f"{where} must be a list of [lng, lat] number pairs")
    lng, lat = vertices[:, 0], vertices[:, 1]
    for name, values, bound in (("lng", lng, 180.0), ("lat", lat, 90.0)):
        bad = np.flatnonzero(~(np.abs(values) <= bound))
        if bad.size:
            k = int(bad[0])
            raise InvalidCoordinate(
                f"{where}[{k}] has {name} {values[k]}, must be finite and within ±{bound:g}"
            )
    if coord_type is not CoordType.WGS84:
        lat, lng = to_wgs84(lat, lng, coord_type)
    if lng[0] != lng[-1] or lat[0] != lat[-1]:
        lng, lat = np.append(lng, lng[0]), np.append(lat, lat[0])
    distinct = np.unique(np.column_stack([lng[:-1], lat[:-1]]), axis=0).shape[0]
    if distinct < 3:
        raise InvalidPolygon(f"{where} has {distinct} distinct vertices, a ring needs at least 3")
    return list(zip(lng.tolist(), lat.tolist(), strict=True))


def _polygon(coordinates: Any, where: str, coord_type: CoordType) -> Polygon:
    if not isinstance(coordinates, (list, tuple)) or len(coordinates) == 0:
        raise InvalidPolygon(f"{where} is empty")
    rings = [_ring(r, f"{where}[{i}]", coord_type) for i, r in enumerate(coordinates)]
    return Polygon(rings[0], rings[1:])


def _geometry(obj: Any, where: str, coord_type: CoordType) -> Geometry:
    """A valid, RFC 7946-oriented shapely geometry from a GeoJSON Polygon/MultiPolygon."""
    if not isinstance(obj, Mapping):
        raise InvalidPolygon(f"{where} must be a GeoJSON geometry object, got {type(obj).__name__}")
    kind = obj.get("type")
    coordinates = obj.get("coordinates")
    geometry: Geometry
    if kind == "Polygon":
        geometry = _polygon(coordinates, f"{where}.coordinates", coord_type)
    elif kind == "MultiPolygon":
        if not isinstance(coordinates, (list, tuple)) or len(coordinates) == 0:
            raise InvalidPolygon(f"{where}.coordinates is empty")
        geometry = MultiPolygon(
            [
                _polygon(p, f"{where}.coordinates[{i}]", coord_type)
                for i, p in enumerate(coordinates)
            ]
        )
    else:
        raise InvalidPolygon(f"{where} must be a Polygon or MultiPolygon, got type {kind!r}")
    if not geometry.is_valid:
        # e.g. "Self-intersection[114.05 22.54]": what is wrong and where (WGS-84 lng lat).
        raise InvalidPolygon(f"{where} is invalid: {explain_validity(geometry)}")
    if isinstance(geometry, Polygon):
        return cast(Polygon, orient(geometry, sign=1.0))
    return MultiPolygon([orient(p, sign=1.0) for p in geometry.geoms])


def _features(obj: Mapping[str, Any]) -> list[tuple[str, Mapping[str, Any], Any]]:
    """(location, feature-like mapping, geometry) for each area in a GeoJSON object."""
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise InvalidPolygon("features must be a list of GeoJSON Features")
        out = []
        for i, feature in enumerate(features):
            if not isinstance(feature, Mapping) or feature.get("type") != "Feature":
                raise InvalidPolygon(f"features[{i}] must be a GeoJSON Feature")
            out.append((f"features[{i}]", feature, feature.get("geometry")))
        return out
    if kind == "Feature":
        return [("feature", obj, obj.get("geometry"))]
    if kind in ("Polygon", "MultiPolygon"):
        return [("geometry", {}, obj)]
    raise InvalidPolygon(
        f"GeoJSON type must be FeatureCollection, Feature, Polygon or MultiPolygon, got {kind!r}"
    )


# ---------------------------------------------------------------------------------------------
# AreaSet
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaSet:
    """An ordered set of service areas with vectorised point queries (WGS-84 degrees)."""

    areas: tuple[ServiceArea, ...]
    cover_res: int = DEFAULT_COVER_RES
    _positions: Mapping[str, int] = field(init=False, repr=False, compare=False)
    # Covers by resolution, built on first use; a cache private to this immutable set.
    _covers: dict[int, AreaCover] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        areas = tuple(self.areas)
        for i, area in enumerate(areas):
            if not isinstance(area, ServiceArea):
                raise InvalidParameter(
                    f"areas[{i}] must be a ServiceArea, got {type(area).__name__}"
                )
        positions: dict[str, int] = {}
        for i, area in enumerate(areas):
            if area.area_id in positions:
                raise InvalidParameter(
                    f"duplicate area id {area.area_id!r} at areas[{positions[area.area_id]}] "
                    f"and areas[{i}]"
                )
            positions[area.area_id] = i
        if isinstance(self.cover_res, bool) or not isinstance(self.cover_res, int):
            raise InvalidParameter(f"cover_res must be an int, got {self.cover_res!r}")
        if not 0 <= self.cover_res <= geo_cells.MAX_RES:
            raise InvalidParameter(f"cover_res must be within 0..15, got {self.cover_res}")
        object.__setattr__(self, "areas", areas)
        object.__setattr__(self, "_positions", MappingProxyType(positions))

    @classmethod
    def from_geojson(
        cls,
        obj: Mapping[str, Any] | str,
        *,
        coord_type: CoordType | str = CoordType.WGS84,
        id_property: str = "id",
        name_property: str = "name",
        cover_res: int = DEFAULT_COVER_RES,
    ) -> AreaSet:
        """Build from a GeoJSON FeatureCollection, Feature, Polygon or MultiPolygon.

        ``obj`` is a dict or JSON text; vertices are ``[lng, lat]`` degrees in ``coord_type``
        (converted to WGS-84 vertex by vertex). The id comes from ``properties[id_property]``,
        else the Feature's ``id``, else its position; the name from ``properties[name_property]``,
        else the id.
        """
        kind = parse_coord_type(coord_type)
        if isinstance(obj, str):
            try:
                obj = json.loads(obj)
            except json.JSONDecodeError as exc:
                raise InvalidPolygon(f"GeoJSON text is not valid JSON: {exc}") from exc
        if not isinstance(obj, Mapping):
            raise InvalidPolygon(f"GeoJSON must be an object, got {type(obj).__name__}")
        areas = []
        for position, (where, feature, geometry_obj) in enumerate(_features(obj)):
            properties = feature.get("properties") or {}
            if not isinstance(properties, Mapping):
                raise InvalidParameter(f"{where}.properties must be an object")
            if geometry_obj is None:
                raise InvalidPolygon(f"{where} has no geometry")
            geometry = _geometry(
                geometry_obj, f"{where}.geometry" if where != "geometry" else where, kind
            )
            raw_id = properties.get(id_property, feature.get("id", position))
            if raw_id is None or (isinstance(raw_id, str) and not raw_id):
                raise InvalidParameter(f"{where}.properties.{id_property} must not be empty")
            area_id = str(raw_id)
            name = properties.get(name_property, area_id)
            areas.append(
                ServiceArea(
                    area_id=area_id,
                    name=str(name),
                    geometry=geometry,
                    properties=dict(properties),
                )
            )
        return cls(tuple(areas), cover_res=cover_res)

    # -- basic access -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.areas)

    @property
    def area_ids(self) -> tuple[str, ...]:
        """Area ids in order (``locate`` returns positions in this order)."""
        return tuple(a.area_id for a in self.areas)

    def index_of(self, area_id: str) -> int:
        """Position of ``area_id``; ``InvalidParameter`` naming it when unknown."""
        try:
            return self._positions[area_id]
        except KeyError:
            raise InvalidParameter(f"unknown area id {area_id!r}") from None

    def __getitem__(self, area_id: str) -> ServiceArea:
        return self.areas[self.index_of(area_id)]

    # -- cover --------------------------------------------------------------------------------

    def cover(self, res: int | None = None) -> AreaCover:
        """The H3 cover at ``res`` (default ``cover_res``), built once per resolution."""
        res = self.cover_res if res is None else res
        if isinstance(res, bool) or not isinstance(res, int) or not 0 <= res <= geo_cells.MAX_RES:
            raise InvalidParameter(f"res must be an int within 0..15, got {res!r}")
        cached = self._covers.get(res)
        if cached is not None:
            return cached
        per_area = [_classify(area.geometry, res) for area in self.areas]
        interior = tuple(p[0] for p in per_area)
        boundary = tuple(p[1] for p in per_area)
        cells, first_interior, offsets, boundary_areas = _merge(interior, boundary)
        built = AreaCover(
            res=res,
            interior_cells=interior,
            boundary_cells=boundary,
            cells=cells,
            first_interior=first_interior,
            boundary_offsets=offsets,
            boundary_areas=boundary_areas,
        )
        self._covers[res] = built
        return built

    # -- queries ------------------------------------------------------------------------------

    def _cells_of(self, lat: FloatArray, lng: FloatArray, res: int) -> NDArray[np.uint64]:
        """H3 cells of points; 0 (no cell) for points outside every area's bounding box."""
        out = np.zeros(lat.size, dtype=np.uint64)
        if lat.size == 0 or not self.areas:
            return out
        minx, miny, maxx, maxy = shapely.total_bounds([a.geometry for a in self.areas])
        near = np.flatnonzero((lng >= minx) & (lng <= maxx) & (lat >= miny) & (lat <= maxy))
        if near.size == lat.size:
            return np.asarray(geo_cells.latlng_to_cells(lat, lng, res), dtype=np.uint64)
        if near.size:
            out[near] = geo_cells.latlng_to_cells(lat[near], lng[near], res)
        return out

    def _contains_flat(
        self,
        index: int,
        cover: AreaCover,
        point_cells: NDArray[np.uint64],
        lat: FloatArray,
        lng: FloatArray,
    ) -> BoolArray:
        result = _member(cover.interior_cells[index], point_cells)
        border = np.flatnonzero(_member(cover.boundary_cells[index], point_cells))
        if border.size:
            result[border] = shapely.contains_xy(
                self.areas[index].geometry, lng[border], lat[border]
            )
        return result

    @overload
    def contains(self, area_id: str, lat: float, lng: float) -> bool: ...
    @overload
    def contains(self, area_id: str, lat: ArrayLike, lng: ArrayLike) -> BoolArray: ...
    def contains(self, area_id: str, lat: ArrayLike, lng: ArrayLike) -> Any:
        """Whether each WGS-84 point (degrees) lies inside area ``area_id`` (border excluded)."""
        index = self.index_of(area_id)
        lat_a, lng_a, scalar = as_latlng(lat, lng)
        flat_lat, flat_lng = lat_a.reshape(-1), lng_a.reshape(-1)
        cover = self.cover()
        point_cells = self._cells_of(flat_lat, flat_lng, cover.res)
        result = self._contains_flat(index, cover, point_cells, flat_lat, flat_lng)
        return bool(result[0]) if scalar else result.reshape(lat_a.shape)

    @overload
    def locate(self, lat: float, lng: float) -> int: ...
    @overload
    def locate(self, lat: ArrayLike, lng: ArrayLike) -> IntArray: ...
    def locate(self, lat: ArrayLike, lng: ArrayLike) -> Any:
        """Index of the first area containing each WGS-84 point (degrees), -1 where none."""
        lat_a, lng_a, scalar = as_latlng(lat, lng)
        flat_lat, flat_lng = lat_a.reshape(-1), lng_a.reshape(-1)
        n_areas = len(self.areas)
        cover = self.cover()
        answer = np.full(flat_lat.size, n_areas, dtype=np.int64)
        if cover.cells.size and flat_lat.size:
            point_cells = self._cells_of(flat_lat, flat_lng, cover.res)
            pos = np.minimum(np.searchsorted(cover.cells, point_cells), cover.cells.size - 1)
            known = np.flatnonzero(cover.cells[pos] == point_cells)
            known_pos = pos[known]
            answer[known] = cover.first_interior[known_pos]
            # Exact tests only for (point, area) pairs where the point's cell is on that area's
            # border and the area comes before the first one the cell lies wholly inside.
            starts = cover.boundary_offsets[known_pos]
            counts = cover.boundary_offsets[known_pos + 1] - starts
            pair_point = np.repeat(known, counts)
            pair_area = cover.boundary_areas[
                np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
            ]
            if pair_point.size:
                hit = np.zeros(pair_point.size, dtype=np.bool_)
                for area_index in np.unique(pair_area).tolist():  # loops over areas, not points
                    rows = np.flatnonzero(pair_area == area_index)
                    points = pair_point[rows]
                    hit[rows] = shapely.contains_xy(
                        self.areas[area_index].geometry, flat_lng[points], flat_lat[points]
                    )
                np.minimum.at(answer, pair_point[hit], pair_area[hit])
        answer[answer == n_areas] = -1
        return int(answer[0]) if scalar else answer.reshape(lat_a.shape)

    def areas_containing(self, lat: ArrayLike, lng: ArrayLike) -> list[list[str]]:
        """Ids of every area containing each WGS-84 point (degrees), in area order."""
        lat_a, lng_a, _ = as_latlng(lat, lng)
        flat_lat, flat_lng = lat_a.reshape(-1), lng_a.reshape(-1)
        cover = self.cover()
        point_cells = self._cells_of(flat_lat, flat_lng, cover.res)
        membership = np.zeros((flat_lat.size, len(self.areas)), dtype=np.bool_)
        for i in range(len(self.areas)):  # loops over areas, not points
            membership[:, i] = self._contains_flat(i, cover, point_cells, flat_lat, flat_lng)
        ids = np.array(self.area_ids, dtype=object)
        point_index, area_index = np.nonzero(membership)
        split = np.searchsorted(point_index, np.arange(1, flat_lat.size))
        return [ids[chunk].tolist() for chunk in np.split(area_index, split)]

    # -- output -------------------------------------------------------------------------------

    def to_geojson(
        self,
        coord_type: CoordType | str = CoordType.WGS84,
        *,
        id_property: str = "id",
        name_property: str = "name",
    ) -> dict[str, Any]:
        """A GeoJSON FeatureCollection of the areas, vertices in ``coord_type``."""
        kind = parse_coord_type(coord_type)

        def ring_out(ring: Any) -> list[list[float]]:
            xy = np.asarray(ring.coords, dtype=np.float64)
            lat, lng = from_wgs84(xy[:, 1], xy[:, 0], kind)
            return np.column_stack([lng, lat]).tolist()  # type: ignore[no-any-return]

        def polygon_out(polygon: Polygon) -> list[list[list[float]]]:
            return [ring_out(polygon.exterior), *(ring_out(r) for r in polygon.interiors)]

        features = []
        for area in self.areas:
            geometry: dict[str, Any]
            if isinstance(area.geometry, Polygon):
                geometry = {"type": "Polygon", "coordinates": polygon_out(area.geometry)}
            else:
                geometry = {
                    "type": "MultiPolygon",
                    "coordinates": [polygon_out(p) for p in area.geometry.geoms],
                }
            properties = {**area.properties, id_property: area.area_id, name_property: area.name}
            features.append(
                {
                    "type": "Feature",
                    "id": area.area_id,
                    "properties": properties,
                    "geometry": geometry,
                }
            )
        return {"type": "FeatureCollection", "features": features}


def _member(sorted_cells: NDArray[np.uint64], cells: NDArray[np.uint64]) -> BoolArray:
    """Whether each of ``cells`` is in ``sorted_cells`` (sorted, unique)."""
    if sorted_cells.size == 0:
        return np.zeros(cells.shape, dtype=np.bool_)
    pos = np.minimum(np.searchsorted(sorted_cells, cells), sorted_cells.size - 1)
    return np.asarray(sorted_cells[pos] == cells)
