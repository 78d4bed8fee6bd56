/*
 * coef_mixing.c -- the candidate coefficient coder of benchmarks/experiments/coef_mixing.py (not flight code): tile
 * format v5's layout, contexts and binarisation (edge/codec/_coefs.c, docs/bitstream.md "Version 5"), with the zero
 * flag, the unary bits of the magnitude class (positions 0..MX_UNARY-1) and the bit below the leading one (k =
 * 1..MX_MANT) each coded with the logistic mixture (lpaq-style: stretch, integer weighted sum, squash, weights trained
 * online; integer only) of five adaptive bit models' predictions, each model chosen by a differently formed context:
 *
 *   m1: v5's model (ctx from 2|W| + 2|N| + |NW| + |NE| + 2 P + 2 B, 16 buckets)
 *   m2: the causal neighbourhood alone: bucket((a + 1) / 2) x class of |WW| + |NN|                 (64 contexts)
 *   m3: the parent's 3 x 3 neighbourhood sum (all of it is decoded before the child) x |parent|   (57)
 *   m4: the previous component's 3 x 3 neighbourhood sum (also all decoded) x B                   (57)
 *   m5: min(|W|, 3), min(|N|, 3), min(B, 3)                                                       (64)
 *
 * the mixer's weights chosen by B's class and the neighbourhood's bucket (20 sets per decision slot); the sign's
 * context adds the sign of the previous component's coefficient at the same place (27 contexts); MX_GATE codes the
 * zero flag of a coefficient whose contexts are all 0 with one plain model. Compiled by the script (cc -O3 -shared)
 * with -D variants; exports cm_encode and cm_decode for ctypes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_bincoder.h"

#define NCLASS 4
#define NCTX MAG_CONTEXTS
#define KMAX 31
#define MAX_SUBBANDS 64
#define CF_LIMIT (1 << 30)

enum { CF_OK = 0, CF_ERR_TRUNCATED = 1, CF_ERR_TRAILING = 2, CF_ERR_RANGE = 3, CF_ERR_NOMEM = 4 };

typedef struct {
    ptrdiff_t h, w, cls, parent, offset;
} subband;

#define MX_INPUTS 5
#define MX_SLOTS 16  /* mixed decisions: 0 the zero flag, 1..11 unary positions 0..10, 12..15 mant1 of k = 1..4 */
#ifndef MX_UNARY
#define MX_UNARY 11  /* unary positions mixed */
#endif
#ifndef MX_MANT
#define MX_MANT 4    /* mant1 mixed for k = 1..MX_MANT */
#endif
#ifndef MX_GATE
#define MX_GATE 1    /* the zero flag of a coefficient whose every context is 0: one plain model */
#endif
#define MX_SETS 20   /* weight sets per slot */
#define MX_CTX 64    /* contexts of each of m2..m5 */
#define MX_SIGNS 27
#define MX_WMAX (1 << 20)

typedef struct {
    bitmodel zero[NCTX];
    bitmodel quiet; /* the zero flag where every context is 0 */
    bitmodel sign[MX_SIGNS];
    bitmodel unary[NCTX][KMAX + 1];
    bitmodel mant1[NCTX][KMAX + 1];
    bitmodel mant2[NCTX][KMAX + 1][2];
    bitmodel x[4][MX_CTX][MX_SLOTS]; /* m2..m5 */
    int32_t w[MX_SETS][MX_SLOTS][MX_INPUTS];
} mix_models;

/* squash(d) = 4096 / (1 + e^(-d / 256)), d in [-2047, 2047], interpolated in 33 points; stretch its inverse */
static const int squash_pts[33] = {1,    2,    3,    6,    10,   16,   27,   45,   73,   120,  194,
                                   310,  488,  747,  1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785,
                                   3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094};
static int16_t stretch_lut[4096];

static inline int squash12(int d)
{
    int i = (d >> 7) + 16, f = d & 127; /* floor(d / 128), d mod 128 */
    return (squash_pts[i] * (128 - f) + squash_pts[i + 1] * f + 64) >> 7;
}

/* stretch_lut[p]: the least d in [-2047, 2047] with squash12(d) >= p (2047 past squash12(2047)). Once, at import. */
static void mix_tables(void)
{
    int p = 0;
    for (int d = -2047; d <= 2047; d++)
        for (int s = squash12(d); p <= s; p++)
            stretch_lut[p] = (int16_t)d;
    for (; p < 4096; p++)
        stretch_lut[p] = 2047;
}

static void mix_init(mix_models *m)
{
    const bitmodel half = model_half(0);
    static const int32_t w0[MX_INPUTS] = {20000, 13000, 13000, 13000, 13000};
    for (int c = 0; c < NCLASS; c++) {
        mix_models *k = &m[c];
        k->quiet = half;
        for (int i = 0; i < MX_SIGNS; i++)
            k->sign[i] = half;
        for (int x = 0; x < NCTX; x++) {
            k->zero[x] = half;
            for (int j = 0; j <= KMAX; j++) {
                k->unary[x][j] = k->mant1[x][j] = half;
                k->mant2[x][j][0] = k->mant2[x][j][1] = half;
            }
        }
        for (int i = 0; i < 4; i++)
            for (int x = 0; x < MX_CTX; x++)
                for (int j = 0; j < MX_SLOTS; j++)
                    k->x[i][x][j] = half;
        for (int s = 0; s < MX_SETS; s++)
            for (int j = 0; j < MX_SLOTS; j++)
                memcpy(k->w[s][j], w0, sizeof(w0));
    }
}

/* P(bit = 1) of a model in 12 bits, 1..4095 */
static inline int mx_p1(const bitmodel *m)
{
    int p = 4096 - (int)(model_p(m) >> 4);
    return p < 1 ? 1 : (p > 4095 ? 4095 : p);
}

/* One mixed decision: in[0] v5's model, in[1..4] m2..m5 at this slot; w the slot's weight set. enc codes bit, else
 * the bit is decoded. Every model and weight is updated with the bit. */
static inline int mix_bit(encoder *enc, decoder *dec, bitmodel *const in[MX_INPUTS], int32_t *w, int bit)
{
    int st[MX_INPUTS];
    int64_t dot = 0;
    for (int i = 0; i < MX_INPUTS; i++) {
        st[i] = stretch_lut[mx_p1(in[i])];
        dot += (int64_t)w[i] * st[i];
    }
    int64_t d = dot >> 16; /* floor */
    int p = squash12(d > 2047 ? 2047 : (d < -2047 ? -2047 : (int)d));
    uint32_t p0 = (uint32_t)(4096 - p) << 4;
    p0 = p0 < 64 ? 64 : (p0 > 65472 ? 65472 : p0);
    if (enc)
        enc_bit_p(enc, p0, bit);
    else
        bit = dec_bit_p(dec, p0);
    int err = (bit << 12) - p;
    for (int i = 0; i < MX_INPUTS; i++) {
        int32_t v = w[i] + ((st[i] * err + 2048) >> 12); /* |st err| < 2^23: int32 */
        w[i] = v > MX_WMAX ? MX_WMAX : (v < -MX_WMAX ? -MX_WMAX : v);
        model_update(in[i], bit);
    }
    return bit;
}

static inline int mx_plain(encoder *enc, decoder *dec, bitmodel *m, int bit)
{
    if (enc) {
        enc_bit(enc, m, bit);
        return bit;
    }
    return dec_bit(dec, m);
}

/* map[i] for every place of an h x w array of magnitudes mg: 1 + 7 (bucket((S + 2) / 4) / 2) + min(bitlen(mg[i]), 6),
 * S the sum of mg over the 3 x 3 neighbourhood inside the array (m3's and m4's contexts, 1..56). rows: uint16[w]. */
static void mix_map(const uint8_t *mg, ptrdiff_t h, ptrdiff_t w, uint8_t *map, uint16_t *rows)
{
    uint16_t *r[3] = {rows, rows + w, rows + 2 * w}; /* horizontal 3-sums of rows y - 1, y, y + 1 */
    for (ptrdiff_t y = -1; y <= h; y++) {
        uint16_t *t = r[0];
        r[0] = r[1];
        r[1] = r[2];
        r[2] = t;
        if (y + 1 < h) {
            const uint8_t *s = mg + (y + 1) * w;
            for (ptrdiff_t x = 0; x < w; x++)
                t[x] = (uint16_t)(s[x] + (x > 0 ? s[x - 1] : 0) + (x + 1 < w ? s[x + 1] : 0));
        } else {
            memset(t, 0, (size_t)w * sizeof(uint16_t));
        }
        if (y < 0 || y >= h)
            continue;
        for (ptrdiff_t x = 0; x < w; x++) {
            int s = (y > 0 ? r[0][x] : 0) + r[1][x] + r[2][x];
            int v = (s + 2) >> 2, m = bitlen(mg[y * w + x]);
            map[y * w + x] = (uint8_t)(1 + 7 * (bucket_lut[v > 255 ? 255 : v] >> 1) + (m > 6 ? 6 : m));
        }
    }
}

/* v10's pass over every coefficient (the arguments as run()'s); scratch: uint8[2 per_comp] + uint16[3 per_comp]. */
static int run_mix(int32_t *q, uint8_t *mg, ptrdiff_t comps, const subband *sb, int nsub, ptrdiff_t per_comp,
                   mix_models *models, encoder *enc, decoder *dec, ptrdiff_t *where, uint8_t *scratch)
{
    uint8_t *pmap = scratch, *bmap = scratch + per_comp;
    uint16_t *rows = (uint16_t *)(scratch + 2 * per_comp);
    for (ptrdiff_t k = 0; k < comps; k++) {
        int32_t *base = q + k * per_comp;
        const uint8_t *mbase = mg + k * per_comp;
        const uint8_t *mprev = k > 0 ? mbase - per_comp : NULL;
        const int32_t *qprev = k > 0 ? base - per_comp : NULL;
        for (int s = 0; s < nsub; s++) {
            const subband *b = &sb[s];
            const ptrdiff_t w = b->w;
            int32_t *c = base + b->offset;
            const uint8_t *mc = mbase + b->offset;
            const subband *pb = b->parent >= 0 ? &sb[b->parent] : NULL;
            if (pb)
                mix_map(mbase + pb->offset, pb->h, pb->w, pmap, rows);
            if (mprev)
                mix_map(mprev + b->offset, b->h, w, bmap, rows);
            const uint8_t *mpar = pb ? mbase + pb->offset : NULL;
            mix_models *m = &models[b->cls];
            for (ptrdiff_t y = 0; y < b->h; y++) {
                const int32_t *row = c + y * w, *up = y > 0 ? row - w : NULL;
                const uint8_t *mrow = mc + y * w, *mup = y > 0 ? mrow - w : NULL, *mup2 = y > 1 ? mrow - 2 * w : NULL;
                ptrdiff_t py = pb ? (y >> 1 < pb->h ? y >> 1 : pb->h - 1) : 0;
                const uint8_t *prow = mpar ? mpar + py * pb->w : NULL, *pmrow = pb ? pmap + py * pb->w : NULL;
                const uint8_t *brow = mprev ? mprev + b->offset + y * w : NULL, *bmrow = mprev ? bmap + y * w : NULL;
                const int32_t *bq = qprev ? qprev + b->offset + y * w : NULL;
                for (ptrdiff_t x = 0; x < w; x++) {
                    int32_t W = x > 0 ? row[x - 1] : 0, N = up ? up[x] : 0;
                    int Wm = x > 0 ? mrow[x - 1] : 0, Nm = up ? mup[x] : 0;
                    int32_t a = 2 * Wm + 2 * Nm + (up && x > 0 ? mup[x - 1] : 0) + (up && x + 1 < w ? mup[x + 1] : 0);
                    ptrdiff_t px = pb ? (x >> 1 < pb->w ? x >> 1 : pb->w - 1) : 0;
                    int32_t P = prow ? prow[px] : 0;
                    int32_t B = brow ? brow[x] : 0;
                    int32_t v = (a + 2 * P + 2 * B + 1) / 2;
                    int ctx = bucket_lut[v > 255 ? 255 : v];
                    int na = (a + 1) >> 1, ba = bucket_lut[na > 255 ? 255 : na];
                    int nb = bitlen((uint64_t)((x > 1 ? mrow[x - 2] : 0) + (mup2 ? mup2[x] : 0)));
                    int c2 = 4 * ba + (nb > 3 ? 3 : nb);
                    int c3 = pmrow ? pmrow[px] : 0, c4 = bmrow ? bmrow[x] : 0;
                    int c5 = 16 * (Wm > 3 ? 3 : Wm) + 4 * (Nm > 3 ? 3 : Nm) + (B > 3 ? 3 : B);
                    int bb = bitlen((uint64_t)B);
                    int set = (mprev ? 1 + (bb > 3 ? 3 : bb) : 0) * 4 + (ba >> 2);
                    int sctx = 3 * (3 * tri(W) + tri(N)) + tri(bq ? bq[x] : 0);
                    bitmodel *in[MX_INPUTS] = {&m->zero[ctx], m->x[0][c2], m->x[1][c3], m->x[2][c4], m->x[3][c5]};
                    ptrdiff_t at = k * per_comp + b->offset + y * w + x;
                    int32_t val = enc ? row[x] : 0;
                    uint64_t u = val < 0 ? (uint64_t)(-(int64_t)val) : (uint64_t)val;
                    int nz = MX_GATE && ctx == 0 && c2 == 0 && c3 <= 1 && c4 <= 1 ? mx_plain(enc, dec, &m->quiet, val != 0)
                                                                        : mix_bit(enc, dec, in, m->w[set][0], val != 0);
                    if (!nz) {
                        if (!enc)
                            c[y * w + x] = 0;
                    } else {
                        int neg = mx_plain(enc, dec, &m->sign[sctx], val < 0);
                        int kk = enc ? bitlen(u) - 1 : 0, kd = 0;
                        while (kd < KMAX) { /* unary: kd ones, then a 0 unless kd = KMAX */
                            int one = kk > kd, r;
                            if (kd < MX_UNARY) {
                                in[0] = &m->unary[ctx][kd];
                                for (int i = 1; i < MX_INPUTS; i++)
                                    in[i]++; /* the next slot */
                                r = mix_bit(enc, dec, in, m->w[set][1 + kd], one);
                            } else {
                                r = mx_plain(enc, dec, &m->unary[ctx][kd], one);
                            }
                            if (!r)
                                break;
                            kd++;
                        }
                        uint64_t mag = 1;
                        if (kd >= 1) {
                            int top = enc ? (int)((u >> (kd - 1)) & 1) : 0;
                            if (kd <= MX_MANT) {
                                bitmodel *mi[MX_INPUTS] = {&m->mant1[ctx][kd], &m->x[0][c2][MX_UNARY + kd],
                                                           &m->x[1][c3][MX_UNARY + kd], &m->x[2][c4][MX_UNARY + kd],
                                                           &m->x[3][c5][MX_UNARY + kd]};
                                top = mix_bit(enc, dec, mi, m->w[set][MX_UNARY + kd], top);
                            } else {
                                top = mx_plain(enc, dec, &m->mant1[ctx][kd], top);
                            }
                            mag = 2 | (uint64_t)top;
                            if (kd >= 2)
                                mag = (mag << 1) |
                                      (uint64_t)mx_plain(enc, dec, &m->mant2[ctx][kd][top],
                                                         enc ? (int)((u >> (kd - 2)) & 1) : 0);
                            for (int i = kd - 2; i > 0; i -= 16) {
                                int n = i < 16 ? i : 16;
                                if (enc)
                                    enc_raw(enc, (uint32_t)((u >> (i - n)) & ((1u << n) - 1)), n);
                                else
                                    mag = (mag << n) | dec_raw(dec, n);
                            }
                        }
                        if (!enc) {
                            if (mag > (uint64_t)CF_LIMIT) { /* |q| <= CF_LIMIT, as v5 */
                                *where = at;
                                return CF_ERR_RANGE;
                            }
                            int32_t r = neg ? -(int32_t)mag : (int32_t)mag;
                            c[y * w + x] = r;
                            mg[at] = (uint8_t)mag255(r);
                        }
                    }
                    if (dec && dec->overrun > 4) {
                        *where = at;
                        return CF_ERR_TRUNCATED;
                    }
                }
            }
        }
    }
    return CF_OK;
}


static int ready;

static ptrdiff_t layout(const int32_t *g, int nsub, subband *sb)
{
    ptrdiff_t off = 0;
    for (int s = 0; s < nsub; s++) {
        sb[s] = (subband){g[4 * s], g[4 * s + 1], g[4 * s + 2], g[4 * s + 3], off};
        off += (ptrdiff_t)g[4 * s] * g[4 * s + 1];
    }
    return off;
}

/* q int32[comps * per_comp] in v5's coding order, geometry int32[nsub][4] -> the stream in *out (malloc'ed, the
 * caller frees it with cm_free); its length, -1 without memory */
long cm_encode(const int32_t *q, long comps, const int32_t *g, int nsub, uint8_t **out)
{
    if (!ready) {
        bucket_init();
        mix_tables();
        ready = 1;
    }
    subband sb[MAX_SUBBANDS];
    ptrdiff_t per = layout(g, nsub, sb);
    uint8_t *mg = malloc((size_t)(comps * per)), *scratch = malloc((size_t)per * 8);
    mix_models *m = malloc(sizeof(mix_models) * NCLASS);
    encoder e = {0, 0xFFFFFFFFu, 0, 1, NULL, 0, 0, 0};
    long len = -1;
    if (mg && scratch && m) {
        for (ptrdiff_t i = 0; i < comps * per; i++)
            mg[i] = (uint8_t)mag255(q[i]);
        mix_init(m);
        ptrdiff_t where = 0;
        run_mix((int32_t *)q, mg, comps, sb, nsub, per, m, &e, NULL, &where, scratch);
        enc_finish(&e);
        if (!e.oom)
            len = (long)e.len;
    }
    free(mg);
    free(scratch);
    free(m);
    *out = e.buf;
    return len;
}

void cm_free(uint8_t *p) { free(p); }

/* the inverse: status (CF_*) */
int cm_decode(const uint8_t *data, long len, long comps, const int32_t *g, int nsub, int32_t *q)
{
    subband sb[MAX_SUBBANDS];
    ptrdiff_t per = layout(g, nsub, sb);
    uint8_t *mg = calloc((size_t)(comps * per), 1), *scratch = malloc((size_t)per * 8);
    mix_models *m = malloc(sizeof(mix_models) * NCLASS);
    int st = CF_ERR_NOMEM;
    if (mg && scratch && m) {
        decoder d;
        ptrdiff_t where = 0;
        mix_init(m);
        dec_init(&d, data, (size_t)len);
        st = run_mix(q, mg, comps, sb, nsub, per, m, NULL, &d, &where, scratch);
        if (st == CF_OK && d.overrun > 0)
            st = CF_ERR_TRUNCATED;
        else if (st == CF_OK && d.p != d.end)
            st = CF_ERR_TRAILING;
    }
    free(mg);
    free(scratch);
    free(m);
    return st;
}
