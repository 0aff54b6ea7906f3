"""Build ``china_mainland.geojson``, the GCJ-02 applicability outline, from Natural Earth extracts.

Run from the repository root: ``.venv/bin/python -m geo.data.build_outline``. The output is
committed; nothing at run time calls this module. See README.md next to it for the method.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon, box, mapping
from shapely.geometry.base import BaseGeometry

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "sources"
OUTPUT = HERE / "china_mainland.geojson"

#: Outward margin around the 1:50m outline, degrees (~2 km): covers coastal reclamation and the
#: generalisation of the 50m coastline while staying clear of Kinmen and Matsu.
COAST_MARGIN_DEG = 0.02
#: The Pearl River Delta window where the exact 1:10m borders of Hong Kong and Macao rule.
PRD_WINDOW = (113.47, 21.95, 114.62, 22.85)
#: Margin around Hong Kong / Macao land counted as their waters, degrees (~500 m / ~150 m; the
#: channel between Hengqin and Cotai is only ~200 m wide).
HONG_KONG_WATER_DEG = 0.005
MACAO_WATER_DEG = 0.0015
#: Simplification tolerance of the final outline, degrees (~20 m).
SIMPLIFY_DEG = 0.0002
#: Decimal places kept in the output (~1 m).
DECIMALS = 5


def read_rings(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Parse a ``> name`` / ``lng,lat lng,lat ...`` source extract into named vertex lists."""
    rings: dict[str, list[tuple[float, float]]] = {}
    name = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(">"):
            name = line[1:].strip()
            rings[name] = []
            continue
        for token in line.split():
            lng, lat = token.split(",")
            rings[name].append((float(lng), float(lat)))
    return rings


def _union(geoms: Iterable[BaseGeometry]) -> BaseGeometry:
    return shapely.union_all(list(geoms))


def build() -> BaseGeometry:
    """Return the mainland-China outline (x=lng, y=lat, degrees) as a shapely geometry."""
    chn50 = MultiPolygon([Polygon(r) for r in read_rings(SOURCES / "ne_50m_china.txt").values()])
    coast = read_rings(SOURCES / "ne_10m_prd_coast.txt")["prd_coast"]
    # The 10m extract is an open stretch of the mainland ring; close it with a loop far outside
    # the PRD window (through the interior, north of the coast) so it bounds the land side.
    loop = [(113.30, 21.95), (113.0, 21.95), (113.0, 24.5), (115.5, 24.5), (115.5, 22.9)]
    land10 = shapely.make_valid(Polygon([*coast, *loop]))
    if not LineString(coast).crosses(box(*PRD_WINDOW)):
        raise RuntimeError("the 10m coast extract does not cross the PRD window")

    sar = read_rings(SOURCES / "ne_10m_hong_kong_macao.txt")
    hong_kong = _union(Polygon(r) for k, r in sar.items() if k.startswith("hkg_"))
    macao = _union(Polygon(r) for k, r in sar.items() if k.startswith("mac_"))
    # Hong Kong's hull covers its harbours and channels; Macao's hull would cut into Hengqin,
    # so only the peninsula's hull plus a narrow water margin is used there.
    foreign = _union(
        [
            hong_kong.convex_hull,
            hong_kong.buffer(HONG_KONG_WATER_DEG),
            Polygon(sar["mac_peninsula"]).convex_hull,
            macao.buffer(MACAO_WATER_DEG),
        ]
    ).difference(land10)

    window = box(*PRD_WINDOW)
    outline = _union(
        [
            chn50.buffer(COAST_MARGIN_DEG, quad_segs=2).difference(window),
            window.difference(foreign),
        ]
    )
    outline = shapely.make_valid(outline.simplify(SIMPLIFY_DEG, preserve_topology=True))
    return shapely.set_precision(outline, 10.0**-DECIMALS)


def main() -> None:
    """Write ``china_mainland.geojson`` next to this module."""
    outline = build()
    feature = {
        "type": "Feature",
        "properties": {
            "name": "mainland China (GCJ-02 applicability outline)",
            "source": "Natural Earth 1:50m and 1:10m Admin-0 countries (public domain)",
            "method": "see geo/data/README.md",
        },
        "geometry": mapping(outline),
    }
    OUTPUT.write_text(json.dumps(feature, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {OUTPUT} ({shapely.get_num_coordinates(outline)} vertices)")


if __name__ == "__main__":
    main()
