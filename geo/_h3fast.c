/*
 * geo._h3fast: bulk H3 over numpy buffers with the GIL released.
 *
 * latlng_to_cells is a vectorised re-derivation of H3's latLngToCell that is
 * exact with respect to h3-py by construction:
 *   - floating point decides only two things, the icosahedron face and the
 *     hex containing the point on that face; everything after is integer work
 *     that reproduces H3's _faceIjkToH3 (checked against it in the tests);
 *   - the face is the nearest face centre; a point whose two nearest centres
 *     are within 5e-13 in dot product is refused;
 *   - the hex2d position comes from a gnomonic projection onto precomputed
 *     face axes (three dot products and a division instead of H3's acos, tan,
 *     atan2, cos and sin), with a 1-ulp polynomial sincos, so it may differ
 *     from H3's by a few ulps; a point is refused when it lies closer to a hex
 *     edge than a bound about a thousand times the worst disagreement of the
 *     two computations (1e-12 relative, plus 1e-13 / r near a face centre
 *     where H3's own acos loses digits).
 * Refused points get 0 in the output and the Python caller resolves them with
 * h3-py itself, so the answer is h3-py's even where floating point differs.
 * Refusals are rare (none in a million city points at res 9; about 40 in a
 * million uniform points over the globe at res 15).
 *
 * valid_cells, cells_to_latlng, grid_disks and grid_distances call the vendored H3 4.5.0
 * (_h3fast_vendor/h3lib, the library h3-py 4.5.0 wraps) directly.
 *
 * Only the CPython buffer protocol is used (no numpy headers), so the build
 * needs nothing but a C compiler and Python's headers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "baseCells.h"
#include "coordijk.h"
#include "faceijk.h"
#include "h3Index.h"
#include "h3api.h"

#define N_FACES 20
#define SQRT7 2.6457513110645905905016157536392604257102 /* as M_SQRT7 in faceijk.c */

/* H3's faceCenterPoint table (faceijk.c, H3 4.5.0), where it is static. */
static const double FACE_CENTRE[N_FACES][3] = {
    {0.2199307791404606, 0.6583691780274996, 0.7198475378926182},
    {-0.2139234834501421, 0.1478171829550703, 0.9656017935214205},
    {0.1092625278784797, -0.4811951572873210, 0.8697775121287253},
    {0.7428567301586791, -0.3593941678278028, 0.5648005936517033},
    {0.8112534709140969, 0.3448953237639384, 0.4721387736413930},
    {-0.1055498149613921, 0.9794457296411413, 0.1718874610009365},
    {-0.8075407579970092, 0.1533552485898818, 0.5695261994882688},
    {-0.2846148069787907, -0.8644080972654206, 0.4144792552473539},
    {0.7405621473854482, -0.6673299564565524, -0.0789837646326737},
    {0.8512303986474293, 0.4722343788582681, -0.2289137388687808},
    {-0.7405621473854481, 0.6673299564565524, 0.0789837646326737},
    {-0.8512303986474292, -0.4722343788582682, 0.2289137388687808},
    {0.1055498149613919, -0.9794457296411413, -0.1718874610009365},
    {0.8075407579970092, -0.1533552485898819, -0.5695261994882688},
    {0.2846148069787908, 0.8644080972654204, -0.4144792552473539},
    {-0.7428567301586791, 0.3593941678278027, -0.5648005936517033},
    {-0.8112534709140971, -0.3448953237639382, -0.4721387736413930},
    {-0.2199307791404607, -0.6583691780274996, -0.7198475378926182},
    {0.2139234834501420, -0.1478171829550704, -0.9656017935214205},
    {-0.1092625278784796, 0.4811951572873210, -0.8697775121287253},
};

/* H3's faceAxesAzRadsCII[face][0]: azimuth of each face's i axis (class II). */
static const double FACE_I_AXIS_AZ[N_FACES] = {
    5.619958268523939882, 5.760339081714187279, 0.780213654393430055,
    0.430469363979999913, 6.130269123335111400, 2.692877706530642877,
    2.982963003477243874, 3.532912002790141181, 3.494305004259568154,
    3.003214169499538391, 5.930472956509811562, 0.138378484090254847,
    0.448714947059150361, 0.158629650112549365, 5.891865957979238535,
    2.711123289609793325, 3.294508837434268316, 3.804819692245439833,
    3.664438879055192436, 2.361378999196363184,
};

/* Per class (II, III) and face, a row of centre xyz, hex2d x axis xyz, y axis xyz. */
#define FACE_ROW 9
static double FACE_FRAME[2][N_FACES * FACE_ROW];
/* hex2d units per unit of tan(angle from the face centre), by resolution. */
static double HEX_SCALE[MAX_H3_RES + 1];

/* Refuse a point when its two nearest face centres are this close in dot
 * product (a squared chord distance gap of 1e-12; H3's own sqd has an error
 * near 1e-16). */
#define FACE_TIE_DOT 5e-13
/* Edge-distance guard, in units of HEX_SCALE: a relative part and a part
 * growing as 1/r near the face centre, where acos(1 - sqd/2) and the
 * azimuth in H3 lose digits (error ~1.1e-16 / r there). */
#define GUARD_REL 1e-12
#define GUARD_CENTRE 1e-13

static void init_tables(void) {
    for (int f = 0; f < N_FACES; f++) {
        const double *c = FACE_CENTRE[f];
        /* north = normalise(Z - (Z.c) c); east = north x c, as in H3's _vec3TangentBasis */
        double north[3] = {-c[2] * c[0], -c[2] * c[1], 1.0 - c[2] * c[2]};
        double norm = sqrt(north[0] * north[0] + north[1] * north[1] + north[2] * north[2]);
        for (int a = 0; a < 3; a++) north[a] /= norm;
        double east[3] = {north[1] * c[2] - north[2] * c[1], north[2] * c[0] - north[0] * c[2],
                          north[0] * c[1] - north[1] * c[0]};
        for (int cls = 0; cls < 2; cls++) {
            /* theta = axis_az - az (ccw from the i axis); class III turns by -AP7_ROT */
            double axis = FACE_I_AXIS_AZ[f] - (cls ? M_AP7_ROT_RADS : 0.0);
            double ca = cos(axis), sa = sin(axis);
            double *row = &FACE_FRAME[cls][f * FACE_ROW];
            for (int a = 0; a < 3; a++) {
                row[a] = c[a];
                row[3 + a] = ca * north[a] + sa * east[a];
                row[6 + a] = sa * north[a] - ca * east[a];
            }
        }
    }
    double scale = INV_RES0_U_GNOMONIC;
    for (int r = 0; r <= MAX_H3_RES; r++) {
        HEX_SCALE[r] = scale;
        scale *= SQRT7;
    }
}


/* floor(n / 7) for |n| < 2^40, as a multiply-shift on an offset unsigned value */
#define FLOOR_DIV7_OFFSET ((int64_t)7 << 40)
static inline int64_t floor_div7(int64_t n) {
    return (int64_t)((uint64_t)(n + FLOOR_DIV7_OFFSET) / 7u) - ((int64_t)1 << 40);
}

/* _rotate60ccw applied n times to each digit */
static uint8_t ROT60CCW[6][8];
/* the antipode of face f (0..9) among faces 10..19: H3's centres come in antipodal pairs */
static const int ANTIPODE[10] = {17, 18, 19, 15, 16, 12, 13, 14, 10, 11};

static void init_rotations(void) {
    static const uint8_t once[8] = {0, 5, 3, 1, 6, 4, 2, 7};
    for (int d = 0; d < 8; d++) ROT60CCW[0][d] = (uint8_t)d;
    for (int n = 1; n < 6; n++)
        for (int d = 0; d < 8; d++) ROT60CCW[n][d] = once[ROT60CCW[n - 1][d]];
}

#define BLOCK 256

/* Base cell and its ccw rotation for every (face, i, j, k) with coordinates 0..2,
 * copied once from H3's own lookup functions; pentagon flags by base cell. */
static int16_t BASE_CELL_OF[N_FACES][27];
static int8_t BASE_TURNS_OF[N_FACES][27];
static uint8_t BASE_IS_PENTAGON[NUM_BASE_CELLS];
/* ROT60CCW applied to three packed digits (9 bits) at once */
static uint16_t ROT_TRIPLE[6][512];

static void init_base_cells(void) {
    for (int f = 0; f < N_FACES; f++) {
        for (int c = 0; c < 27; c++) {
            FaceIJK fijk = {f, {c / 9, (c / 3) % 3, c % 3}};
            BASE_CELL_OF[f][c] = (int16_t)_faceIjkToBaseCell(&fijk);
            BASE_TURNS_OF[f][c] = (int8_t)_faceIjkToBaseCellCCWrot60(&fijk);
        }
    }
    for (int b = 0; b < NUM_BASE_CELLS; b++) BASE_IS_PENTAGON[b] = (uint8_t)_isBaseCellPentagon(b);
    for (int t = 0; t < 6; t++)
        for (int v = 0; v < 512; v++)
            ROT_TRIPLE[t][v] = (uint16_t)(ROT60CCW[t][v & 7] | (ROT60CCW[t][(v >> 3) & 7] << 3) |
                                          (ROT60CCW[t][v >> 6] << 6));
}


/* Pass 3 of index_block for one point: base cell (IJ at res 0) and rotations. */
static inline uint64_t finish_index(int face, int32_t a, int32_t b, uint64_t packed, int res) {
    int32_t m = a < b ? a : b;
    if (m > 0) m = 0;
    int32_t i = a - m, j = b - m, k = -m;
    if (i > MAX_FACE_COORD || j > MAX_FACE_COORD || k > MAX_FACE_COORD) return 0;
    int base_cell = BASE_CELL_OF[face][i * 9 + j * 3 + k];
    int turns = BASE_TURNS_OF[face][i * 9 + j * 3 + k];
    if (BASE_IS_PENTAGON[base_cell]) {
        /* H3 rotates a pentagon's digits out of the deleted K sub-sequence: first
         * once (cw or ccw by face) if the leading non-zero digit is K, then on
         * each of the ccw turns once more whenever the turn lands it on K. Every
         * step turns all digits alike, so only the total count matters. */
        int lead = 0;
        for (int lvl = 1; lvl <= res; lvl++) {
            int d = (int)((packed >> (3 * (MAX_H3_RES - lvl))) & 7);
            if (d != 0) {
                lead = d;
                break;
            }
        }
        int total = 0;
        if (lead == K_AXES_DIGIT) total = _baseCellIsCwOffset(base_cell, face) ? 5 : 1;
        for (int t = 0; t < turns; t++) {
            total = (total + 1) % 6;
            if (ROT60CCW[total][lead] == K_AXES_DIGIT) total = (total + 1) % 6;
        }
        turns = total;
    }
    /* unused levels below res are 7, which every rotation keeps */
    uint64_t unused = res == MAX_H3_RES ? 0 : (((uint64_t)1 << (3 * (MAX_H3_RES - res))) - 1);
    uint64_t digits = packed | unused;
    if (turns) {
        const uint16_t *rot = ROT_TRIPLE[turns];
        digits = (uint64_t)rot[digits & 511] | ((uint64_t)rot[(digits >> 9) & 511] << 9) |
                 ((uint64_t)rot[(digits >> 18) & 511] << 18) |
                 ((uint64_t)rot[(digits >> 27) & 511] << 27) |
                 ((uint64_t)rot[(digits >> 36) & 511] << 36);
    }
    return ((uint64_t)H3_CELL_MODE << H3_MODE_OFFSET) | ((uint64_t)res << H3_RES_OFFSET) |
           ((uint64_t)base_cell << H3_BC_OFFSET) | digits;
}

/*
 * sin and cos of x for |x| <= pi + 1e-9 (radians), branch-free so loops of it
 * vectorise: Cody-Waite reduction by pi/2 and the fdlibm kernel polynomials on
 * [-pi/4, pi/4]. Error about 1 ulp; the guards of index_block allow a
 * thousand times more.
 */
static inline void sincos_small(double x, double *s, double *c) {
    const double two_over_pi = 6.36619772367581382433e-01;
    const double pio2_hi = 1.57079632673412561417e+00; /* first 33 bits of pi/2 */
    const double pio2_lo = 6.07710050650619224932e-11; /* pi/2 - pio2_hi */
    double k = rint(x * two_over_pi);
    double t = (x - k * pio2_hi) - k * pio2_lo;
    double z = t * t;
    double sp = t + t * z *
                        (-1.66666666666666324348e-01 +
                         z * (8.33333333332248946124e-03 +
                              z * (-1.98412698298579493134e-04 +
                                   z * (2.75573137070700676789e-06 +
                                        z * (-2.50507602534068634195e-08 +
                                             z * 1.58969099521155010221e-10)))));
    double cp = 1.0 - 0.5 * z +
                z * z *
                    (4.16666666666666019037e-02 +
                     z * (-1.38888888888741095749e-03 +
                          z * (2.48015872894767294178e-05 +
                               z * (-2.75573143513906633035e-07 +
                                    z * (2.08757232129817482790e-09 +
                                         z * -1.13596475577881948265e-11)))));
    int32_t q = (int32_t)k;
    double s0 = (q & 1) ? cp : sp;
    double c0 = (q & 1) ? sp : cp;
    *s = (q & 2) ? -s0 : s0;
    *c = ((q + 1) & 2) ? -c0 : c0;
}

/*
 * Index n <= BLOCK points; refused points get 0. Separate passes over the
 * block so that each is a straight loop the compiler can vectorise, and so
 * that the long serial chain of the digit loop (each level needs the previous
 * level's parent) runs for many points side by side.
 *
 * Pass 1: unit vector, nearest face (largest |dot| over one face of each
 *   antipodal pair), hex2d position by gnomonic projection onto the face's
 *   axes, nearest hex centre by cube rounding, and the guards.
 * Pass 2: H3's _faceIjkToH3 digit loop in IJ coordinates with integer
 *   rounding: lround(m / 7.0) == floor((m + 3) / 7) for every integer m since
 *   m / 7 is never a half; in 32 bits, as |IJ| < 2^25 at res 15.
 * Pass 3: base cell, H3's rotations into the base cell's orientation
 *   (including the pentagon rules), packing.
 */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(H3FAST_NO_CLONES)
__attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
static Py_ssize_t index_block(const double *lat, const double *lng, uint64_t *out, int n,
                              int res) {
    double px[BLOCK], py[BLOCK], pz[BLOCK], best_dot[BLOCK], second_dot[BLOCK];
    int32_t face[BLOCK], ca[BLOCK], cb[BLOCK], ok[BLOCK];
    uint32_t digits_hi[BLOCK], digits_lo[BLOCK];
    const double scale = HEX_SCALE[res];
    const double *frame = FACE_FRAME[res & 1];

    for (int p = 0; p < n; p++) {
        double sa, ca_, so, co;
        sincos_small(lat[p] * M_PI_180, &sa, &ca_);
        sincos_small(lng[p] * M_PI_180, &so, &co);
        double p0 = co * ca_, p1 = so * ca_, p2 = sa;
        double best = -1.0, second = -1.0;
        int32_t face_pos = 0, face_neg = ANTIPODE[0];
        double sign = 1.0;
#pragma GCC unroll 10
        for (int f = 0; f < 10; f++) {
            double d = p0 * FACE_CENTRE[f][0] + p1 * FACE_CENTRE[f][1] + p2 * FACE_CENTRE[f][2];
            double ad = fabs(d);
            int better = ad > best;
            second = better ? best : (ad > second ? ad : second);
            best = better ? ad : best;
            face_pos = better ? f : face_pos;
            face_neg = better ? ANTIPODE[f] : face_neg;
            sign = better ? d : sign;
        }
        px[p] = p0;
        py[p] = p1;
        pz[p] = p2;
        best_dot[p] = best;
        second_dot[p] = second;
        face[p] = sign >= 0.0 ? face_pos : face_neg;
    }

    for (int p = 0; p < n; p++) {
        /* flat index so the compiler can gather the face's row */
        int32_t row = face[p] * FACE_ROW;
        double p0 = px[p], p1 = py[p], p2 = pz[p];
        double c0 = frame[row], c1 = frame[row + 1], c2 = frame[row + 2];
        double inv = scale / (p0 * c0 + p1 * c1 + p2 * c2);
        double vx = (p0 * frame[row + 3] + p1 * frame[row + 4] + p2 * frame[row + 5]) * inv;
        double vy = (p0 * frame[row + 6] + p1 * frame[row + 7] + p2 * frame[row + 8]) * inv;

        /* nearest hex centre by cube rounding: axial (q, r) on 60-degree axes, where
         * H3's IJ (k folded in) is (a, b) = (q + r, r) and centre = (a - b/2, b sqrt3/2) */
        double rf = vy * M_RSIN60;
        double qf = vx - 0.5 * rf;
        double sf = -qf - rf;
        double q = rint(qf), r = rint(rf), sr = rint(sf);
        double dq = fabs(q - qf), dr = fabs(r - rf), ds = fabs(sr - sf);
        int fix_q = (dq > dr) & (dq > ds);
        int fix_r = !fix_q & (dr > ds);
        q = fix_q ? -r - sr : q;
        r = fix_r ? -q - sr : r;
        double a = q + r, b = r;

        /* distance to the edge of that hexagon (apothem 1/2, centres 1 apart) */
        double dx = vx - (a - 0.5 * b), dy = vy - b * M_SQRT3_2;
        double e0 = fabs(dx);
        double e1 = fabs(0.5 * dx + M_SQRT3_2 * dy);
        double e2 = fabs(0.5 * dx - M_SQRT3_2 * dy);
        double edge = e0 > e1 ? e0 : e1;
        edge = edge > e2 ? edge : e2;
        double d0 = c0 - p0, d1 = c1 - p1, d2 = c2 - p2;
        double r_chord = sqrt(d0 * d0 + d1 * d1 + d2 * d2);
        double guard = scale * (GUARD_REL + GUARD_CENTRE / r_chord);
        /* !(x > y) also refuses NaN, and r_chord == 0 makes the guard infinite */
        int32_t good = (0.5 - edge > guard) & (best_dot[p] - second_dot[p] > FACE_TIE_DOT) &
                       (fabs(a) < 3.0e7) & (fabs(b) < 3.0e7);
        ok[p] = good;
        ca[p] = (int32_t)(good ? a : 0.0);
        cb[p] = (int32_t)(good ? b : 0.0);
        digits_hi[p] = 0;
        digits_lo[p] = 0;
    }

    /* digit of level lvl sits at bit 3 * (15 - lvl) of the index: levels 1..5 in
     * digits_hi (bits 30..44, stored from bit 0), levels 6..15 in digits_lo */
    const uint32_t offset7 = (uint32_t)7 << 28; /* keeps numerators positive */
    for (int lvl = res; lvl >= 1; lvl--) {
        const int shift = 3 * (MAX_H3_RES - lvl);
        uint32_t *acc = lvl <= 5 ? digits_hi : digits_lo;
        const int acc_shift = lvl <= 5 ? shift - 30 : shift;
        const int ccw = lvl & 1; /* class III child: counter-clockwise aperture 7 */
        for (int p = 0; p < n; p++) {
            int32_t a = ca[p], b = cb[p];
            int32_t na = ccw ? 3 * a - b : 2 * a + b;
            int32_t nb = ccw ? a + 2 * b : 3 * b - a;
            int32_t pa = (int32_t)(((uint32_t)(na + 3) + offset7) / 7u) - (1 << 28);
            int32_t pb = (int32_t)(((uint32_t)(nb + 3) + offset7) / 7u) - (1 << 28);
            int32_t ctr_a = ccw ? 2 * pa + pb : 3 * pa - pb;
            int32_t ctr_b = ccw ? 3 * pb - pa : pa + 2 * pb;
            uint32_t da = (uint32_t)(a - ctr_a + 1), db = (uint32_t)(b - ctr_b + 1);
            uint32_t inside = (da <= 2u) & (db <= 2u);
            uint32_t idx = inside ? da * 3u + db : 2u; /* 2 is an impossible offset: digit 7 */
            /* digit of a child relative to its parent's centre by (di + 1) * 3 + (dj + 1),
             * 3 bits each, in IJ coordinates (k folded in): CENTER 0, K (-1,-1) 1,
             * J (0,1) 2, JK (-1,0) 3, I (1,0) 4, IK (0,-1) 5, IJ (1,1) 6; 7 cannot occur */
            uint32_t digit = (0x69d0bd9u >> (3u * idx)) & 7u;
            acc[p] |= digit << acc_shift;
            ok[p] &= (int32_t)(digit != 7u);
            ca[p] = pa;
            cb[p] = pb;
        }
    }

    Py_ssize_t refused = 0;
    for (int p = 0; p < n; p++) {
        uint64_t h = 0;
        if (ok[p]) {
            uint64_t packed = ((uint64_t)digits_hi[p] << 30) | digits_lo[p];
            h = finish_index(face[p], ca[p], cb[p], packed, res);
        }
        out[p] = h;
        refused += (h == 0);
    }
    return refused;
}
typedef struct {
    const double *lat;
    const double *lng;
    uint64_t *out;
    Py_ssize_t start, stop;
    int res;
    Py_ssize_t refused;
} Chunk;

static void *run_chunk(void *arg) {
    Chunk *ch = (Chunk *)arg;
    Py_ssize_t refused = 0;
    for (Py_ssize_t i = ch->start; i < ch->stop; i += BLOCK) {
        Py_ssize_t m = ch->stop - i < BLOCK ? ch->stop - i : BLOCK;
        refused += index_block(ch->lat + i, ch->lng + i, ch->out + i, (int)m, ch->res);
    }
    ch->refused = refused;
    return NULL;
}

#define MAX_THREADS 64

static PyObject *py_latlng_to_cells(PyObject *self, PyObject *args) {
    Py_buffer lat, lng, out;
    int res, threads;
    if (!PyArg_ParseTuple(args, "y*y*w*ii", &lat, &lng, &out, &res, &threads)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = lat.len / (Py_ssize_t)sizeof(double);
    if (lat.len != lng.len || out.len != n * (Py_ssize_t)sizeof(uint64_t) ||
        lat.len % (Py_ssize_t)sizeof(double) != 0) {
        PyErr_SetString(PyExc_ValueError, "lat, lng and out must hold the same number of items");
        goto done;
    }
    if (res < 0 || res > MAX_H3_RES) {
        PyErr_Format(PyExc_ValueError, "res must be in 0..%d, got %d", MAX_H3_RES, res);
        goto done;
    }
    if (threads < 1) threads = 1;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if ((Py_ssize_t)threads > n) threads = n > 0 ? (int)n : 1;

    Chunk chunks[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    int started[MAX_THREADS];
    Py_ssize_t refused = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (int t = 0; t < threads; t++) {
        chunks[t].lat = (const double *)lat.buf;
        chunks[t].lng = (const double *)lng.buf;
        chunks[t].out = (uint64_t *)out.buf;
        chunks[t].start = n * t / threads;
        chunks[t].stop = n * (t + 1) / threads;
        chunks[t].res = res;
        chunks[t].refused = 0;
        started[t] = 0;
    }
    /* the calling thread takes chunk 0; if a thread cannot start, run its chunk here */
    for (int t = 1; t < threads; t++) {
        started[t] = pthread_create(&tids[t], NULL, run_chunk, &chunks[t]) == 0;
    }
    run_chunk(&chunks[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        else
            run_chunk(&chunks[t]);
    }
    for (int t = 0; t < threads; t++) refused += chunks[t].refused;
    Py_END_ALLOW_THREADS;
    result = PyLong_FromSsize_t(refused);
done:
    PyBuffer_Release(&lat);
    PyBuffer_Release(&lng);
    PyBuffer_Release(&out);
    return result;
}

/* H3's own latLngToCell over the buffers (degrees), single thread: for measuring. */
static PyObject *py_h3_latlng_to_cells(PyObject *self, PyObject *args) {
    Py_buffer lat, lng, out;
    int res;
    if (!PyArg_ParseTuple(args, "y*y*w*i", &lat, &lng, &out, &res)) return NULL;
    Py_ssize_t n = lat.len / (Py_ssize_t)sizeof(double);
    PyObject *result = NULL;
    if (lat.len != lng.len || out.len != n * (Py_ssize_t)sizeof(uint64_t)) {
        PyErr_SetString(PyExc_ValueError, "lat, lng and out must hold the same number of items");
        goto done;
    }
    const double *la = lat.buf, *ln = lng.buf;
    uint64_t *o = out.buf;
    Py_ssize_t failed = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        LatLng g = {la[i] * M_PI_180, ln[i] * M_PI_180};
        H3Index h = 0;
        if (latLngToCell(&g, res, &h) != E_SUCCESS) {
            h = 0;
            failed++;
        }
        o[i] = h;
    }
    Py_END_ALLOW_THREADS;
    result = PyLong_FromSsize_t(failed);
done:
    PyBuffer_Release(&lat);
    PyBuffer_Release(&lng);
    PyBuffer_Release(&out);
    return result;
}

static int compare_cells(const void *x, const void *y) {
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return (a > b) - (a < b);
}

/* Disks of radius k around many (already validated) origins, each sorted, packed
 * back to back into out (room for n * maxGridDiskSize(k)); offsets gets n + 1 entries.
 * Returns the total number of cells. */
static PyObject *py_grid_disks(PyObject *self, PyObject *args) {
    Py_buffer cells, out, offsets;
    int k;
    if (!PyArg_ParseTuple(args, "y*w*w*i", &cells, &out, &offsets, &k)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = cells.len / (Py_ssize_t)sizeof(uint64_t);
    int64_t max_size = 0;
    if (k < 0 || maxGridDiskSize(k, &max_size) != E_SUCCESS) {
        PyErr_Format(PyExc_ValueError, "k must be >= 0 and small enough, got %d", k);
        goto done;
    }
    if (out.len < (Py_ssize_t)(n * max_size * (Py_ssize_t)sizeof(uint64_t)) ||
        offsets.len != (n + 1) * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "out or offsets has the wrong size");
        goto done;
    }
    const uint64_t *origin = cells.buf;
    uint64_t *dst = out.buf;
    int64_t *off = offsets.buf;
    Py_ssize_t failed_at = -1;
    H3Error failed_err = E_SUCCESS;
    int64_t total = 0;
    Py_BEGIN_ALLOW_THREADS;
    off[0] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t *disk = dst + total;
        /* gridDisk leaves zeros where a pentagon removes cells */
        memset(disk, 0, (size_t)max_size * sizeof(uint64_t));
        H3Error err = gridDisk(origin[i], k, disk);
        if (err != E_SUCCESS) {
            failed_at = i;
            failed_err = err;
            break;
        }
        int64_t m = 0;
        for (int64_t j = 0; j < max_size; j++)
            if (disk[j]) disk[m++] = disk[j];
        qsort(disk, (size_t)m, sizeof(uint64_t), compare_cells);
        total += m;
        off[i + 1] = total;
    }
    Py_END_ALLOW_THREADS;
    if (failed_at >= 0) {
        PyErr_Format(PyExc_ValueError, "H3 gridDisk failed for cells[%zd] (H3 error %d)",
                     failed_at, (int)failed_err);
        goto done;
    }
    result = PyLong_FromLongLong(total);
done:
    PyBuffer_Release(&cells);
    PyBuffer_Release(&out);
    PyBuffer_Release(&offsets);
    return result;
}

/* Centres of many (already validated) cells, in degrees, as h3-py computes them. */
static PyObject *py_cells_to_latlng(PyObject *self, PyObject *args) {
    Py_buffer cells, lat, lng;
    if (!PyArg_ParseTuple(args, "y*w*w*", &cells, &lat, &lng)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = cells.len / (Py_ssize_t)sizeof(uint64_t);
    if (lat.len != n * (Py_ssize_t)sizeof(double) || lng.len != lat.len) {
        PyErr_SetString(PyExc_ValueError, "lat and lng must hold one double per cell");
        goto done;
    }
    const uint64_t *h = cells.buf;
    double *la = lat.buf, *lo = lng.buf;
    Py_ssize_t failed_at = -1;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        LatLng g;
        if (cellToLatLng(h[i], &g) != E_SUCCESS) {
            failed_at = i;
            break;
        }
        la[i] = radsToDegs(g.lat);
        lo[i] = radsToDegs(g.lng);
    }
    Py_END_ALLOW_THREADS;
    if (failed_at >= 0) {
        PyErr_Format(PyExc_ValueError, "cells[%zd] is not a valid H3 cell", failed_at);
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&cells);
    PyBuffer_Release(&lat);
    PyBuffer_Release(&lng);
    return result;
}

/* isValidCell of each index into a bool (uint8) buffer; returns how many are valid. */
static PyObject *py_valid_cells(PyObject *self, PyObject *args) {
    Py_buffer cells, ok;
    if (!PyArg_ParseTuple(args, "y*w*", &cells, &ok)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = cells.len / (Py_ssize_t)sizeof(uint64_t);
    if (ok.len != n) {
        PyErr_SetString(PyExc_ValueError, "ok must hold one byte per cell");
        goto done;
    }
    const uint64_t *h = cells.buf;
    uint8_t *o = ok.buf;
    Py_ssize_t valid = 0;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        o[i] = (uint8_t)(isValidCell(h[i]) != 0);
        valid += o[i];
    }
    Py_END_ALLOW_THREADS;
    result = PyLong_FromSsize_t(valid);
done:
    PyBuffer_Release(&cells);
    PyBuffer_Release(&ok);
    return result;
}

/* gridDistance of paired (already validated) cells; -1 where H3 cannot say. */
static PyObject *py_grid_distances(PyObject *self, PyObject *args) {
    Py_buffer a, b, out;
    if (!PyArg_ParseTuple(args, "y*y*w*", &a, &b, &out)) return NULL;
    PyObject *result = NULL;
    Py_ssize_t n = a.len / (Py_ssize_t)sizeof(uint64_t);
    if (b.len != a.len || out.len != n * (Py_ssize_t)sizeof(int64_t)) {
        PyErr_SetString(PyExc_ValueError, "a, b and out must hold the same number of items");
        goto done;
    }
    const uint64_t *ha = a.buf, *hb = b.buf;
    int64_t *o = out.buf;
    Py_BEGIN_ALLOW_THREADS;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t d = -1;
        if (gridDistance(ha[i], hb[i], &d) != E_SUCCESS) d = -1;
        o[i] = d;
    }
    Py_END_ALLOW_THREADS;
    result = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&a);
    PyBuffer_Release(&b);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"latlng_to_cells", py_latlng_to_cells, METH_VARARGS,
     "latlng_to_cells(lat, lng, out, res, threads) -> refused count; refused points get 0."},
    {"valid_cells", py_valid_cells, METH_VARARGS,
     "valid_cells(cells, ok) -> number valid; ok[i] = isValidCell(cells[i])."},
    {"grid_distances", py_grid_distances, METH_VARARGS,
     "grid_distances(a, b, out); out[i] = gridDistance(a[i], b[i]) or -1."},
    {"grid_disks", py_grid_disks, METH_VARARGS,
     "grid_disks(cells, out, offsets, k) -> total; sorted disks packed CSR-style."},
    {"cells_to_latlng", py_cells_to_latlng, METH_VARARGS,
     "cells_to_latlng(cells, lat, lng); centres in degrees."},
    {"h3_latlng_to_cells", py_h3_latlng_to_cells, METH_VARARGS,
     "h3_latlng_to_cells(lat, lng, out, res) -> failures; H3's latLngToCell per point."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "geo._h3fast", "Batch H3 indexing over buffers.", -1, methods,
};

PyMODINIT_FUNC PyInit__h3fast(void) {
    init_tables();
    init_rotations();
    init_base_cells();
    return PyModule_Create(&module);
}
