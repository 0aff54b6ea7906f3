"""The GCJ-02 offset kernel: the published formula with 2 polynomial sin/cos and no libm calls.

``geo.coords`` is the public face; this module only computes the shift. numpy's float64
``np.sin`` is a scalar libm call per element (20-40 ns here), and the formula takes 12 sines
per point (7 libm calls even with multiple-angle identities), while an in-place arithmetic pass
over a cache-sized block costs ~0.2 ns a point. So the kernel evaluates sin/cos of two small
base angles with fdlibm's polynomials (``__kernel_sin``/``__kernel_cos``, < 1 ulp on
[-pi/4, pi/4]) and derives every other angle by multiple-angle identities, all in
preallocated scratch rows (a fresh 256 KiB temporary costs more in page faults than the
arithmetic it holds): ~200 passes, ~40 ns a point in all.

The derived sines differ from libm's by < 1e-13 (the identities multiply the base angle by at
most 1,440, and its rounding error by about as much): the shift stays within 1e-13 degree of
one libm call per term (2e-16 degree in China), far below the 1e-9 degree (0.1 mm) at which
results are compared with prcoords.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np

from geo._arrays import FloatArray

__all__ = ["SCRATCH_ROWS", "offset_into"]

# Krasovsky 1940 ellipsoid, as the GCJ-02 algorithm uses it.
_GCJ_A: Final = 6378245.0
_GCJ_EE: Final = 0.00669342162296594323
# Metres to degrees along a meridian (times magic^1.5) and a parallel (times sqrt(magic)/cos).
_LAT_DEG_PER_M: Final = 180.0 / (_GCJ_A * (1.0 - _GCJ_EE) * math.pi)
_LNG_DEG_PER_M: Final = 180.0 / (_GCJ_A * math.pi)
_SIN_35: Final = math.sin(math.radians(35.0))
_COS_35: Final = math.cos(math.radians(35.0))

# fdlibm (Sun, 1993) k_sin.c / k_cos.c minimax coefficients for |t| <= pi/4:
# sin t = t + t^3 (S1 + t^2 S2 + ... + t^10 S6), cos t = 1 - t^2/2 + t^4 (C1 + ... + t^10 C6).
_S: Final = (
    -1.66666666666666324348e-01,
    8.33333333332248946124e-03,
    -1.98412698298579493134e-04,
    2.75573137070700676789e-06,
    -2.50507602534068634195e-08,
    1.58969099521155010221e-10,
)
_C: Final = (
    4.16666666666666019037e-02,
    -1.38888888888741095749e-03,
    2.48015872894767294178e-05,
    -2.75573143513906633035e-07,
    2.08757232129817482790e-09,
    -1.13596475577881948265e-11,
)

#: Scratch rows ``offset_into`` needs, each at least as long as the input.
SCRATCH_ROWS: Final = 10


def offset_into(
    lat: FloatArray, lng: FloatArray, dlat: FloatArray, dlng: FloatArray, scratch: FloatArray
) -> None:
    """Write the GCJ-02 shift in degrees at WGS-84 points into ``dlat``/``dlng``; no region check.

    All arguments are flat float64 arrays of one length ``n`` except ``scratch``, of shape
    ``(SCRATCH_ROWS, >= n)``. The published polynomials (x = lng - 105, y = lat - 35, metres)::

        dlat_m = -100 + 2x + 3y + 0.2y² + 0.1xy + 0.2√|x| + (20 sin 6πx + 20 sin 2πx)·2/3
                 + (20 sin πy + 40 sin πy/3)·2/3 + (160 sin πy/12 + 320 sin πy/30)·2/3
        dlng_m = 300 + x + 2y + 0.1x² + 0.1xy + 0.1√|x| + (20 sin 6πx + 20 sin 2πx)·2/3
                 + (20 sin πx + 40 sin πx/3)·2/3 + (150 sin πx/12 + 300 sin πx/30)·2/3

    then scaled to degrees by the Krasovsky meridian and parallel radii at ``lat``.
    """
    n = lat.shape[0]
    x, y, root, common, s, c, t, u, sin_lat, cos_lat = (scratch[i, :n] for i in range(10))

    # Longitude terms. Every x-angle is a multiple of a = pi x / 60, and all of them have period
    # 120 in x, so x is first reduced exactly (x - 120k is representable) to [-60, 60]:
    # a/4 is then within [-pi/4, pi/4], where the polynomials hold.
    np.subtract(lng, 105.0, out=x)
    np.multiply(x, 1.0 / 120.0, out=t)
    np.rint(t, out=t)
    t *= -120.0
    t += x
    t *= math.pi / 240.0
    _sincos(t, s, c, u)  # a/4
    _double(s, c, t)  # a/2
    _double(s, c, t)  # a = pi x/60
    np.multiply(s, c, out=dlng)
    dlng *= 2.0 * 200.0  # 200 sin(pi x/30)
    _quintuple(s, c, t, u)  # pi x/12
    np.multiply(s, 100.0, out=t)
    dlng += t
    _double(s, c, t)
    _double(s, c, t)  # pi x/3
    np.multiply(s, 80.0 / 3.0, out=t)
    dlng += t
    _triple(s, c, t)  # pi x
    np.multiply(s, 40.0 / 3.0, out=t)
    dlng += t
    np.multiply(s, c, out=common)
    common *= 2.0  # sin(2 pi x)
    np.multiply(common, common, out=t)  # sin(6 pi x) = (3 - 4 sin² 2 pi x) sin 2 pi x
    t *= -4.0
    t += 3.0
    t *= common
    common += t
    common *= 40.0 / 3.0

    # Latitude terms. Half the latitude is within [-pi/4, pi/4]; every y-angle is a multiple
    # of b = pi y/180 = lat - 35 degrees, which follows from the latitude's sin and cos.
    np.multiply(lat, math.pi / 360.0, out=t)
    _sincos(t, sin_lat, cos_lat, u)
    _double(sin_lat, cos_lat, t)  # the latitude itself, kept for the metres-to-degrees step
    np.multiply(sin_lat, _COS_35, out=s)
    np.multiply(cos_lat, _SIN_35, out=t)
    s -= t
    np.multiply(cos_lat, _COS_35, out=c)
    np.multiply(sin_lat, _SIN_35, out=t)
    c += t  # (s, c): b
    _triple(s, c, t)  # pi y/60
    np.multiply(s, c, out=dlat)
    dlat *= 2.0 * 640.0 / 3.0  # (640/3) sin(pi y/30)
    _quintuple(s, c, t, u)  # pi y/12
    np.multiply(s, 320.0 / 3.0, out=t)
    dlat += t
    _double(s, c, t)
    s *= c  # sin(pi y/3) = 2 sin cos of pi y/6 (its cosine is not needed)
    s *= 2.0
    np.multiply(s, 80.0 / 3.0, out=t)
    dlat += t
    np.multiply(s, s, out=t)  # sin(pi y) = (3 - 4 sin² pi y/3) sin pi y/3
    t *= -4.0
    t += 3.0
    t *= s
    t *= 40.0 / 3.0
    dlat += t

    # The polynomial terms.
    np.subtract(lat, 35.0, out=y)
    np.abs(x, out=root)
    np.sqrt(root, out=root)
    np.multiply(y, 0.2, out=t)  # y(3 + 0.2y)
    t += 3.0
    t *= y
    dlat += t
    np.multiply(y, 0.1, out=t)  # x(2 + 0.1y)
    t += 2.0
    t *= x
    dlat += t
    np.multiply(root, 0.2, out=t)
    dlat += t
    dlat += common
    dlat -= 100.0
    np.add(x, y, out=t)  # x(1 + 0.1(x + y))
    t *= 0.1
    t += 1.0
    t *= x
    dlng += t
    np.multiply(y, 2.0, out=t)
    dlng += t
    np.multiply(root, 0.1, out=t)
    dlng += t
    dlng += common
    dlng += 300.0

    # Metres to degrees on the Krasovsky ellipsoid.
    np.multiply(sin_lat, sin_lat, out=t)
    t *= -_GCJ_EE
    t += 1.0  # magic = 1 - e² sin²(lat)
    np.sqrt(t, out=u)
    dlng *= u
    dlng /= cos_lat
    dlng *= _LNG_DEG_PER_M
    t *= u  # magic^1.5
    dlat *= t
    dlat *= _LAT_DEG_PER_M


def _sincos(t: FloatArray, s: FloatArray, c: FloatArray, z: FloatArray) -> None:
    """sin t into ``s`` and cos t into ``c`` for |t| <= pi/4 (fdlibm's kernels); ``z`` scratch."""
    np.multiply(t, t, out=z)
    np.multiply(z, _S[5], out=s)
    for coef in reversed(_S[:5]):
        s += coef
        s *= z
    s *= t
    s += t
    np.multiply(z, _C[5], out=c)
    for coef in reversed(_C[:5]):
        c += coef
        c *= z
    c -= 0.5
    c *= z
    c += 1.0


def _double(s: FloatArray, c: FloatArray, tmp: FloatArray) -> None:
    """(sin a, cos a) -> (sin 2a, cos 2a), in place."""
    np.multiply(s, s, out=tmp)
    tmp *= -2.0
    s *= c
    s *= 2.0
    np.add(tmp, 1.0, out=c)


def _triple(s: FloatArray, c: FloatArray, tmp: FloatArray) -> None:
    """(sin a, cos a) -> (sin 3a, cos 3a), in place: (3 - 4 sin²a) sin a, (4 cos²a - 3) cos a."""
    np.multiply(s, s, out=tmp)
    tmp *= -4.0
    tmp += 3.0
    s *= tmp
    np.multiply(c, c, out=tmp)
    tmp *= 4.0
    tmp -= 3.0
    c *= tmp


def _quintuple(s: FloatArray, c: FloatArray, tmp: FloatArray, tmp2: FloatArray) -> None:
    """(sin a, cos a) -> (sin 5a, cos 5a), in place: (16 v⁴ - 20 v² + 5) v for v = sin, cos."""
    for v in (s, c):
        np.multiply(v, v, out=tmp)
        np.multiply(tmp, 16.0, out=tmp2)
        tmp2 -= 20.0
        tmp2 *= tmp
        tmp2 += 5.0
        v *= tmp2
