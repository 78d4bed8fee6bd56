/*
 * _wavelet.c -- one level of the CDF 9/7 lifting (JPEG 2000's irreversible filter) both ways, in C, for
 * cvae.edge.codec.wavelet (the residual of tile format v3); and mix(), tile format v11's map of a level's components.
 *
 * The same float32 operations in the same order as the numpy lifting it replaces (wavelet._lift_fwd and
 * _lift_inv, kept as the reference and compared in tests/edge/codec/test_wavelet.py): every step is one IEEE
 * single-precision add, multiply or subtract of float32 values with float32 constants, each rounded to nearest,
 * so the coefficients are the same bits as numpy's on any IEEE platform. That needs no contraction of a * b + c
 * into a fused multiply-add (setup.py builds with -ffp-contract=off) and no excess precision (FLT_EVAL_METHOD 0:
 * SSE on x86-64, any aarch64). The decoder parses only integers; these floats shape the reconstruction and the
 * encoder's rate-distortion choices, never the parsing.
 *
 * Layout: an H x W float32 array, C order. A level splits the rows (vertical: even rows low, odd rows high), then
 * each half's columns, into ll [ceil(H/2), ceil(W/2)], lh [ceil(H/2), floor(W/2)], hl [floor(H/2), ceil(W/2)] and
 * hh [floor(H/2), floor(W/2)] (first letter vertical). Whole-sample symmetric extension at both ends, any length.
 *
 * Only the Python C API and the buffer protocol are used; the loops run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "float expressions must be evaluated in float (FLT_EVAL_METHOD 0) to match numpy's float32 bit for bit"
#endif

/* the lifting constants (Daubechies and Sweldens 1998; ISO/IEC 15444-1 Annex F), as wavelet.py has them, each
 * rounded once to float32 as np.float32(...) does */
#define ALPHA_D (-1.586134342059924)
#define BETA_D (-0.052980118572961)
#define GAMMA_D 0.882911075530934
#define DELTA_D 0.443506852043971
#define K_D 1.230174104914001

static float ALPHA, BETA, GAMMA, DELTA, K, INV_K;

static void constants_init(void)
{
    ALPHA = (float)ALPHA_D;
    BETA = (float)BETA_D;
    GAMMA = (float)GAMMA_D;
    DELTA = (float)DELTA_D;
    K = (float)K_D;
    INV_K = (float)(1.0 / K_D);
}

/* Lifting of m interleaved signals at once: s[ns][m], d[nd][m] (row i of s is sample i of every signal). For
 * the vertical pass m is the width (a row of the array per sample: the inner loops run along contiguous memory and
 * vectorise); for the horizontal pass m = 1. Each element sees exactly the operations of the 1-D definition. */
/* d[i] += c (s[i] + s[i + 1]) for every row i < nd (the right neighbour mirrored at the end). The inverse passes
 * -c: x + (-c) y is x - c y bit for bit in IEEE arithmetic (negation is exact). */
static void predict_rows(float *d, const float *s, Py_ssize_t ns, Py_ssize_t nd, Py_ssize_t m, float c)
{
    for (Py_ssize_t i = 0; i < nd; i++) {
        const float *a = s + i * m, *b = s + (i + 1 < ns ? i + 1 : ns - 1) * m; /* s[i], its right neighbour */
        float *o = d + i * m;
        for (Py_ssize_t x = 0; x < m; x++)
            o[x] = o[x] + c * (a[x] + b[x]);
    }
}

/* s[i] += c (d[i - 1] + d[i]) for every row i < ns (both neighbours mirrored at the ends) */
static void update_rows(float *s, const float *d, Py_ssize_t ns, Py_ssize_t nd, Py_ssize_t m, float c)
{
    for (Py_ssize_t i = 0; i < ns; i++) {
        Py_ssize_t l = i == 0 ? 0 : (i - 1 < nd ? i - 1 : nd - 1), r = i < nd ? i : nd - 1;
        const float *a = d + l * m, *b = d + r * m; /* d left of s[i], d right of it (mirrored at the ends) */
        float *o = s + i * m;
        for (Py_ssize_t x = 0; x < m; x++)
            o[x] = o[x] + c * (a[x] + b[x]);
    }
}

static void scale(float *v, Py_ssize_t n, float c)
{
    for (Py_ssize_t i = 0; i < n; i++)
        v[i] = v[i] * c;
}

/* Forward lifting of s[ns][m], d[nd][m] (the even and odd samples, split already) in place: predict d from s,
 * update s from d, twice; then scale (s by 1/K, d by K). n = ns + nd < 2: the split alone, unscaled. */
static void lift_fwd(float *s, Py_ssize_t ns, float *d, Py_ssize_t nd, Py_ssize_t m)
{
    if (ns + nd < 2)
        return;
    predict_rows(d, s, ns, nd, m, ALPHA);
    update_rows(s, d, ns, nd, m, BETA);
    predict_rows(d, s, ns, nd, m, GAMMA);
    update_rows(s, d, ns, nd, m, DELTA);
    scale(s, ns * m, INV_K);
    scale(d, nd * m, K);
}

/* The inverse of lift_fwd, in place. nd = 0: s is the signal, unscaled. */
static void lift_inv(float *s, Py_ssize_t ns, float *d, Py_ssize_t nd, Py_ssize_t m)
{
    if (nd == 0)
        return;
    scale(s, ns * m, K);
    scale(d, nd * m, INV_K);
    update_rows(s, d, ns, nd, m, -DELTA);
    predict_rows(d, s, ns, nd, m, -GAMMA);
    update_rows(s, d, ns, nd, m, -BETA);
    predict_rows(d, s, ns, nd, m, -ALPHA);
}

/* a[h][w] -> ll, lh, hl, hh (see the layout above); tmp: h * w floats. */
static void level_fwd(const float *a, Py_ssize_t h, Py_ssize_t w, float *ll, float *lh, float *hl, float *hh,
                      float *tmp)
{
    Py_ssize_t hs = (h + 1) / 2, hd = h / 2, ws = (w + 1) / 2, wd = w / 2;
    /* vertical: even rows to tmp's first hs rows, odd rows after them, then lifted row-wise */
    for (Py_ssize_t i = 0; i < h; i++)
        memcpy(tmp + ((i & 1) ? hs + i / 2 : i / 2) * w, a + i * w, (size_t)w * sizeof(float));
    lift_fwd(tmp, hs, tmp + hs * w, hd, w);
    /* horizontal: each row split into even and odd columns, lifted, into ll | lh (low rows), hl | hh (high) */
    for (Py_ssize_t y = 0; y < h; y++) {
        const float *row = tmp + y * w;
        float *lo = y < hs ? ll + y * ws : hl + (y - hs) * ws;
        float *hi = y < hs ? lh + y * wd : hh + (y - hs) * wd;
        for (Py_ssize_t i = 0; i < ws; i++)
            lo[i] = row[2 * i];
        for (Py_ssize_t i = 0; i < wd; i++)
            hi[i] = row[2 * i + 1];
        lift_fwd(lo, ws, hi, wd, 1);
    }
}

/* The inverse of level_fwd (the inputs are read only); tmp: h * w floats, scratch: w + 1 floats. */
static void level_inv(const float *ll, const float *lh, const float *hl, const float *hh, Py_ssize_t h, Py_ssize_t w,
                      float *a, float *tmp, float *scratch)
{
    Py_ssize_t hs = (h + 1) / 2, hd = h / 2, ws = (w + 1) / 2, wd = w / 2;
    float *s = scratch, *d = scratch + ws;
    for (Py_ssize_t y = 0; y < h; y++) {
        const float *lo = y < hs ? ll + y * ws : hl + (y - hs) * ws;
        const float *hi = y < hs ? lh + y * wd : hh + (y - hs) * wd;
        memcpy(s, lo, (size_t)ws * sizeof(float));
        memcpy(d, hi, (size_t)wd * sizeof(float));
        lift_inv(s, ws, d, wd, 1);
        float *row = tmp + y * w;
        for (Py_ssize_t i = 0; i < ws; i++)
            row[2 * i] = s[i];
        for (Py_ssize_t i = 0; i < wd; i++)
            row[2 * i + 1] = d[i];
    }
    lift_inv(tmp, hs, tmp + hs * w, hd, w);
    for (Py_ssize_t i = 0; i < h; i++)
        memcpy(a + i * w, tmp + ((i & 1) ? hs + i / 2 : i / 2) * w, (size_t)w * sizeof(float));
}

/* ------------------------------------------------------------------------------------------------------ */
/* Python glue: every array a C-contiguous float32 buffer of the exact size; outputs writable.              */

#define NBUF 5

static int get_f32(PyObject *o, Py_buffer *v, int *have, Py_ssize_t count, int writable, const char *name)
{
    if (PyObject_GetBuffer(o, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    *have = 1;
    if (v->itemsize != 4 || !v->format || strcmp(v->format, "f") != 0) {
        PyErr_Format(PyExc_ValueError, "%s: expected float32", name);
        return -1;
    }
    if (v->len != count * 4) {
        PyErr_Format(PyExc_ValueError, "%s: %zd values, expected %zd", name, v->len / 4, count);
        return -1;
    }
    return 0;
}

static void release_all(Py_buffer *v, const int *have)
{
    for (int i = 0; i < NBUF; i++)
        if (have[i])
            PyBuffer_Release(&v[i]);
}

/* forward(a, h, w, ll, lh, hl, hh) / inverse(a, h, w, ll, lh, hl, hh): one level, a the full-size array */
static PyObject *run(PyObject *args, int inverse)
{
    PyObject *o[NBUF];
    Py_ssize_t h, w;
    if (!PyArg_ParseTuple(args, "OnnOOOO", &o[0], &h, &w, &o[1], &o[2], &o[3], &o[4]))
        return NULL;
    if (h < 1 || w < 1 || h > 65536 || w > 65536) {
        PyErr_SetString(PyExc_ValueError, "array sides must lie in 1..65536");
        return NULL;
    }
    Py_ssize_t hs = (h + 1) / 2, hd = h / 2, ws = (w + 1) / 2, wd = w / 2;
    const Py_ssize_t count[NBUF] = {h * w, hs * ws, hs * wd, hd * ws, hd * wd};
    const char *names[NBUF] = {"a", "ll", "lh", "hl", "hh"};
    Py_buffer v[NBUF];
    int have[NBUF] = {0};
    for (int i = 0; i < NBUF; i++) {
        int writable = inverse ? i == 0 : i > 0;
        if (get_f32(o[i], &v[i], &have[i], count[i], writable, names[i]) < 0) {
            release_all(v, have);
            return NULL;
        }
    }
    float *tmp = malloc((size_t)(h * w) * sizeof(float));
    float *scratch = malloc((size_t)(w + 1) * sizeof(float));
    if (tmp && scratch) {
        Py_BEGIN_ALLOW_THREADS
        if (inverse)
            level_inv(v[1].buf, v[2].buf, v[3].buf, v[4].buf, h, w, v[0].buf, tmp, scratch);
        else
            level_fwd(v[0].buf, h, w, v[1].buf, v[2].buf, v[3].buf, v[4].buf, tmp);
        Py_END_ALLOW_THREADS
    }
    int ok = tmp && scratch;
    free(tmp);
    free(scratch);
    release_all(v, have);
    if (!ok)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *wv_forward(PyObject *self, PyObject *args) { return run(args, 0); }
static PyObject *wv_inverse(PyObject *self, PyObject *args) { return run(args, 1); }

/* mix(t, x, y, c, n): y[r][p] = sum_k t[r][k] x[k][p], k = 0..c-1 in order, each product and sum one IEEE double
 * operation rounded to nearest (no fused multiply-add: -ffp-contract=off), then stored as y's type (float64, or
 * float32 rounded to nearest once), so the same bits on any platform: the map of tile format v11's level rotations
 * (cvae.edge.codec.levels._mix_reference is its numpy reference). t float64[c][c]; x float64 or int32[c][n]; y
 * float64 or float32[c][n]; C order. */
#define MIX_BLOCK 256
static PyObject *wv_mix(PyObject *self, PyObject *args)
{
    PyObject *ot, *ox, *oy;
    Py_ssize_t c, n;
    if (!PyArg_ParseTuple(args, "OOOnn", &ot, &ox, &oy, &c, &n))
        return NULL;
    if (c < 1 || c > 64 || n < 0) {
        PyErr_SetString(PyExc_ValueError, "mix: c must lie in 1..64 and n be non-negative");
        return NULL;
    }
    Py_buffer v[3];
    int have[3] = {0, 0, 0};
    PyObject *objs[3] = {ot, ox, oy};
    for (int i = 0; i < 3; i++) {
        if (PyObject_GetBuffer(objs[i], &v[i], PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (i == 2 ? PyBUF_WRITABLE : 0)) < 0)
            goto fail;
        have[i] = 1;
    }
    const int t_ok = v[0].itemsize == 8 && v[0].format && strcmp(v[0].format, "d") == 0 && v[0].len == c * c * 8;
    const int x_d = v[1].itemsize == 8 && v[1].format && strcmp(v[1].format, "d") == 0;
    const int x_i = v[1].itemsize == 4 && v[1].format && (strcmp(v[1].format, "i") == 0 || strcmp(v[1].format, "l") == 0);
    const int y_d = v[2].itemsize == 8 && v[2].format && strcmp(v[2].format, "d") == 0;
    const int y_f = v[2].itemsize == 4 && v[2].format && strcmp(v[2].format, "f") == 0;
    if (!t_ok || !(x_d || x_i) || !(y_d || y_f) || v[1].len != c * n * v[1].itemsize ||
        v[2].len != c * n * v[2].itemsize) {
        PyErr_SetString(PyExc_ValueError, "mix: expected t float64[c, c], x float64 or int32[c, n], y float64 or "
                                          "float32[c, n]");
        goto fail;
    }
    {
        const double *t = v[0].buf;
        Py_BEGIN_ALLOW_THREADS
        double acc[MIX_BLOCK];
        for (Py_ssize_t p0 = 0; p0 < n; p0 += MIX_BLOCK) { /* blocks of positions: x's block stays in cache */
            const Py_ssize_t m = n - p0 < MIX_BLOCK ? n - p0 : MIX_BLOCK;
            for (Py_ssize_t r = 0; r < c; r++) {
                for (Py_ssize_t k = 0; k < c; k++) {
                    const double tk = t[r * c + k];
                    if (x_d) {
                        const double *xk = (const double *)v[1].buf + k * n + p0;
                        if (k == 0)
                            for (Py_ssize_t p = 0; p < m; p++)
                                acc[p] = tk * xk[p];
                        else
                            for (Py_ssize_t p = 0; p < m; p++)
                                acc[p] = acc[p] + tk * xk[p];
                    } else {
                        const int32_t *xk = (const int32_t *)v[1].buf + k * n + p0;
                        if (k == 0)
                            for (Py_ssize_t p = 0; p < m; p++)
                                acc[p] = tk * (double)xk[p];
                        else
                            for (Py_ssize_t p = 0; p < m; p++)
                                acc[p] = acc[p] + tk * (double)xk[p];
                    }
                }
                if (y_d) {
                    double *yr = (double *)v[2].buf + r * n + p0;
                    for (Py_ssize_t p = 0; p < m; p++)
                        yr[p] = acc[p];
                } else {
                    float *yr = (float *)v[2].buf + r * n + p0;
                    for (Py_ssize_t p = 0; p < m; p++)
                        yr[p] = (float)acc[p];
                }
            }
        }
        Py_END_ALLOW_THREADS
    }
    for (int i = 0; i < 3; i++)
        PyBuffer_Release(&v[i]);
    Py_RETURN_NONE;
fail:
    for (int i = 0; i < 3; i++)
        if (have[i])
            PyBuffer_Release(&v[i]);
    return NULL;
}

static PyMethodDef wv_methods[] = {
    {"forward", wv_forward, METH_VARARGS, "forward(a, h, w, ll, lh, hl, hh): one level of a[h, w] into the four"},
    {"inverse", wv_inverse, METH_VARARGS, "inverse(a, h, w, ll, lh, hl, hh): the four back into a[h, w]"},
    {"mix", wv_mix, METH_VARARGS, "mix(t, x, y, c, n): y = t x, each sum in order k = 0..c-1 (float64)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef wv_module = {PyModuleDef_HEAD_INIT, "_wavelet", NULL, -1, wv_methods};

PyMODINIT_FUNC PyInit__wavelet(void)
{
    constants_init();
    return PyModule_Create(&wv_module);
}
