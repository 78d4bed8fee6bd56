/*
 * _coefs.c -- context-adaptive coding of a tile's quantised wavelet coefficients (the residual of tile formats v5 to
 * v7: encode, decode; of v10: encode_mixed, decode_mixed, the mixing coder of _coefmix.h, included below), for
 * cvae.edge.codec.coefs. Specified in docs/bitstream.md ("Version 5", "Version 10"); this file and _coefmix.h are
 * their reference implementation.
 *
 * Input: the integers q of every component's residual subbands, component after component; within a component
 * the subbands in the order the geometry lists them (coarsest first: LL, then the details of the coarsest level,
 * ..., the finest level last), each in raster order. Per subband the geometry gives its height, width, model class
 * and parent (the index of the subband one level coarser with the same orientation, or -1). Each q is coded with
 * adaptive binary models chosen by integers the decoder already has:
 *
 *   a   = 2 |W| + 2 |N| + |NW| + |NE|        neighbours in the subband (0 outside; each |.| clipped to 255)
 *   P   = |parent at (y >> 1, x >> 1)|        clamped to the parent's last row and column (0 without a parent)
 *   B   = |same subband, same (y, x), previous component|               (0 for the first component)
 *   ctx = bucket((a + 2 P + 2 B + 1) / 2)     16 magnitude contexts (edges 1 2 3 5 7 10 14 20 28 40 56 80 112
 *                                             160 224; values above 255 count as 255)
 *   q = 0?           one bit, model zero[class][ctx]
 *   sign             one bit, model sign[class][3 tri(W) + tri(N)] (tri: 0 zero, 1 positive, 2 negative)
 *   v = |q| >= 1     adaptive Elias-gamma: k = bitlen(v) - 1 in unary (unary[class][ctx][i]), the bit below the
 *                    leading one (mant1[class][ctx][k]), the next (mant2[class][ctx][k][bit above]), the rest
 *                    raw, 16 bits at a time, most significant first
 *
 * Every model starts at P(0) = 1/2 with a warm-up (_bincoder.h's bitmodel from n = 0) at the start of the tile
 * (tiles decode independently); all of it is integer arithmetic, so any platform decodes the same integers. The
 * binary coder, the bit models and the Elias-gamma code are _bincoder.h's (also v4's).
 *
 * Only the Python C API and the buffer protocol are used; the coding loops run without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>

#include "_bincoder.h"

#define NCLASS 4   /* model classes: 0 LL, 1 finest details, 2 next level, 3 every coarser level */
#define NCTX MAG_CONTEXTS  /* magnitude contexts */
#define NSIGN 9    /* sign contexts */
#define KMAX 31    /* |q| < 2^31 */
#define MAX_SUBBANDS 64
#define CF_LIMIT (1 << 30) /* the largest |q| an encoder writes (coefs.LIMIT); a decoded larger one is corrupt */

enum { CF_OK = 0, CF_ERR_TRUNCATED = 1, CF_ERR_TRAILING = 2, CF_ERR_RANGE = 3, CF_ERR_NOMEM = 4 };

typedef struct {
    bitmodel zero[NCTX];
    bitmodel sign[NSIGN];
    bitmodel unary[NCTX][KMAX + 1];
    bitmodel mant1[NCTX][KMAX + 1];
    bitmodel mant2[NCTX][KMAX + 1][2];
} class_models;

typedef struct {
    Py_ssize_t h, w, cls, parent, offset; /* offset: of the subband within one component */
} subband;

static void models_init(class_models *m)
{
    const bitmodel half = model_half(0); /* with the warm-up */
    for (int c = 0; c < NCLASS; c++) {
        for (int i = 0; i < NSIGN; i++)
            m[c].sign[i] = half;
        for (int x = 0; x < NCTX; x++) {
            m[c].zero[x] = half;
            for (int k = 0; k <= KMAX; k++) {
                m[c].unary[x][k] = m[c].mant1[x][k] = half;
                m[c].mant2[x][k][0] = m[c].mant2[x][k][1] = half;
            }
        }
    }
}


/* ------------------------------------------------------------------------------------------------------ */
/* Encoder only: rate-distortion optimised quantisation, greedy, with the coder's own adaptive models. Each      */
/* nonzero q is coded as q or as q - sign(q) (one step toward zero), whichever has the smaller                   */
/* (x - v)^2 + lam * bits(v): x the unquantised coefficient over the step, bits(v) the cost of v under the       */
/* models as they stand at that coefficient (its effect on later contexts is not weighed). The decision is      */
/* floating point, but the stream codes the integers chosen: the decoder needs none of it (measured:            */
/* benchmarks/experiments/coef_rdoq_psnr.py).                                                                  */

static double cost_lut[4096]; /* -log2(p / 4096) at a probability's 12 high bits, filled once at import */

static void cost_init(void)
{
    for (int p = 0; p < 4096; p++)
        cost_lut[p] = -log2((p ? p : 1) / 4096.0);
}

static inline double bit_cost(const bitmodel *m, int bit)
{
    uint32_t p0 = model_p(m);
    return cost_lut[(bit ? 65536 - p0 : p0) >> 4];
}

/* the bits of v under the models of context ctx and sign context sctx (the code below: zero flag, sign, gamma) */
static double value_bits(const class_models *m, int ctx, int sctx, int32_t v)
{
    if (!v)
        return bit_cost(&m->zero[ctx], 0);
    uint64_t u = v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;
    double b = bit_cost(&m->zero[ctx], 1) + bit_cost(&m->sign[sctx], v < 0);
    int k = bitlen(u) - 1;
    for (int i = 0; i < k; i++)
        b += bit_cost(&m->unary[ctx][i], 1);
    if (k < KMAX)
        b += bit_cost(&m->unary[ctx][k], 0);
    if (k >= 1) {
        int top = (int)((u >> (k - 1)) & 1);
        b += bit_cost(&m->mant1[ctx][k], top);
        if (k >= 2)
            b += bit_cost(&m->mant2[ctx][k][top], (int)((u >> (k - 2)) & 1)) + (k - 2);
    }
    return b;
}

#include "_coefmix.h" /* version 10's coder: the mixture, on the same layout, contexts and RDO */

/* One pass over every coefficient: enc != NULL codes q, else decodes into q. *where: the failing index.
 * mg[comps * per_comp]: |q| clipped to 255 of every coefficient coded so far (the contexts read it; the encoder fills
 * it beforehand, the decoder as it goes: only coefficients before the current one are ever read). xs (encoder, may be
 * NULL): the coefficients over the step, for the greedy rate-distortion choice above at lam; q and mg then take the
 * values chosen. */
static int run(int32_t *q, uint8_t *mg, Py_ssize_t comps, const subband *sb, int nsub, Py_ssize_t per_comp,
               class_models *models, encoder *enc, decoder *dec, Py_ssize_t *where, const double *xs, double lam)
{
    for (Py_ssize_t k = 0; k < comps; k++) {
        int32_t *base = q + k * per_comp;
        const uint8_t *mbase = mg + k * per_comp;
        const uint8_t *mprev = k > 0 ? mbase - per_comp : NULL;
        for (int s = 0; s < nsub; s++) {
            const subband *b = &sb[s];
            const Py_ssize_t w = b->w;
            int32_t *c = base + b->offset;
            const uint8_t *mc = mbase + b->offset;
            const uint8_t *mpc = mprev ? mprev + b->offset : NULL;
            const subband *pb = b->parent >= 0 ? &sb[b->parent] : NULL;
            const uint8_t *mpar = pb ? mbase + pb->offset : NULL;
            class_models *m = &models[b->cls];
            for (Py_ssize_t y = 0; y < b->h; y++) {
                const int32_t *row = c + y * w, *up = y > 0 ? row - w : NULL;
                const uint8_t *mrow = mc + y * w, *mup = y > 0 ? mrow - w : NULL;
                const uint8_t *prow = mpar ? mpar + (y >> 1 < pb->h ? y >> 1 : pb->h - 1) * pb->w : NULL;
                const uint8_t *brow = mpc ? mpc + y * w : NULL;
                for (Py_ssize_t x = 0; x < w; x++) {
                    int32_t W = x > 0 ? row[x - 1] : 0, N = up ? up[x] : 0;
                    int32_t a;
                    if (up && x > 0 && x + 1 < w) /* the interior: every neighbour exists (the same sum as below) */
                        a = 2 * (mrow[x - 1] + mup[x]) + mup[x - 1] + mup[x + 1];
                    else
                        a = 2 * (x > 0 ? mrow[x - 1] : 0) + 2 * (up ? mup[x] : 0) + (up && x > 0 ? mup[x - 1] : 0) +
                            (up && x + 1 < w ? mup[x + 1] : 0);
                    int32_t P = prow ? prow[x >> 1 < pb->w ? x >> 1 : pb->w - 1] : 0;
                    int32_t B = brow ? brow[x] : 0;
                    int32_t v = (a + 2 * P + 2 * B + 1) / 2;
                    int ctx = bucket_lut[v > 255 ? 255 : v];
                    int sctx = 3 * tri(W) + tri(N);
                    Py_ssize_t at = k * per_comp + b->offset + y * w + x;
                    if (enc) {
                        int32_t val = row[x];
                        if (xs && val != 0) { /* q or q - sign(q): the cheaper in (x - v)^2 + lam bits(v) */
                            int32_t alt = val - (val > 0 ? 1 : -1);
                            double d0 = xs[at] - val, d1 = xs[at] - alt;
                            if (d1 * d1 + lam * value_bits(m, ctx, sctx, alt) <
                                d0 * d0 + lam * value_bits(m, ctx, sctx, val)) {
                                val = alt;
                                c[y * w + x] = val;
                                mg[at] = (uint8_t)mag255(val);
                            }
                        }
                        enc_bit(enc, &m->zero[ctx], val != 0);
                        if (!val)
                            continue;
                        enc_bit(enc, &m->sign[sctx], val < 0);
                        uint64_t u = val < 0 ? (uint64_t)(-(int64_t)val) : (uint64_t)val;
                        enc_gamma(enc, m->unary[ctx], m->mant1[ctx], m->mant2[ctx], KMAX, u);
                    } else {
                        int32_t *out = c + y * b->w + x;
                        if (!dec_bit(dec, &m->zero[ctx])) {
                            *out = 0;
                        } else {
                            int neg = dec_bit(dec, &m->sign[sctx]);
                            uint64_t u = dec_gamma(dec, m->unary[ctx], m->mant1[ctx], m->mant2[ctx], KMAX);
                            /* the input's bound, checked as it is read: |q| <= CF_LIMIT (u < 2^32 before it: KMAX 31
                             * prefix bits), so -u and the contexts' |q| stay in int32 */
                            if (u > (uint64_t)CF_LIMIT) {
                                *where = at;
                                return CF_ERR_RANGE;
                            }
                            *out = neg ? -(int32_t)u : (int32_t)u;
                            mg[at] = (uint8_t)mag255(*out);
                        }
                        if (dec->overrun > 4) {
                            *where = at;
                            return CF_ERR_TRUNCATED;
                        }
                    }
                }
            }
        }
    }
    return CF_OK;
}

/* ------------------------------------------------------------------------------------------------------ */
/* Python glue.                                                                                            */

/* bytes of run_mix's scratch: four planes of a component's size, three uint16 rows of the widest subband */
static size_t scratch_size(const subband *sb, int nsub, Py_ssize_t per_comp)
{
    Py_ssize_t wmax = 1;
    for (int s = 0; s < nsub; s++)
        wmax = sb[s].w > wmax ? sb[s].w : wmax;
    return (size_t)(4 * per_comp + 6 * wmax + 8);
}

/* geometry int32[nsub][4] (h, w, class, parent) -> subbands with offsets; *per_comp: coefficients per component */
static int parse_geometry(PyObject *go, subband *sb, int *nsub, Py_ssize_t *per_comp)
{
    Py_buffer g;
    if (PyObject_GetBuffer(go, &g, PyBUF_C_CONTIGUOUS) < 0)
        return -1;
    int ok = g.len % 16 == 0 && g.len > 0 && g.len / 16 <= MAX_SUBBANDS;
    Py_ssize_t off = 0;
    if (ok) {
        *nsub = (int)(g.len / 16);
        const int32_t *v = g.buf;
        for (int s = 0; s < *nsub && ok; s++) {
            const int32_t *r = v + 4 * s;
            ok = r[0] >= 1 && r[1] >= 1 && r[0] <= 65536 && r[1] <= 65536 && r[2] >= 0 && r[2] < NCLASS &&
                 r[3] >= -1 && r[3] < s;
            sb[s] = (subband){r[0], r[1], r[2], r[3], off};
            off += (Py_ssize_t)r[0] * r[1];
        }
    }
    PyBuffer_Release(&g);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "geometry: int32[nsub][4] rows (h >= 1, w >= 1, class 0..3, parent -1 or "
                                          "an earlier subband), 1..64 subbands");
        return -1;
    }
    *per_comp = off;
    return 0;
}

/* The coefficients' layout and buffer of encode/decode: comps in 1..255, the geometry, and ``o`` an int32
 * buffer of exactly comps * per_comp values (writable for decode). -1 with a Python error (nothing held) on failure. */
static int get_layout(Py_ssize_t comps, PyObject *go, PyObject *o, int writable, const char *name, subband *sb,
                      int *nsub, Py_ssize_t *per_comp, Py_buffer *buf)
{
    if (comps < 1 || comps > 255) {
        PyErr_SetString(PyExc_ValueError, "components must lie in 1..255");
        return -1;
    }
    if (parse_geometry(go, sb, nsub, per_comp) < 0 ||
        PyObject_GetBuffer(o, buf, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if (buf->len != comps * *per_comp * 4) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected %zd int32", name, buf->len, comps * *per_comp);
        PyBuffer_Release(buf);
        return -1;
    }
    return 0;
}

/* encode(q int32[comps * per_comp], comps, geometry[, xs float64[comps * per_comp], lam]) -> bytes; with xs, the
 * greedy rate-distortion choice (above) at lam, and q (writable) takes the values coded */
static PyObject *encode_impl(PyObject *args, int mixed)
{
    PyObject *qo, *go, *xo = NULL;
    Py_ssize_t comps;
    double lam = 0.0;
    if (!PyArg_ParseTuple(args, "OnO|Od", &qo, &comps, &go, &xo, &lam))
        return NULL;
    subband sb[MAX_SUBBANDS];
    int nsub;
    Py_ssize_t per_comp;
    Py_buffer q, x = {0};
    if (get_layout(comps, go, qo, xo != NULL, "q", sb, &nsub, &per_comp, &q) < 0)
        return NULL;
    if (xo) {
        if (PyObject_GetBuffer(xo, &x, PyBUF_C_CONTIGUOUS) < 0) {
            PyBuffer_Release(&q);
            return NULL;
        }
        if (x.len != q.len * 2 || !(lam >= 0.0 && lam < 1e30)) {
            PyErr_SetString(PyExc_ValueError, "encode: xs float64[comps * per_comp] (as q), lam >= 0");
            PyBuffer_Release(&x);
            PyBuffer_Release(&q);
            return NULL;
        }
    }
    void *models = malloc(mixed ? sizeof(mix_models) * NCLASS : sizeof(class_models) * NCLASS);
    uint8_t *mg = malloc((size_t)(comps * per_comp));
    uint8_t *scratch = mixed ? malloc(scratch_size(sb, nsub, per_comp)) : NULL;
    encoder e = {0, 0xFFFFFFFFu, 0, 1, NULL, 0, 0, 0};
    Py_ssize_t where = 0;
    int st = CF_ERR_NOMEM;
    if (models && mg && (scratch || !mixed)) {
        Py_BEGIN_ALLOW_THREADS
        const int32_t *qv = q.buf;
        for (Py_ssize_t i = 0; i < comps * per_comp; i++)
            mg[i] = (uint8_t)mag255(qv[i]);
        if (mixed) {
            mix_init(models);
            st = run_mix(q.buf, mg, comps, sb, nsub, per_comp, models, &e, NULL, &where, xo ? x.buf : NULL, lam,
                         scratch);
        } else {
            models_init(models);
            st = run(q.buf, mg, comps, sb, nsub, per_comp, models, &e, NULL, &where, xo ? x.buf : NULL, lam);
        }
        enc_finish(&e);
        Py_END_ALLOW_THREADS
    }
    free(models);
    free(mg);
    free(scratch);
    if (xo)
        PyBuffer_Release(&x);
    PyBuffer_Release(&q);
    PyObject *res = NULL;
    if (st == CF_OK && !e.oom && e.len >= 1 && e.buf[0] == 0)
        res = PyBytes_FromStringAndSize((const char *)e.buf + 1, (Py_ssize_t)e.len - 1); /* byte 0 is always 0 */
    else
        PyErr_NoMemory();
    free(e.buf);
    return res;
}

/* decode(data, comps, geometry, out int32[comps * per_comp]) -> (status, detail) */
static PyObject *decode_impl(PyObject *args, int mixed)
{
    Py_buffer data, out;
    PyObject *go, *oo;
    Py_ssize_t comps;
    if (!PyArg_ParseTuple(args, "y*nOO", &data, &comps, &go, &oo))
        return NULL;
    subband sb[MAX_SUBBANDS];
    int nsub;
    Py_ssize_t per_comp;
    if (get_layout(comps, go, oo, 1, "out", sb, &nsub, &per_comp, &out) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    /* every coefficient costs at least one binary decision: a geometry declaring more than the payload can hold is
     * refused before anything is allocated (comps <= 255, per_comp <= 64 2^32: no overflow) */
    if ((uint64_t)(comps * per_comp) > bin_max_decisions((size_t)data.len)) {
        PyBuffer_Release(&out);
        PyBuffer_Release(&data);
        return Py_BuildValue("(in)", CF_ERR_TRUNCATED, comps * per_comp);
    }
    void *models = malloc(mixed ? sizeof(mix_models) * NCLASS : sizeof(class_models) * NCLASS);
    uint8_t *mg = calloc((size_t)(comps * per_comp), 1);
    uint8_t *buf = malloc((size_t)data.len + 1); /* the encoder drops the coder's leading 0 byte: feed it back */
    uint8_t *scratch = mixed ? malloc(scratch_size(sb, nsub, per_comp)) : NULL;
    Py_ssize_t where = 0;
    int st = CF_ERR_NOMEM;
    if (models && buf && mg && (scratch || !mixed)) {
        buf[0] = 0;
        memcpy(buf + 1, data.buf, (size_t)data.len);
        decoder d;
        Py_BEGIN_ALLOW_THREADS
        dec_init(&d, buf, (size_t)data.len + 1);
        if (mixed) {
            mix_init(models);
            st = run_mix(out.buf, mg, comps, sb, nsub, per_comp, models, NULL, &d, &where, NULL, 0.0, scratch);
        } else {
            models_init(models);
            st = run(out.buf, mg, comps, sb, nsub, per_comp, models, NULL, &d, &where, NULL, 0.0);
        }
        Py_END_ALLOW_THREADS
        if (st == CF_OK && d.overrun > 0) {
            st = CF_ERR_TRUNCATED;
            where = comps * per_comp;
        } else if (st == CF_OK && d.p != d.end) {
            st = CF_ERR_TRAILING;
            where = (Py_ssize_t)(d.end - d.p);
        }
    }
    free(models);
    free(mg);
    free(buf);
    free(scratch);
    PyBuffer_Release(&out);
    PyBuffer_Release(&data);
    if (st == CF_ERR_NOMEM)
        return PyErr_NoMemory();
    return Py_BuildValue("(in)", st, where);
}

static PyObject *cf_encode(PyObject *self, PyObject *args) { return encode_impl(args, 0); }
static PyObject *cf_decode(PyObject *self, PyObject *args) { return decode_impl(args, 0); }
static PyObject *cf_encode_mixed(PyObject *self, PyObject *args) { return encode_impl(args, 1); }
static PyObject *cf_decode_mixed(PyObject *self, PyObject *args) { return decode_impl(args, 1); }

static PyMethodDef cf_methods[] = {
    {"encode", cf_encode, METH_VARARGS, "encode(q, components, geometry[, xs, lam]) -> bytes (v5 to v7)"},
    {"decode", cf_decode, METH_VARARGS, "decode(data, components, geometry, out) -> (status, detail) (v5 to v7)"},
    {"encode_mixed", cf_encode_mixed, METH_VARARGS, "encode_mixed(q, components, geometry[, xs, lam]) -> bytes (v10)"},
    {"decode_mixed", cf_decode_mixed, METH_VARARGS,
     "decode_mixed(data, components, geometry, out) -> (status, detail) (v10)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef cf_module = {PyModuleDef_HEAD_INIT, "_coefs", NULL, -1, cf_methods};

PyMODINIT_FUNC PyInit__coefs(void)
{
    bucket_init();
    cost_init();
    mix_tables();
    return PyModule_Create(&cf_module);
}
