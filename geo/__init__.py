"""Pure geolocation library: coordinates, projections, H3 cells, areas, travel time, ETA.

Inside, points are WGS-84 latitude/longitude in degrees (float64, numpy arrays
for many points), cells are uint64 H3 indexes, durations are seconds and
times are int64 epoch seconds. GCJ-02 and BD-09 exist only at the edges.
"""
