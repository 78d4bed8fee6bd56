/*
 * _predictive.c -- the error-bounded predictive tile coder behind cvae.edge.codec.predictive (tile formats v4, v8, v9).
 *
 * The stream is specified in docs/bitstream.md ("Version 4"); this file is its reference implementation.
 * Everything here is integer arithmetic with C99-defined results (no floating point, no right shift of a negative
 * value, no signed overflow: the wrapper bounds every input to +-2^33 and decode_q every decoded residual to what
 * an encoder can write, so no intermediate leaves int64), so the encoder on the satellite and a decoder on any ground
 * machine compute the same integers by construction.
 *
 * Per tile, samples are visited row by row; within a row band by band; within a band left to right. For each
 * sample x of band b at (y, i), with E = E_b and every value below a reconstructed one:
 *
 *   neighbours   W, N, NW, NE, WW, NN of band b (missing ones replaced: neighbours())
 *   local sum    s = N + W + NW + NE
 *   features     u = 4N - s, 4W - s, 4NW - s, 4WW - s, 4NN - s, 4 MED(N, W, NW) - s; for k = 1..min(b, 3) the
 *                central difference d[b-k](y, i) = 4 r[b-k](y, i) - s[b-k](y, i); for b > 0 the previous band's
 *                prediction error 4 (r - p)[b-1](y, i)
 *   prediction   p4 = s + floor(sum_j w_j u_j / 2^16);  p = clip(floor((p4 + 2) / 4), lo_b, hi_b)
 *   residual     e = x - p;  q = sign(e) floor((|e| + E) / (2E + 1))                   (q = e when E = 0)
 *   reconstruct  r = clip(p + q (2E + 1), lo_b, hi_b)                          => |x - r| <= E, always
 *   coding       q with adaptive binary models chosen by neighbouring residuals and gradients (code_q())
 *   adaptation   normalised LMS on w from the error 4r - p4 (adapt())
 *
 * A sample with skip = 1 (nodata pixel, or a band-fill sample) is not coded and adapts nothing; its reconstructed
 * value is p (so neighbours see a plausible value) and its residual counts as 0.
 *
 * Replicated bands: a band resampled by pixel replication onto a finer grid (Sentinel-2's 20 m and 60 m bands
 * in a 10 m stack) is constant on ky x kx blocks starting at row oy and column ox (rep[b] = ky, kx, oy, ox; the
 * encoder finds them, the header sends them). Only each block's anchor sample (its top-left one inside the tile)
 * is coded; the others copy the anchor's reconstructed value, residual and prediction error. An anchor is coded
 * (with the block's value) unless every sample of its block is skipped.
 *
 * Entropy coder: a binary range coder in the LZMA layout (32-bit range, 64-bit low with carry propagation, one
 * byte out per renormalisation), probabilities of a 0 bit in 16 bits kept by a two-rate counter. It is a second
 * coder next to the project's rANS coder (_rangecoder.c) because the models here change after every bit: rANS
 * would need a second, backward pass over stored probabilities.
 *
 * Version 9 (t->v9): mode 0 also reads up to 11 previous bands' d and 4 (r - p) of this band at W, N, NW, NE, WW
 * (|4 (r - p)| <= 2^36 like the previous band's: a sum of 23 terms w u stays below 2^60), magnitude contexts from 22
 * edges (wide_lut) and bit models that start with the warm-up (docs/bitstream.md, "Version 9").
 *
 * Only the Python C API and the buffer protocol are used; the coding loops run without the GIL. The Python
 * wrapper validates inputs and raises the user-facing errors; this module re-checks everything memory safety
 * depends on and returns (status, detail) for a bad stream.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PR_FORMAT_VERSION 1
#define NSPATIAL 6                 /* spatial features */
#define PMAX 3                     /* previous bands' central differences (v4, v8) */
#define PMAX9 11                   /* v9: up to 11 previous bands */
#define NEF 5                      /* v9: this band's prediction errors at W, N, NW, NE, WW */
#define NF (NSPATIAL + PMAX9 + 1 + NEF) /* + the previous band's prediction error */
#define OMEGA 16                   /* fractional bits of the weights */
#define W_LIMIT ((int64_t)1 << 19) /* |w| <= 8 */
#define MU_SHIFT_MIN 3             /* LMS step 2^-shift: 2^-3 at the start of a band, then smaller ... */
#define MU_SHIFT_MAX 7             /* ... down to 2^-7 */
#define MU_SHIFT_EVERY 512         /* coded samples per step of the shift */
#define ERR_CLIP 32                /* LMS error in eighths of its running mean, clipped to +-this */
#define NCTX 22                    /* magnitude contexts: v9's 22 (v4 and v8 use the first MAG_CONTEXTS = 16) */
#define NSIGN 27                   /* sign contexts: signs (+, -, 0) of q at W, N and in the previous band */
#define KMAX 40                    /* longest unary prefix: |q| < 2^40 (decode_q bounds it far below) */
#define SAMPLE_LIMIT ((int64_t)1 << 33) /* |lo|, |hi|, E bounded by the wrapper: keeps every product in int64 */
#define MAX_BANDS 32               /* the tile format's limits (bitstream.MAX_BANDS, MAX_EDGE): a decoder refuses */
#define MAX_EDGE 2048              /* a larger declared shape before allocating anything */
#define NEQ 64                     /* replication mode: equality contexts (4 equalities x the W run 0..3) */
#define NRCTX (NEQ * NCTX)         /* replication mode: its full contexts (equality context x magnitude context) */
#define NLOW 2                     /* replication mode: unary positions modelled by the full context */
#define COST_FRAC 8                /* the encoder's size estimates: bits in 1/256 */
#define NFP 24                     /* NF rounded up to a multiple of 4: the narrow pass's vector loops */
#define NARROW_SPAN ((int64_t)1 << 24) /* bands' hi - lo below this: |u| <= 4 (hi - lo) < 2^26, the narrow pass */
#define RING 16                    /* rows kept of the per-sample state: a replicated block's anchor lies at most */
                                   /* 15 rows up (ky <= 16), every other read 1 row up; a power of two */

enum { PR_OK = 0, PR_ERR_TRUNCATED = 1, PR_ERR_TRAILING = 2, PR_ERR_RANGE = 3, PR_ERR_NOMEM = 4 };

/* ------------------------------------------------------------------------------------------------------ */
/* Defined integer helpers.                                                                                */

static inline int64_t floor_div(int64_t a, int64_t b) /* b > 0 */
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

/* floor(a / 2^k) for |a| < 2^61, 0 <= k <= 16: an unsigned shift of a + 2^62 (no right shift of a negative value) */
static inline int64_t floor_shift(int64_t a, int k)
{
    const int64_t bias = (int64_t)1 << 62;
    return (int64_t)((uint64_t)(a + bias) >> k) - (bias >> k);
}

static inline int64_t clip64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline int64_t abs64(int64_t v) { return v < 0 ? -v : v; }

/* LOCO-I's median edge detector */
static inline int64_t med(int64_t n, int64_t w, int64_t nw)
{
    int64_t mx = n > w ? n : w, mn = n > w ? w : n;
    return nw >= mx ? mn : (nw <= mn ? mx : n + w - nw);
}

#include "_bincoder.h"

#if defined(__SSE2__) && !defined(PR_NO_SIMD)
#include <emmintrin.h> /* x86-64's baseline vector instructions: the narrow pass's loops, 4 features at a time */
#define PR_SSE2 1
#endif

/* The per-sample functions are inlined into each specialised pass (run_tile_impl: encode, estimate or decode; v9 or
 * not; interior sample or not), where the constant arguments remove their branches. */
#if defined(__GNUC__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

/* ------------------------------------------------------------------------------------------------------ */
/* Models of one band, reset at the start of every tile (tiles decode independently).                     */

typedef struct {
    int32_t w[NFP];                 /* |w| <= W_LIMIT; the narrow pass reads (and keeps) those past n_f */
    int64_t coded;                  /* samples coded so far (step schedule) */
    int64_t aerr;                   /* running mean of |4r - p4|, x 16 */
    bitmodel zero[NCTX];
    bitmodel sign[NSIGN];
    bitmodel unary[NCTX][KMAX + 1];
    bitmodel mant1[NCTX][KMAX + 1];     /* the bit below the leading one, per length */
    bitmodel mant2[NCTX][KMAX + 1][2];  /* the next bit, per length and the bit above it */
    bitmodel rzero[NRCTX];              /* replication mode: q != 0, per full context */
    bitmodel runary[NRCTX][NLOW];       /* replication mode: the first unary positions, per full context */
} band_models;

static void band_init(band_models *m, int mode, int v9)
{
    memset(m, 0, mode ? sizeof *m : offsetof(band_models, rzero));
    /* start near planar prediction: (4N - s) 3/8 + (4W - s) 3/8 - (4NW - s) 1/4; the previous band's central
     * difference 1/2 */
    m->w[0] = 3 << (OMEGA - 3);
    m->w[1] = 3 << (OMEGA - 3);
    m->w[2] = -(1 << (OMEGA - 2));
    m->w[NSPATIAL] = 1 << (OMEGA - 1);
    const bitmodel half = model_half(v9 ? 0 : MODEL_WARM); /* v4, v8: no warm-up; v9: the warm-up */
    for (int i = 0; i < NSIGN; i++)
        m->sign[i] = half;
    for (int c = 0; c < NCTX; c++) {
        m->zero[c] = half;
        for (int k = 0; k <= KMAX; k++) {
            m->unary[c][k] = m->mant1[c][k] = half;
            m->mant2[c][k][0] = m->mant2[c][k][1] = half;
        }
    }
    if (mode) { /* the replication mode's own models start with the warm-up (most of the 1024 contexts are rare) */
        const bitmodel fresh = model_half(0);
        for (int c = 0; c < NRCTX; c++) {
            m->rzero[c] = fresh;
            for (int i = 0; i < NLOW; i++)
                m->runary[c][i] = fresh;
        }
    }
}

/* ------------------------------------------------------------------------------------------------------ */
/* The tile: geometry, bounds, and what later samples read of earlier ones.                                */

typedef struct {
    int c, h, w;
    const int64_t *emax, *lo, *hi; /* [c] */
    const uint8_t *skip;           /* [c][h][w] */
    const uint8_t *rep;            /* [c][4] ky, kx, oy, ox: replication blocks (1, 1, 0, 0: none) */
    const uint8_t *mode;           /* [c] 0: v4's adaptive linear predictor; 1: the replication mode (v8) */
    int v9;                        /* tile format v9: mode 0 with more inputs, 22 contexts, warm-up models */
    int64_t *r;                    /* [c][h][w] reconstructed (the output) */
    /* what later samples read of the last RING rows, [RING][c][w] (row y at y mod RING, RAT): the working set is
     * 18 RING c w bytes whatever the tile's height (19 MB for the format's largest tile, 32 x 2048 x 2048) */
    int64_t *cdiff;                /* central difference 4 r - s */
    uint8_t *qs;                   /* the sign of q: 0 zero, 1 positive, 2 negative (tri) */
    uint8_t *qm;                   /* |q| clipped to 255 (mag255) */
    int64_t *perr;                 /* r - p */
    band_models *m;                /* [c] */
    int *acol;                     /* [c][w]: the anchor column of each column (replication blocks) */
} tile_t;

#define AT(t, b, y, x) ((size_t)(b) * (size_t)(t)->h * (size_t)(t)->w + (size_t)(y) * (size_t)(t)->w + (size_t)(x))
/* the ring rows: sample (b, y, x); the previous band's sample of the same row lies w before */
#define RAT(t, b, y, x) (((size_t)((y) & (RING - 1)) * (size_t)(t)->c + (size_t)(b)) * (size_t)(t)->w + (size_t)(x))

typedef struct { int64_t W, N, NW, NE, WW, NN; } nbhd;

/* One band's row (band b, row y), set up once per row: where its samples read and write, and the band's constants.
 * The rows above are NULL where they do not exist. */
typedef struct {
    int b, w;
    int npv;                    /* previous bands' central differences read: min(b, 3) (v9: min(b, 11)) */
    int64_t lo, hi, emax, step;
    int ay;                     /* replication blocks: the anchor row of row y */
    const int *ax;              /* ... and the anchor column of each column (NULL without blocks) */
    const uint8_t *skip;        /* skip, row y of band b */
    int64_t *r0;                /* r, row y of band b */
    const int64_t *r1, *r2;     /* r, rows y - 1 and y - 2 */
    const int64_t *rb;          /* r, row y of band b - 1 (NULL for band 0) */
    int64_t *cd0, *pe0;         /* ring row y of band b: cdiff, perr (band b - k's lie k w before) */
    const int64_t *pe1;         /* perr, row y - 1 */
    uint8_t *qs0;
    const uint8_t *qs1;
    uint8_t *qm0;
    const uint8_t *qm1;
} row_t;

/* The anchor of coordinate v on a grid of period k starting at o: the block's first coordinate, or 0 when the
 * block starts before the tile. */
static inline int anchor(int v, int k, int o)
{
    int a = v - (((v - o) % k) + k) % k;
    return a < 0 ? 0 : a;
}

static void row_init(const tile_t *t, row_t *R, int b, int y, int v9)
{
    const size_t w = (size_t)t->w;
    R->b = b;
    R->w = t->w;
    R->npv = b < (v9 ? PMAX9 : PMAX) ? b : (v9 ? PMAX9 : PMAX);
    R->lo = t->lo[b];
    R->hi = t->hi[b];
    R->emax = t->emax[b];
    R->step = 2 * t->emax[b] + 1;
    const uint8_t *rp = t->rep + 4 * b;
    R->ay = anchor(y, rp[0], rp[2]);
    R->ax = rp[0] > 1 || rp[1] > 1 ? t->acol + (size_t)b * w : NULL;
    R->skip = t->skip + AT(t, b, y, 0);
    R->r0 = t->r + AT(t, b, y, 0);
    R->r1 = y > 0 ? R->r0 - w : NULL;
    R->r2 = y > 1 ? R->r0 - 2 * w : NULL;
    R->rb = b > 0 ? t->r + AT(t, b - 1, y, 0) : NULL;
    const size_t ra = RAT(t, b, y, 0), up = y > 0 ? RAT(t, b, y - 1, 0) : 0;
    R->cd0 = t->cdiff + ra;
    R->pe0 = t->perr + ra;
    R->qs0 = t->qs + ra;
    R->qm0 = t->qm + ra;
    R->pe1 = y > 0 ? t->perr + up : NULL;
    R->qs1 = y > 0 ? t->qs + up : NULL;
    R->qm1 = y > 0 ? t->qm + up : NULL;
}

/* Neighbours of (y, x) in band b. Missing ones: W from N, else from the previous band's sample, else the middle of
 * the band's range; N from W; NW and NE from N; WW from W; NN from N. inner: every neighbour exists (y > 1,
 * 1 < x < w - 1), read directly. */
HOT void neighbours(const row_t *R, int x, nbhd *n, const int inner)
{
    if (inner) {
        n->W = R->r0[x - 1];
        n->WW = R->r0[x - 2];
        n->N = R->r1[x];
        n->NW = R->r1[x - 1];
        n->NE = R->r1[x + 1];
        n->NN = R->r2[x];
        return;
    }
    if (x > 0)
        n->W = R->r0[x - 1];
    else if (R->r1)
        n->W = R->r1[x];
    else if (R->rb)
        n->W = R->rb[x];
    else
        n->W = floor_div(R->lo + R->hi, 2);
    n->N = R->r1 ? R->r1[x] : n->W;
    n->NW = (R->r1 && x > 0) ? R->r1[x - 1] : n->N;
    n->NE = (R->r1 && x + 1 < R->w) ? R->r1[x + 1] : n->N;
    n->WW = x > 1 ? R->r0[x - 2] : n->W;
    n->NN = R->r2 ? R->r2[x] : n->N;
}

typedef struct {
    int64_t u[NF];    /* the features (the wide pass) */
    uint64_t au[NF];  /* |u_j| */
    int32_t u32[NFP]; /* the narrow pass: the features, 0 from nf to nf4 */
    int nf, nf4;      /* features; nf rounded up to a multiple of 4 */
    int64_t norm;     /* 1 + sum |u_j|: the weight update's normaliser (the wide pass; the narrow one: adapt()) */
    int64_t s;        /* local sum */
    int64_t p4;       /* 4x the prediction, before clipping */
    int64_t p;        /* the prediction, clipped to the band's range */
    int mctx, sctx;   /* magnitude and sign contexts */
    int rctx;         /* replication mode: the full context, 16 equality context + mctx */
} predicted;

/* The magnitude context (neighbouring |q| of this band and the previous one, and the gradients in steps) and the sign
 * context of (b, y, x). */
/* wide_lut[v]: v9's magnitude context, how many of the edges 1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224,
 * 320, 448, 640, 896, 1280, 1792 are <= v (v >= 4095 counts as 4095: all 21); the first 15 edges are v4's
 * bucket_lut. Filled once at import. */
static unsigned char wide_lut[4096];

static void wide_init(void)
{
    static const int edges[NCTX - 1] = {1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224, 320, 448, 640,
                                        896, 1280, 1792};
    for (int v = 0; v < 4096; v++) {
        unsigned k = 0;
        while (k < NCTX - 1 && v >= edges[k])
            k++;
        wide_lut[v] = (unsigned char)k;
    }
}

/* trunc(a / d) for 0 <= a, 1 <= d: in 32 bits when both fit (a faster divide; the same quotient) */
static inline int64_t udiv64(int64_t a, int64_t d)
{
    if ((uint64_t)a <= 0xFFFFFFFFu && (uint64_t)d <= 0xFFFFFFFFu)
        return (int64_t)((uint32_t)a / (uint32_t)d);
    return a / d;
}

HOT void contexts(const row_t *R, int x, const nbhd *n, predicted *pr, const int v9, const int inner)
{
    const ptrdiff_t w = R->w;
    const uint8_t *q0 = R->qs0 + x;
    const uint8_t *m0 = R->qm0 + x;
    unsigned sW, sN, qW, qN, qNW, qNE, qWW;
    if (inner) {
        sW = q0[-1];
        sN = R->qs1[x];
        qW = m0[-1];
        qN = R->qm1[x];
        qNW = R->qm1[x - 1];
        qNE = R->qm1[x + 1];
        qWW = m0[-2];
    } else {
        sW = x > 0 ? q0[-1] : 0;
        sN = R->qs1 ? R->qs1[x] : sW;
        qW = x > 0 ? m0[-1] : 0;
        qN = R->qm1 ? R->qm1[x] : qW;
        qNW = (R->qm1 && x > 0) ? R->qm1[x - 1] : qN;
        qNE = (R->qm1 && x + 1 < w) ? R->qm1[x + 1] : qN;
        qWW = x > 1 ? m0[-2] : qW;
    }
    unsigned sB = R->b > 0 ? q0[-w] : 0;
    unsigned qB = R->b > 0 ? m0[-w] : qN;
    unsigned act = 2 * (qW + qN) + qNW + qNE + qWW + 2 * qB; /* about 8 |q| */
    int64_t grad = abs64(n->W - n->NW) + abs64(n->N - n->NW) + abs64(n->N - n->NE) + abs64(n->W - n->WW) +
                   abs64(n->N - n->NN);
    int64_t g = R->emax ? udiv64(grad, R->step) : grad; /* non-negative: truncation is floor */
    uint64_t v = ((uint64_t)act + (uint64_t)(g > 4096 ? 4096 : g) + 1) >> 1;
    pr->mctx = v9 ? wide_lut[v > 4095 ? 4095 : v] : bucket_lut[v > 255 ? 255 : v];
    pr->sctx = (int)(9 * sW + 3 * sN + sB); /* the signs of q at W, N and in the previous band */
}

/* narrow: every band's hi - lo < NARROW_SPAN (all 8- and 16-bit data): the features in 32 bits (|u| <= 4 (hi - lo))
 * and the sums in vector-friendly loops; the same integers as the wide pass. */
HOT void predict(const row_t *R, const band_models *m, int x, predicted *pr, const int v9, const int inner,
                 const int narrow)
{
    /* the narrow pass sums w_j u_j as it goes (no store and reload of the features before the sum: d is on the
     * critical path from one sample to the next) and leaves norm to adapt(); the wide pass stores them for the loop
     * below */
    const int32_t *wt = m->w;
    int64_t d = 0, norm = 1;
#define PUT(j, v)                                                                                                   \
    do {                                                                                                            \
        if (narrow) {                                                                                               \
            const int32_t v32 = (int32_t)(v);                                                                       \
            pr->u32[j] = v32;                                                                                       \
            d += (int64_t)wt[j] * v32;                                                                              \
        } else {                                                                                                    \
            pr->u[j] = (v);                                                                                         \
        }                                                                                                           \
    } while (0)
    const ptrdiff_t w = R->w;
    nbhd n;
    neighbours(R, x, &n, inner);
    int64_t s = n.N + n.W + n.NW + n.NE;
    PUT(0, 4 * n.N - s);
    PUT(1, 4 * n.W - s);
    PUT(2, 4 * n.NW - s);
    PUT(3, 4 * n.WW - s);
    PUT(4, 4 * n.NN - s);
    PUT(5, 4 * med(n.N, n.W, n.NW) - s);
    int nf = NSPATIAL;
    const int64_t *cd = R->cd0 + x;
    for (int k = 1; k <= R->npv; k++, nf++)
        PUT(nf, cd[-k * w]);
    if (R->b > 0) {
        PUT(nf, 4 * R->pe0[x - w]);
        nf++;
    }
    if (v9) { /* this band's prediction errors r - p at W, N, NW, NE, WW (0 where the neighbour is missing) */
        const int64_t *e0 = R->pe0 + x, *e1 = R->pe1;
        if (inner) {
            PUT(nf, 4 * e0[-1]);
            PUT(nf + 1, 4 * e1[x]);
            PUT(nf + 2, 4 * e1[x - 1]);
            PUT(nf + 3, 4 * e1[x + 1]);
            PUT(nf + 4, 4 * e0[-2]);
        } else {
            PUT(nf, x > 0 ? 4 * e0[-1] : 0);
            PUT(nf + 1, e1 ? 4 * e1[x] : 0);
            PUT(nf + 2, e1 && x > 0 ? 4 * e1[x - 1] : 0);
            PUT(nf + 3, e1 && x + 1 < w ? 4 * e1[x + 1] : 0);
            PUT(nf + 4, x > 1 ? 4 * e0[-2] : 0);
        }
        nf += NEF;
    }
#undef PUT
    pr->nf = nf;
    if (narrow) {
        const int nf4 = (nf + 3) & ~3;
        for (int j = nf; j < nf4; j++)
            pr->u32[j] = 0;
        pr->nf4 = nf4;
    } else {
        const int64_t *u = pr->u;
        for (int j = 0; j < nf; j++) {
            d += wt[j] * u[j];
            const uint64_t a = (uint64_t)abs64(u[j]);
            pr->au[j] = a;
            norm += (int64_t)a;
        }
        pr->norm = norm;
    }
    pr->s = s;
    pr->p4 = s + floor_shift(d, OMEGA); /* |d| < 2^60 */
    pr->p = clip64(floor_shift(pr->p4 + 2, 2), R->lo, R->hi);
    contexts(R, x, &n, pr, v9, inner);
}

/* The replication mode (v8): p = MED(N, W, NW), which copies W where N = NW and N where W = NW (no weights); the
 * context adds to v4's magnitude context the equalities W = NW, N = NW, N = NE, N = NN of the reconstructed
 * neighbours and the length (0..3) of the run of equal samples ending at W. */
HOT void predict_rep(const row_t *R, int x, predicted *pr, const int v9, const int inner)
{
    nbhd n;
    neighbours(R, x, &n, inner);
    pr->nf = pr->nf4 = 0;
    pr->s = n.N + n.W + n.NW + n.NE;
    pr->p = clip64(med(n.N, n.W, n.NW), R->lo, R->hi);
    pr->p4 = 4 * pr->p;
    contexts(R, x, &n, pr, v9, inner);
    const int64_t *r0 = R->r0 + x;
    int run = x == 0 ? 0 : (x == 1 || r0[-1] != r0[-2] ? 1 : (x == 2 || r0[-2] != r0[-3] ? 2 : 3));
    int eq = (n.W == n.NW) | (n.N == n.NW) << 1 | (n.N == n.NE) << 2 | (n.N == n.NN) << 3;
    pr->rctx = (4 * eq + run) * NCTX + pr->mctx;
}

/* trunc(a / d) for the weight update's |a| < 2^54 (below) and 8 <= d < 2^62, computed for every j with one divisor:
 * where the compiler has 128-bit integers (GCC and Clang on x86-64 and aarch64), by a multiply with the exact
 * reciprocal M = ceil(2^(61 + l) / d), l = ceil(log2 d): with M d = 2^(61 + l) + e, 0 <= e < d <= 2^l, for
 * 0 <= n < 2^61 n M / 2^(61 + l) = n / d + n e / (d 2^(61 + l)) and the last term is below 1 / d, so the floor is
 * floor(n / d) (Granlund and Montgomery 1994); elsewhere by C99 division. The same integers either way. With d >= 8,
 * 61 + l >= 64: the quotient is the high 64 bits of n M shifted right by l - 3. */
typedef struct {
    uint64_t d;
#if defined(__SIZEOF_INT128__)
    uint64_t m; /* M < 2^62 */
    int s;      /* l - 3 */
#endif
} divisor;

static inline divisor divisor_of(uint64_t d) /* d >= 8 */
{
    divisor v;
    v.d = d;
#if defined(__SIZEOF_INT128__)
    int l = bitlen(d - 1);
    v.s = l - 3;
#if defined(__GNUC__) && defined(__x86_64__)
    /* the same division, (2^(l - 3) 2^64 + d - 1) / d, in one divq (the quotient fits: 2^(l - 3) < d) */
    uint64_t q, r;
    __asm__("divq %4" : "=a"(q), "=d"(r) : "a"(d - 1), "d"((uint64_t)1 << (l - 3)), "rm"(d));
    v.m = q;
#else
    v.m = (uint64_t)((((unsigned __int128)1 << (61 + l)) + d - 1) / d);
#endif
#endif
    return v;
}

static inline uint64_t udiv_by(uint64_t n, const divisor *v) /* n < 2^61 */
{
#if defined(__SIZEOF_INT128__)
    return (uint64_t)(((unsigned __int128)n * v->m) >> 64) >> v->s;
#else
    return n / v->d;
#endif
}

/* Normalised LMS: w_j += mu * c * u_j / (1 + sum |u|), c the error 4r - p4 in eighths of its running mean,
 * clipped to +-ERR_CLIP; mu = 2^(16 - shift), shift from 3 to 7 as the band's coded samples grow. */
HOT void adapt(band_models *m, const predicted *pr, int64_t rec, const int narrow)
{
    int64_t err4 = 4 * rec - pr->p4;
    int64_t aerr16 = abs64(err4) * 16;
    if (err4 != 0) {
        int64_t norm = narrow ? 0 : pr->norm;
        int64_t shift = MU_SHIFT_MIN + m->coded / MU_SHIFT_EVERY;
        int64_t mu = (int64_t)1 << (OMEGA - (shift > MU_SHIFT_MAX ? MU_SHIFT_MAX : shift));
        int64_t c = udiv64(abs64(err4) * 8, m->aerr / 16 + 1); /* |c|, aerr >= 0 */
        c = c > ERR_CLIP ? ERR_CLIP : c;
        if (c != 0) { /* c = 0 (an error under an eighth of the running mean) moves no weight: skip the loop */
            /* dw_j = trunc(u_j mu c / (8 norm)): its magnitude floor(|u_j| |mu c| / (8 norm)) (|u_j| < 2^36, mu <= 2^13,
             * |c| <= 2^5: below 2^54), by the reciprocal, then the sign of u_j mu c. |u_j| < norm, so |dw_j| <=
             * mu |c| / 8 <= 2^15 and |w_j + dw_j| < 2^20: in 32 bits. */
            const uint64_t amc = (uint64_t)(mu * c);
            const int neg = err4 < 0;
            const int nf = pr->nf;
            int32_t *w = m->w;
            if (narrow) { /* norm = 1 + sum_j |u_j| < 2^31 */
                uint32_t sa = 0;
#if PR_SSE2
                __m128i va = _mm_setzero_si128();
                for (int j = 0; j < pr->nf4; j += 4) {
                    const __m128i uv = _mm_loadu_si128((const __m128i *)(pr->u32 + j)), us = _mm_srai_epi32(uv, 31);
                    va = _mm_add_epi32(va, _mm_sub_epi32(_mm_xor_si128(uv, us), us));
                }
                va = _mm_add_epi32(va, _mm_shuffle_epi32(va, 0x4E));
                va = _mm_add_epi32(va, _mm_shuffle_epi32(va, 0xB1));
                sa = (uint32_t)_mm_cvtsi128_si32(va);
#else
                for (int j = 0; j < nf; j++)
                    sa += (uint32_t)(pr->u32[j] < 0 ? -pr->u32[j] : pr->u32[j]);
#endif
                norm = 1 + (int64_t)sa;
            }
            const uint64_t kk = amc / 8, n = (uint64_t)norm; /* |dw_j| = floor(|u_j| kk / norm): mu / 8 >= 2^6 */
            if (narrow && n * kk < ((uint64_t)1 << 31)) {
                /* as below in 32-bit lanes: |u_j| kk < norm kk < 2^31 and M <= 2 norm kk < 2^32, their product below
                 * 2^63; the padding (u_j = 0) moves nothing */
                const int k = bitlen(n * n * kk - 1);
                const uint32_t k32 = (uint32_t)kk, m32 = (uint32_t)((((uint64_t)1 << k) + n - 1) / n);
                const int nf4 = pr->nf4;
#if PR_SSE2
                /* the loop below, 4 lanes: |u_j| kk (32-bit products, from the even and odd lanes' 64-bit ones), times
                 * M in 64 bits, >> k; the sign as a mask; the clip by compare and select */
                const __m128i kv = _mm_set1_epi32((int32_t)k32), mv = _mm_set1_epi32((int32_t)m32);
                const __m128i sh = _mm_cvtsi32_si128(k), en = _mm_set1_epi32(-neg);
                const __m128i hi = _mm_set1_epi32((int32_t)W_LIMIT), lo = _mm_set1_epi32(-(int32_t)W_LIMIT);
                for (int j = 0; j < nf4; j += 4) {
                    const __m128i uv = _mm_loadu_si128((const __m128i *)(pr->u32 + j));
                    const __m128i us = _mm_srai_epi32(uv, 31), av = _mm_sub_epi32(_mm_xor_si128(uv, us), us);
                    const __m128i te = _mm_mul_epu32(av, kv), to = _mm_mul_epu32(_mm_srli_epi64(av, 32), kv);
                    const __m128i qe = _mm_srl_epi64(_mm_mul_epu32(te, mv), sh);
                    const __m128i qo = _mm_srl_epi64(_mm_mul_epu32(to, mv), sh);
                    const __m128i q = _mm_or_si128(qe, _mm_slli_epi64(qo, 32)); /* q < 2^15: the high halves 0 */
                    const __m128i sg = _mm_xor_si128(us, en);
                    __m128i nw = _mm_add_epi32(_mm_loadu_si128((const __m128i *)(w + j)),
                                               _mm_sub_epi32(_mm_xor_si128(q, sg), sg));
                    const __m128i over = _mm_cmpgt_epi32(nw, hi), under = _mm_cmpgt_epi32(lo, nw);
                    nw = _mm_or_si128(_mm_and_si128(over, hi), _mm_andnot_si128(over, nw));
                    nw = _mm_or_si128(_mm_and_si128(under, lo), _mm_andnot_si128(under, nw));
                    _mm_storeu_si128((__m128i *)(w + j), nw);
                }
#else
                for (int j = 0; j < nf4; j++) {
                    const uint32_t a = (uint32_t)(pr->u32[j] < 0 ? -pr->u32[j] : pr->u32[j]);
                    const int32_t q = (int32_t)(((uint64_t)(a * k32) * m32) >> k);
                    const int32_t nw = w[j] + ((pr->u32[j] < 0) != neg ? -q : q);
                    w[j] = nw > (int32_t)W_LIMIT ? (int32_t)W_LIMIT : (nw < -(int32_t)W_LIMIT ? -(int32_t)W_LIMIT : nw);
                }
#endif
            } else if (narrow) {
                const divisor by = divisor_of(n * 8);
                for (int j = 0; j < nf; j++) {
                    const uint64_t a = (uint64_t)(pr->u32[j] < 0 ? -(int64_t)pr->u32[j] : pr->u32[j]);
                    const int32_t q = (int32_t)udiv_by(a * amc, &by);
                    const int32_t nw = w[j] + ((pr->u32[j] < 0) != neg ? -q : q);
                    w[j] = nw > W_LIMIT ? (int32_t)W_LIMIT : (nw < -W_LIMIT ? (int32_t)-W_LIMIT : nw);
                }
            } else if (n * kk < ((uint64_t)1 << 31)) {
                /* the same quotients in 64 bits: M = ceil(2^k / norm) with norm^2 kk <= 2^k gives floor(|u_j| kk M /
                 * 2^k) = floor(|u_j| kk / norm) (|u_j| kk norm <= 2^k), and |u_j| kk M < 2^64 */
                const int k = bitlen(n * n * kk - 1);
                const uint64_t p = kk * ((((uint64_t)1 << k) + n - 1) / n);
                for (int j = 0; j < nf; j++) {
                    const int64_t q = (int64_t)((pr->au[j] * p) >> k);
                    const int64_t nw = w[j] + ((pr->u[j] < 0) != neg ? -q : q);
                    w[j] = (int32_t)(nw > W_LIMIT ? W_LIMIT : (nw < -W_LIMIT ? -W_LIMIT : nw));
                }
            } else {
                const divisor by = divisor_of(n * 8); /* norm < 23 2^36 + 1 */
                for (int j = 0; j < nf; j++) {
                    const int32_t q = (int32_t)udiv_by(pr->au[j] * amc, &by);
                    const int32_t nw = w[j] + ((pr->u[j] < 0) != neg ? -q : q);
                    w[j] = nw > W_LIMIT ? (int32_t)W_LIMIT : (nw < -W_LIMIT ? (int32_t)-W_LIMIT : nw);
                }
            }
        }
    }
    m->aerr += aerr16 >= m->aerr ? (aerr16 - m->aerr) >> 5 : -((m->aerr - aerr16) >> 5);
    m->coded++;
}

/* Where the encoder's bits go: the coder, and (cost != NULL) a size estimate in 1/256 bits per band (the encoder's
 * choice of each band's mode). The coder's low and range are kept here, in the pass's own variables, not in the
 * encoder (_bincoder.h's enc_bit and enc_raw on them: the same integers): the compiler keeps them in registers from
 * one bit to the next. run_tile_impl hands them back to the encoder at the end. */
typedef struct {
    encoder *e;
    int64_t *cost;
    uint64_t low;
    uint32_t range;
    int code;      /* 0: the size estimate alone (no coder; e NULL): a constant of the pass */
} sink;

/* enc_shift_low's output (low has a carry or its top byte is final): the cached byte plus the carry, then the
 * pending 0xFF bytes (each plus the carry) */
static void flush_cached(encoder *e, uint64_t low)
{
    uint8_t carry = (uint8_t)(low >> 32);
    uint8_t temp = e->cache;
    do {
        if (e->len < e->cap)
            e->buf[e->len++] = (uint8_t)(temp + carry);
        else
            enc_byte(e, (uint8_t)(temp + carry));
        temp = 0xFF;
    } while (--e->cache_size != 0);
    e->cache = (uint8_t)(low >> 24);
}

/* enc_bit_p's and enc_raw's renormalisation: a byte out (enc_shift_low) while range < 2^24; the usual output, the
 * cached byte alone into a buffer with room, inline */
HOT void renorm(sink *s)
{
    while (s->range < (1u << 24)) {
        encoder *e = s->e;
        s->range <<= 8;
        if ((uint32_t)s->low < 0xFF000000u || (s->low >> 32) != 0) {
            if (e->cache_size == 1 && e->len < e->cap) {
                e->buf[e->len++] = (uint8_t)(e->cache + (uint8_t)(s->low >> 32));
                e->cache = (uint8_t)(s->low >> 24);
                e->cache_size = 0;
            } else {
                flush_cached(e, s->low);
            }
        }
        e->cache_size++;
        s->low = (s->low & 0x00FFFFFFu) << 8;
    }
}

/* cost_lut[i]: -log2((16 i + 8) / 2^16) in 1/256 bits, i = 0..4095 (integer only; filled once at import) */
static uint16_t cost_lut[4096];

static void cost_init(void)
{
    for (uint32_t i = 0; i < 4096; i++) {
        uint64_t x = 16 * i + 8, m;
        int k = bitlen(x) - 1, frac = 0;
        m = x << (31 - k); /* in [2^31, 2^32): log2 = k + log2(m / 2^31) */
        for (int j = 7; j >= 0; j--) { /* the fraction's bits by squaring */
            m = (m * m) >> 31;
            if (m >= ((uint64_t)1 << 32)) {
                frac |= 1 << j;
                m >>= 1;
            }
        }
        cost_lut[i] = (uint16_t)((16 << COST_FRAC) - ((k << COST_FRAC) + frac));
    }
}

HOT void put_bit(sink *s, bitmodel *m, int bit)
{
    const uint32_t p = model_p(m);
    if (s->cost)
        *s->cost += cost_lut[(bit ? 65536 - p : p) >> 4];
    if (s->code) {
        const uint32_t bound = (s->range >> 16) * p; /* enc_bit */
        if (!bit) {
            s->range = bound;
        } else {
            s->low += bound;
            s->range -= bound;
        }
        renorm(s);
    }
    model_update(m, bit);
}

/* put_bit for a bit the encoder cannot foresee (zero flag, sign, the mantissa's two modelled bits): the same integers
 * with masks instead of branches on the bit */
HOT void put_bit_bf(sink *s, bitmodel *m, int bit)
{
    const uint32_t p = model_p(m);
    const uint32_t mask = 0u - (uint32_t)bit;
    if (s->cost)
        *s->cost += cost_lut[(p ^ ((p ^ (65536 - p)) & mask)) >> 4];
    if (s->code) {
        const uint32_t bound = (s->range >> 16) * p;
        s->low += bound & mask;
        s->range = bound ^ ((bound ^ (s->range - bound)) & mask);
        renorm(s);
    }
    if (m->n >= RATES_SETTLED) {
        const uint32_t fa = m->fast, sa = m->slow;
        const uint32_t f1 = fa - (fa >> FAST_SHIFT), f0 = fa + ((65535 - fa) >> FAST_SHIFT);
        const uint32_t s1 = sa - (sa >> SLOW_SHIFT), s0 = sa + ((65535 - sa) >> SLOW_SHIFT);
        m->fast = (uint16_t)(f0 ^ ((f0 ^ f1) & mask));
        m->slow = (uint16_t)(s0 ^ ((s0 ^ s1) & mask));
    } else {
        model_update(m, bit);
    }
}

HOT void put_raw(sink *s, uint32_t value, int n)
{
    if (s->cost)
        *s->cost += (int64_t)n << COST_FRAC;
    if (s->code) {
        const uint32_t r = s->range >> n; /* enc_raw */
        s->low += (uint64_t)r * value;
        s->range = r;
        renorm(s);
    }
}

/* _bincoder.h's adaptive Elias-gamma code of v >= 1, with unary position i < nlo modelled by low[i] instead of
 * unary[i] (the replication mode's full contexts; nlo = 0: enc_gamma's bits exactly; the inverse is dec_gamma_low). */
HOT void put_gamma(sink *s, bitmodel *low, int nlo, bitmodel *unary, bitmodel *mant1, bitmodel (*mant2)[2],
                      uint64_t v)
{
    int k = bitlen(v) - 1;
    for (int i = 0; i < k; i++)
        put_bit(s, i < nlo ? &low[i] : &unary[i], 1);
    if (k < KMAX)
        put_bit(s, k < nlo ? &low[k] : &unary[k], 0);
    if (k >= 1) {
        int top = (int)((v >> (k - 1)) & 1);
        put_bit_bf(s, &mant1[k], top);
        if (k >= 2)
            put_bit_bf(s, &mant2[k][top], (int)((v >> (k - 2)) & 1));
        for (int i = k - 2; i > 0; i -= 16) {
            int n = i < 16 ? i : 16;
            put_raw(s, (uint32_t)((v >> (i - n)) & ((1u << n) - 1)), n);
        }
    }
}

/* q = 0: one bit (model zero[mctx]; replication mode: rzero[rctx]). Otherwise the sign (sign[sctx]), then v = |q| >= 1
 * as an adaptive Elias-gamma code with the models of magnitude context mctx: k = bitlen(v) - 1 in unary (unary[mctx][i]
 * per position; replication mode: runary[rctx][i] for i < NLOW; no terminating 0 when k = KMAX), the bit below the
 * leading one (mant1[mctx][k]), the next (mant2[mctx][k][bit above]), the rest at probability 1/2. */
HOT void code_q(sink *s, band_models *m, const predicted *pr, int rep, int64_t q)
{
    int c = pr->mctx;
    put_bit(s, rep ? &m->rzero[pr->rctx] : &m->zero[c], q != 0);
    if (!q)
        return;
    put_bit(s, &m->sign[pr->sctx], q < 0);
    put_gamma(s, rep ? m->runary[pr->rctx] : NULL, rep ? NLOW : 0, m->unary[c], m->mant1[c], m->mant2[c],
              (uint64_t)abs64(q));
}

/* The inverse of code_q. The input's bound, checked where it is read: |q| <= qmax = floor((hi - lo + E) / (2E + 1)),
 * the largest an encoder writes (|x - p| <= hi - lo, as both lie in the band's range, and q = sign(e) floor((|e| +
 * E) / (2E + 1))); anything larger is PR_ERR_RANGE. With hi - lo <= 2^34 and E <= 2^33 (check_bounds), |q| <= 2^34
 * and |q (2E + 1)| <= hi - lo + E < 2^35: the reconstruction p + q (2E + 1) stays far inside int64. Before the
 * check v < 2^41 (KMAX 40 prefix bits, the mantissa built in uint64). */
HOT int decode_q(decoder *d, band_models *m, const predicted *pr, int rep, int64_t qmax, int64_t *q)
{
    int c = pr->mctx;
    if (!dec_bit(d, rep ? &m->rzero[pr->rctx] : &m->zero[c])) {
        *q = 0;
        return PR_OK;
    }
    int neg = dec_bit(d, &m->sign[pr->sctx]);
    uint64_t v = dec_gamma_low(d, rep ? m->runary[pr->rctx] : NULL, rep ? NLOW : 0, m->unary[c], m->mant1[c],
                               m->mant2[c], KMAX);
    if (v > (uint64_t)qmax)
        return PR_ERR_RANGE;
    *q = neg ? -(int64_t)v : (int64_t)v;
    return PR_OK;
}

/* ------------------------------------------------------------------------------------------------------ */
/* One pass over the tile; enc != NULL encodes x, otherwise decodes from dec into t->r.                   */

/* Whether any sample of the block anchored at (ay, ax) of band b is not skipped. */
static int block_has_coded(const tile_t *t, int b, int ay, int ax, const uint8_t *rp)
{
    int y1 = ay + rp[0], x1 = ax + rp[1];
    if (ay == 0 && rp[2] > 0)
        y1 = rp[2]; /* the first, partial block */
    if (ax == 0 && rp[3] > 0)
        x1 = rp[3];
    for (int y = ay; y < y1 && y < t->h; y++)
        for (int x = ax; x < x1 && x < t->w; x++)
            if (!t->skip[AT(t, b, y, x)])
                return 1;
    return 0;
}

/* What later samples read of sample x of the row: its value, central difference, residual and prediction error. */
HOT void settle(const row_t *R, int x, int64_t rec, int64_t s, unsigned qs, unsigned qm, int64_t pe)
{
    R->r0[x] = rec;
    R->cd0[x] = 4 * rec - s;
    R->qs0[x] = (uint8_t)qs;
    R->qm0[x] = (uint8_t)qm;
    R->pe0[x] = pe;
}

/* One sample, x of the row R (band b, row y): predicted, then coded (xs != NULL: xs is the row's input), or decoded
 * from dec; settled; the weights adapted. PR_OK or a decoding error. */
HOT int sample(tile_t *t, const row_t *R, band_models *m, const int64_t *xs, sink *out, decoder *dec, int b, int y,
               int i, const uint8_t *rp, int blocks, int rep, int64_t qmax, Py_ssize_t *where, const int v9,
               const int inner, const int narrow)
{
    if (blocks) {
        int ay = R->ay, ax = R->ax[i];
        if (ay != y || ax != i) { /* ay >= y - 15: its ring row is still there */
            size_t from = AT(t, b, ay, ax), rfrom = RAT(t, b, ay, ax);
            R->r0[i] = t->r[from]; /* the local sum needs W, which precedes: value first */
            nbhd n;
            neighbours(R, i, &n, inner);
            settle(R, i, t->r[from], n.N + n.W + n.NW + n.NE, t->qs[rfrom], t->qm[rfrom], t->perr[rfrom]);
            return PR_OK;
        }
    }
    predicted pr;
    if (rep)
        predict_rep(R, i, &pr, v9, inner);
    else
        predict(R, m, i, &pr, v9, inner, narrow);
    if (R->skip[i] && !(blocks && block_has_coded(t, b, y, i, rp))) {
        settle(R, i, pr.p, pr.s, 0, 0, 0);
        return PR_OK;
    }
    const int64_t step = R->step;
    int64_t q;
    if (xs) {
        int64_t e = xs[i] - pr.p;
        if (step == 1)
            q = e; /* lossless */
        else
            q = e >= 0 ? udiv64(e + R->emax, step) : -udiv64(-e + R->emax, step);
        code_q(out, m, &pr, rep, q);
    } else {
        int st = decode_q(dec, m, &pr, rep, qmax, &q);
        if (st == PR_OK && dec->overrun > 4)
            st = PR_ERR_TRUNCATED;
        if (st != PR_OK) {
            *where = (Py_ssize_t)AT(t, b, y, i);
            return st;
        }
    }
    int64_t rec = clip64(pr.p + q * step, R->lo, R->hi); /* |p| <= 2^33, |q step| <= 2^35 */
    settle(R, i, rec, pr.s, (unsigned)tri(q), (unsigned)mag255(q), rec - pr.p);
    if (!rep) /* the replication mode has no weights to adapt */
        adapt(m, &pr, rec, narrow);
    return PR_OK;
}

/* One pass: x != NULL codes x into enc (and, cost != NULL, estimates each band's bits into cost[c]; enc NULL: only
 * estimates them); otherwise decodes from dec into t->r. Inlined into run_encode, run_estimate, run_costs and
 * run_decode, each with constant arguments. */
HOT int run_tile_impl(tile_t *t, const int64_t *x, encoder *enc, int64_t *cost, decoder *dec, Py_ssize_t *where,
                      const int v9, const int narrow)
{
    for (int b = 0; b < t->c; b++)
        band_init(&t->m[b], t->mode[b], v9);
    sink out = {enc, NULL, enc ? enc->low : 0, enc ? enc->range : 0, enc != NULL};
    const int w = t->w;
    for (int y = 0; y < t->h; y++) {
        for (int b = 0; b < t->c; b++) {
            row_t R;
            row_init(t, &R, b, y, v9);
            /* step <= 2^34 + 1, and q read within +-qmax: |q step| <= hi - lo + E <= 2^35 (check_bounds) */
            const int64_t qmax = (R.hi - R.lo + R.emax) / R.step;
            const uint8_t *rp = t->rep + 4 * b;
            const int rep = t->mode[b], blocks = rp[0] > 1 || rp[1] > 1;
            const int64_t *xs = x ? x + AT(t, b, y, 0) : NULL;
            band_models *m = &t->m[b];
            if (cost)
                out.cost = cost + b;
            /* the interior columns 2 .. w - 2 of rows from 2 on (inner: every neighbour there), the others; v4's
             * predictor without replication blocks (most bands) with those constant too */
            const int i0 = y > 1 && w > 3 ? 2 : w, i1 = y > 1 && w > 3 ? w - 1 : w;
#define SAMPLES(from, to, BLOCKS, REP, INNER)                                                                    \
    for (int i = (from); i < (to); i++) {                                                                       \
        int st = sample(t, &R, m, xs, &out, dec, b, y, i, rp, BLOCKS, REP, qmax, where, v9, INNER, narrow);     \
        if (st != PR_OK)                                                                                        \
            return st;                                                                                          \
    }
            if (!rep && !blocks) {
                SAMPLES(0, i0, 0, 0, 0)
                SAMPLES(i0, i1, 0, 0, 1)
                SAMPLES(i1, w, 0, 0, 0)
            } else {
                SAMPLES(0, i0, blocks, rep, 0)
                SAMPLES(i0, i1, blocks, rep, 1)
                SAMPLES(i1, w, blocks, rep, 0)
            }
#undef SAMPLES
        }
    }
    if (enc) { /* the coder's state back to the encoder (enc_finish) */
        enc->low = out.low;
        enc->range = out.range;
    }
    return PR_OK;
}

/* Whether every band's hi - lo is below NARROW_SPAN (the narrow pass's 32-bit features) */
static int narrow_tile(const tile_t *t)
{
    for (int b = 0; b < t->c; b++)
        if (t->hi[b] - t->lo[b] >= NARROW_SPAN)
            return 0;
    return 1;
}

/* run_tile_impl specialised: encode (cost: estimate too; costs: the estimate alone) or decode, v9 or an older
 * format, narrow or wide */
#define DISPATCH(x, enc, cost, dec)                                                                                 \
    (narrow_tile(t) ? (t->v9 ? run_tile_impl(t, x, enc, cost, dec, where, 1, 1)                                    \
                             : run_tile_impl(t, x, enc, cost, dec, where, 0, 1))                                   \
                    : (t->v9 ? run_tile_impl(t, x, enc, cost, dec, where, 1, 0)                                    \
                             : run_tile_impl(t, x, enc, cost, dec, where, 0, 0)))

static int run_encode(tile_t *t, const int64_t *x, encoder *enc, Py_ssize_t *where)
{
    return DISPATCH(x, enc, NULL, NULL);
}

static int run_estimate(tile_t *t, const int64_t *x, encoder *enc, int64_t *cost, Py_ssize_t *where)
{
    return DISPATCH(x, enc, cost, NULL);
}

static int run_costs(tile_t *t, const int64_t *x, int64_t *cost, Py_ssize_t *where)
{
    return DISPATCH(x, NULL, cost, NULL);
}

static int run_decode(tile_t *t, decoder *dec, Py_ssize_t *where)
{
    return DISPATCH(NULL, NULL, NULL, dec);
}
#undef DISPATCH

/* ------------------------------------------------------------------------------------------------------ */
/* Python glue.                                                                                            */

typedef struct {
    Py_buffer x, skip, emax, lo, hi, out, rep, mode;
    int have[8];
} views;

static void release(views *v)
{
    Py_buffer *all[8] = {&v->x, &v->skip, &v->emax, &v->lo, &v->hi, &v->out, &v->rep, &v->mode};
    for (int i = 0; i < 8; i++)
        if (v->have[i])
            PyBuffer_Release(all[i]);
}

static int get_view(PyObject *o, Py_buffer *view, int *have, Py_ssize_t want_bytes, int writable, const char *name)
{
    if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    *have = 1;
    if (view->len != want_bytes) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes, expected %zd", name, view->len, want_bytes);
        return -1;
    }
    return 0;
}

static int check_bounds(int c, const int64_t *emax, const int64_t *lo, const int64_t *hi, const uint8_t *rep,
                        const uint8_t *mode)
{
    for (int b = 0; b < c; b++) {
        if (mode[b] > 1) {
            PyErr_Format(PyExc_ValueError, "band %d: mode %d is not 0 (v4's predictor) or 1 (replication)", b,
                         mode[b]);
            return -1;
        }
        const uint8_t *r = rep + 4 * b;
        if (r[0] < 1 || r[0] > 16 || r[1] < 1 || r[1] > 16 || r[2] >= r[0] || r[3] >= r[1]) {
            PyErr_Format(PyExc_ValueError, "band %d: replication %d x %d at (%d, %d) is not 1..16 with offsets "
                         "below it", b, r[0], r[1], r[2], r[3]);
            return -1;
        }
        if (emax[b] < 0 || emax[b] > SAMPLE_LIMIT || lo[b] < -SAMPLE_LIMIT || hi[b] > SAMPLE_LIMIT || lo[b] > hi[b]) {
            PyErr_Format(PyExc_ValueError, "band %d: max error or range out of bounds", b);
            return -1;
        }
    }
    return 0;
}

/* The optional modes argument: uint8[C] (None or absent: every band in mode 0, v4's predictor). */
static const uint8_t ZERO_MODES[MAX_BANDS > 255 ? MAX_BANDS : 255] = {0};

static const uint8_t *get_modes(PyObject *o, views *v, int c)
{
    if (o == NULL || o == Py_None)
        return ZERO_MODES;
    if (get_view(o, &v->mode, &v->have[7], (Py_ssize_t)c, 0, "modes"))
        return NULL;
    return v->mode.buf;
}

static int tile_alloc(tile_t *t, int c, int h, int w)
{
    size_t n = (size_t)RING * c * w; /* the ring rows */
    t->c = c;
    t->h = h;
    t->w = w;
    t->qs = malloc(n ? n : 1);
    t->qm = malloc(n ? n : 1);
    t->perr = malloc((n ? n : 1) * sizeof(int64_t));
    t->cdiff = malloc((n ? n : 1) * sizeof(int64_t));
    t->m = malloc(sizeof(band_models) * (size_t)c);
    t->acol = malloc(sizeof(int) * (size_t)c * (size_t)w);
    if (!(t->qs && t->qm && t->perr && t->cdiff && t->m && t->acol))
        return -1;
    for (int b = 0; b < c; b++) /* t->rep is set (check_bounds) */
        for (int x = 0; x < w; x++)
            t->acol[(size_t)b * w + x] = anchor(x, t->rep[4 * b + 1], t->rep[4 * b + 3]);
    return 0;
}

static void tile_free(tile_t *t)
{
    free(t->qs);
    free(t->qm);
    free(t->perr);
    free(t->cdiff);
    free(t->m);
    free(t->acol);
}

/* A lower bound on the samples run_tile decodes a q for (each costs at least one binary decision): those not
 * skipped that are their own block's anchor (a skipped anchor of a block with a coded sample is coded too). */
static uint64_t coded_at_least(const tile_t *t, int c, int h, int w)
{
    uint64_t n = 0;
    for (int b = 0; b < c; b++) {
        const uint8_t *rp = t->rep + 4 * b, *sk = t->skip + (size_t)b * h * w;
        const int kx = rp[1], ox = rp[3]; /* the anchor columns: 0, then ox, ox + kx, ... (ox < kx: check_bounds) */
        for (int y = 0; y < h; y++) {
            if (anchor(y, rp[0], rp[2]) != y)
                continue;
            const uint8_t *row = sk + (size_t)y * w;
            n += ox > 0 && !row[0];
            for (int x = ox; x < w; x += kx)
                n += !row[x];
        }
    }
    return n;
}

/* encode(x int64[C*H*W], skip uint8[C*H*W], rep uint8[C*4], C, H, W, emax int64[C], lo int64[C], hi int64[C]
 * [, modes uint8[C]]) -> bytes; encode_costs(the same) -> (bytes, tuple of C ints: each band's estimated bits in
 * 1/256); costs(the same) -> that tuple alone (want_cost 2: no coder runs, the same estimates) */
static PyObject *encode_or_cost(PyObject *args, int want_cost)
{
    PyObject *xo, *so, *ro, *eo, *loo, *hio, *mo = NULL;
    int c, h, w, v9 = 0;
    if (!PyArg_ParseTuple(args, "OOOiiiOOO|Op", &xo, &so, &ro, &c, &h, &w, &eo, &loo, &hio, &mo, &v9))
        return NULL;
    if (c < 1 || c > 255 || h < 1 || w < 1 || h > 65535 || w > 65535) {
        PyErr_SetString(PyExc_ValueError, "bad tile shape");
        return NULL;
    }
    Py_ssize_t n = (Py_ssize_t)c * h * w;
    views v;
    memset(&v, 0, sizeof v);
    const uint8_t *mode = NULL;
    if (get_view(xo, &v.x, &v.have[0], n * 8, 0, "x") || get_view(so, &v.skip, &v.have[1], n, 0, "skip") ||
        get_view(eo, &v.emax, &v.have[2], (Py_ssize_t)c * 8, 0, "max_error") ||
        get_view(loo, &v.lo, &v.have[3], (Py_ssize_t)c * 8, 0, "lo") ||
        get_view(hio, &v.hi, &v.have[4], (Py_ssize_t)c * 8, 0, "hi") ||
        get_view(ro, &v.rep, &v.have[6], (Py_ssize_t)c * 4, 0, "rep") || !(mode = get_modes(mo, &v, c))) {
        release(&v);
        return NULL;
    }
    const int64_t *x = v.x.buf, *emax = v.emax.buf, *lo = v.lo.buf, *hi = v.hi.buf;
    const uint8_t *skip = v.skip.buf;
    if (check_bounds(c, emax, lo, hi, v.rep.buf, mode)) {
        release(&v);
        return NULL;
    }
    const Py_ssize_t plane = (Py_ssize_t)h * w;
    for (int b = 0; b < c; b++) {
        for (Py_ssize_t i = b * plane; i < (b + 1) * plane; i++) {
            if (!skip[i] && (x[i] < lo[b] || x[i] > hi[b])) {
                release(&v);
                PyErr_Format(PyExc_ValueError, "sample %zd of band %d lies outside the band range", i, b);
                return NULL;
            }
        }
    }
    tile_t t;
    memset(&t, 0, sizeof t);
    t.emax = emax;
    t.lo = lo;
    t.hi = hi;
    t.skip = skip;
    t.rep = v.rep.buf;
    t.mode = mode;
    t.v9 = v9;
    t.r = malloc((size_t)n * sizeof(int64_t));
    encoder e = {0, 0xFFFFFFFFu, 0, 1, NULL, 0, 0, 0};
    int64_t *cost = want_cost ? calloc((size_t)c, sizeof(int64_t)) : NULL;
    int st = PR_ERR_NOMEM;
    Py_ssize_t where = 0;
    if (t.r && (cost || !want_cost) && tile_alloc(&t, c, h, w) == 0) {
        Py_BEGIN_ALLOW_THREADS
        st = want_cost == 2 ? run_costs(&t, x, cost, &where)
             : cost           ? run_estimate(&t, x, &e, cost, &where)
                              : run_encode(&t, x, &e, &where);
        enc_finish(&e);
        Py_END_ALLOW_THREADS
        if (e.oom)
            st = PR_ERR_NOMEM;
    }
    free(t.r);
    tile_free(&t);
    release(&v);
    PyObject *res = NULL;
    if (st != PR_OK)
        PyErr_NoMemory();
    else if (want_cost == 2)
        res = PyBytes_FromStringAndSize(NULL, 0);
    else if (e.len < 1 || e.buf[0] != 0) /* cannot happen: low < 2^32 before the first shift */
        PyErr_SetString(PyExc_RuntimeError, "predictive coder: first byte not zero");
    else
        res = PyBytes_FromStringAndSize((const char *)e.buf + 1, (Py_ssize_t)e.len - 1); /* byte 0 is always 0 */
    if (res && want_cost) { /* (bytes, (cost per band, ...)), or the costs alone */
        PyObject *costs = PyTuple_New(c);
        for (int b = 0; costs && b < c; b++) {
            PyObject *o = PyLong_FromLongLong(cost[b]);
            if (!o) {
                Py_CLEAR(costs);
                break;
            }
            PyTuple_SET_ITEM(costs, b, o);
        }
        PyObject *out = NULL;
        if (costs && want_cost == 2) { /* costs(): the tuple alone */
            out = costs;
            costs = NULL;
        } else if (costs) {
            out = PyTuple_Pack(2, res, costs);
        }
        Py_XDECREF(costs);
        Py_DECREF(res);
        res = out;
    }
    free(cost);
    free(e.buf);
    return res;
}

static PyObject *pr_encode(PyObject *self, PyObject *args) { return encode_or_cost(args, 0); }

static PyObject *pr_encode_costs(PyObject *self, PyObject *args) { return encode_or_cost(args, 1); }

static PyObject *pr_costs(PyObject *self, PyObject *args) { return encode_or_cost(args, 2); }

/* decode(data, skip uint8[C*H*W], rep uint8[C*4], C, H, W, emax, lo, hi, out int64[C*H*W] writable
 * [, modes uint8[C]]) -> (status, detail) */
static PyObject *pr_decode(PyObject *self, PyObject *args)
{
    Py_buffer data;
    PyObject *so, *ro, *eo, *loo, *hio, *oo, *mo = NULL;
    int c, h, w, v9 = 0;
    const uint8_t *mode = NULL;
    if (!PyArg_ParseTuple(args, "y*OOiiiOOOO|Op", &data, &so, &ro, &c, &h, &w, &eo, &loo, &hio, &oo, &mo, &v9))
        return NULL;
    if (c < 1 || c > MAX_BANDS || h < 1 || w < 1 || h > MAX_EDGE || w > MAX_EDGE) { /* the format's limits */
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "bad tile shape: 1..32 bands, 1..2048 rows and columns");
        return NULL;
    }
    Py_ssize_t n = (Py_ssize_t)c * h * w;
    views v;
    memset(&v, 0, sizeof v);
    if (get_view(so, &v.skip, &v.have[1], n, 0, "skip") ||
        get_view(eo, &v.emax, &v.have[2], (Py_ssize_t)c * 8, 0, "max_error") ||
        get_view(loo, &v.lo, &v.have[3], (Py_ssize_t)c * 8, 0, "lo") ||
        get_view(hio, &v.hi, &v.have[4], (Py_ssize_t)c * 8, 0, "hi") ||
        get_view(oo, &v.out, &v.have[5], n * 8, 1, "out") ||
        get_view(ro, &v.rep, &v.have[6], (Py_ssize_t)c * 4, 0, "rep") || !(mode = get_modes(mo, &v, c)) ||
        check_bounds(c, v.emax.buf, v.lo.buf, v.hi.buf, v.rep.buf, mode)) {
        release(&v);
        PyBuffer_Release(&data);
        return NULL;
    }
    tile_t t;
    memset(&t, 0, sizeof t);
    t.emax = v.emax.buf;
    t.lo = v.lo.buf;
    t.hi = v.hi.buf;
    t.skip = v.skip.buf;
    t.rep = v.rep.buf;
    t.mode = mode;
    t.v9 = v9;
    t.r = v.out.buf;
    int st = PR_ERR_NOMEM;
    Py_ssize_t where = 0;
    uint64_t coded = coded_at_least(&t, c, h, w);
    if (coded > bin_max_decisions((size_t)data.len)) {
        st = PR_ERR_TRUNCATED; /* more coded samples than the payload can hold: refused before allocating */
        where = (Py_ssize_t)coded;
    } else if (tile_alloc(&t, c, h, w) == 0) {
        /* the encoder drops the coder's leading 0 byte: feed it back */
        uint8_t *buf = malloc((size_t)data.len + 1);
        if (buf) {
            buf[0] = 0;
            memcpy(buf + 1, data.buf, (size_t)data.len);
            decoder d;
            Py_BEGIN_ALLOW_THREADS
            dec_init(&d, buf, (size_t)data.len + 1);
            st = run_decode(&t, &d, &where);
            Py_END_ALLOW_THREADS
            if (st == PR_OK && d.overrun > 0) {
                st = PR_ERR_TRUNCATED;
                where = n;
            } else if (st == PR_OK && d.p != d.end) {
                st = PR_ERR_TRAILING;
                where = (Py_ssize_t)(d.end - d.p);
            }
            free(buf);
        }
    }
    tile_free(&t);
    release(&v);
    PyBuffer_Release(&data);
    if (st == PR_ERR_NOMEM)
        return PyErr_NoMemory();
    return Py_BuildValue("(in)", st, where);
}

static PyMethodDef pr_methods[] = {
    {"encode", pr_encode, METH_VARARGS, "encode(x, skip, rep, C, H, W, max_error, lo, hi[, modes[, v9]]) -> bytes"},
    {"encode_costs", pr_encode_costs, METH_VARARGS,
     "encode_costs(x, skip, rep, C, H, W, max_error, lo, hi[, modes[, v9]]) -> (bytes, each band's estimated bits in 1/256)"},
    {"costs", pr_costs, METH_VARARGS,
     "costs(x, skip, rep, C, H, W, max_error, lo, hi[, modes[, v9]]) -> each band's estimated bits in 1/256, as "
     "encode_costs gives them, without coding"},
    {"decode", pr_decode, METH_VARARGS,
     "decode(data, skip, rep, C, H, W, max_error, lo, hi, out[, modes[, v9]]) -> (status, detail)"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef pr_module = {PyModuleDef_HEAD_INIT, "_predictive", NULL, -1, pr_methods};

PyMODINIT_FUNC PyInit__predictive(void)
{
    bucket_init();
    cost_init();
    wide_init();
    PyObject *m = PyModule_Create(&pr_module);
    if (m && PyModule_AddIntConstant(m, "FORMAT_VERSION", PR_FORMAT_VERSION) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
