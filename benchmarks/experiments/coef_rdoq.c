/*
 * coef_rdoq.c -- the encoder side of benchmarks/experiments/coef_rdoq.py (not flight code): tile format v5's
 * coefficient coder (edge/codec/_coefs.c, docs/bitstream.md "Version 5"; the same contexts, models and bits, so its
 * streams decode with the shipped decoder) with a greedy rate-distortion choice of each coefficient as it is coded:
 * the encoder's value q or q - sign(q) (one step toward zero), whichever has the smaller (x - v)^2 + lambda bits(v),
 * x the unquantised coefficient over the step and bits(v) the cost of v under the adaptive models as they stand at
 * that coefficient (zero flag, sign, Elias-gamma; its effect on later contexts is not weighed). Floating point only in
 * the decision; exports rdoq_encode for ctypes.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_bincoder.h"

#define NCLASS 4
#define NCTX MAG_CONTEXTS
#define NSIGN 9
#define KMAX 31
#define MAX_SUBBANDS 64
#ifndef ZERO_TOO
#define ZERO_TOO 0 /* 1: also weigh 0 for every nonzero q */
#endif

typedef struct {
    bitmodel zero[NCTX];
    bitmodel sign[NSIGN];
    bitmodel unary[NCTX][KMAX + 1];
    bitmodel mant1[NCTX][KMAX + 1];
    bitmodel mant2[NCTX][KMAX + 1][2];
} class_models;

static double cost_lut[4096]; /* -log2(p / 4096) at p's 12 high bits */

static double cost(const bitmodel *m, int bit)
{
    uint32_t p0 = model_p(m);
    return cost_lut[(bit ? 65536 - p0 : p0) >> 4];
}

/* bits of v != 0 (sign included) under the models of ctx */
static double value_bits(class_models *m, int ctx, int sctx, int32_t v)
{
    if (!v)
        return cost(&m->zero[ctx], 0);
    uint64_t u = v < 0 ? (uint64_t)(-(int64_t)v) : (uint64_t)v;
    double b = cost(&m->zero[ctx], 1) + cost(&m->sign[sctx], v < 0);
    int k = bitlen(u) - 1;
    for (int i = 0; i < k; i++)
        b += cost(&m->unary[ctx][i], 1);
    if (k < KMAX)
        b += cost(&m->unary[ctx][k], 0);
    if (k >= 1) {
        int top = (int)((u >> (k - 1)) & 1);
        b += cost(&m->mant1[ctx][k], top);
        if (k >= 2)
            b += cost(&m->mant2[ctx][k][top], (int)((u >> (k - 2)) & 1)) + (k - 2);
    }
    return b;
}

/* q int32[n] (changed in place to the chosen values), x float64[n] (the coefficients over the step), geometry
 * int32[nsub][4]; lam: lambda / step^2 (0: v5's encoder exactly). The stream (v5's, without the leading 0 byte) in *out,
 * freed with rdoq_free; its length or -1. */
long rdoq_encode(int32_t *q, const double *x, long comps, const int32_t *g, int nsub, double lam, uint8_t **out)
{
    static int ready;
    if (!ready) {
        bucket_init();
        for (int p = 0; p < 4096; p++)
            cost_lut[p] = -log2((p ? p : 1) / 4096.0);
        ready = 1;
    }
    ptrdiff_t off[MAX_SUBBANDS], per = 0;
    for (int s = 0; s < nsub; s++) {
        off[s] = per;
        per += (ptrdiff_t)g[4 * s] * g[4 * s + 1];
    }
    uint8_t *mg = malloc((size_t)(comps * per));
    class_models *models = malloc(sizeof(class_models) * NCLASS);
    encoder e = {0, 0xFFFFFFFFu, 0, 1, NULL, 0, 0, 0};
    *out = NULL;
    if (!mg || !models) {
        free(mg);
        free(models);
        return -1;
    }
    const bitmodel half = model_half(0);
    for (int c = 0; c < NCLASS; c++) {
        for (int i = 0; i < NSIGN; i++)
            models[c].sign[i] = half;
        for (int i = 0; i < NCTX; i++) {
            models[c].zero[i] = half;
            for (int k = 0; k <= KMAX; k++)
                models[c].unary[i][k] = models[c].mant1[i][k] = models[c].mant2[i][k][0] =
                    models[c].mant2[i][k][1] = half;
        }
    }
    for (ptrdiff_t i = 0; i < comps * per; i++)
        mg[i] = (uint8_t)mag255(q[i]);
    for (long k = 0; k < comps; k++) {
        for (int s = 0; s < nsub; s++) {
            ptrdiff_t h = g[4 * s], w = g[4 * s + 1], par = g[4 * s + 3];
            ptrdiff_t ph = par >= 0 ? g[4 * par] : 0, pw = par >= 0 ? g[4 * par + 1] : 0;
            class_models *m = &models[g[4 * s + 2]];
            int32_t *c = q + k * per + off[s];
            const double *xc = x + k * per + off[s];
            uint8_t *mc = mg + k * per + off[s];
            for (ptrdiff_t y = 0; y < h; y++) {
                for (ptrdiff_t xx = 0; xx < w; xx++) {
                    ptrdiff_t i = y * w + xx;
                    int a = 2 * (xx > 0 ? mc[i - 1] : 0) + 2 * (y > 0 ? mc[i - w] : 0) +
                            (y > 0 && xx > 0 ? mc[i - w - 1] : 0) + (y > 0 && xx + 1 < w ? mc[i - w + 1] : 0);
                    int P = 0, B = 0;
                    if (par >= 0) {
                        ptrdiff_t py = y >> 1 < ph ? y >> 1 : ph - 1, px = xx >> 1 < pw ? xx >> 1 : pw - 1;
                        P = mg[k * per + off[par] + py * pw + px];
                    }
                    if (k > 0)
                        B = mc[i - per];
                    int v = (a + 2 * P + 2 * B + 1) / 2;
                    int ctx = bucket_lut[v > 255 ? 255 : v];
                    int sctx = 3 * tri(xx > 0 ? c[i - 1] : 0) + tri(y > 0 ? c[i - w] : 0);
                    int32_t val = c[i];
                    if (lam > 0 && val != 0) { /* q, q - sign(q) and (with ZERO_TOO) 0 */
                        int32_t best = val, alt = val - (val > 0 ? 1 : -1);
                        double d = xc[i] - val, j = d * d + lam * value_bits(m, ctx, sctx, val);
                        for (int t = 0; t < 1 + ZERO_TOO; t++, alt = 0) {
                            double e1 = xc[i] - alt, j1 = e1 * e1 + lam * value_bits(m, ctx, sctx, alt);
                            if (j1 < j) {
                                j = j1;
                                best = alt;
                            }
                        }
                        if (best != val) {
                            val = best;
                            c[i] = val;
                            mc[i] = (uint8_t)mag255(val);
                        }
                    }
                    enc_bit(&e, &m->zero[ctx], val != 0);
                    if (!val)
                        continue;
                    enc_bit(&e, &m->sign[sctx], val < 0);
                    uint64_t u = val < 0 ? (uint64_t)(-(int64_t)val) : (uint64_t)val;
                    enc_gamma(&e, m->unary[ctx], m->mant1[ctx], m->mant2[ctx], KMAX, u);
                }
            }
        }
    }
    enc_finish(&e);
    free(mg);
    free(models);
    if (e.oom || e.len < 1) {
        free(e.buf);
        return -1;
    }
    memmove(e.buf, e.buf + 1, e.len - 1); /* byte 0 is always 0: dropped, as v5's encoder does */
    *out = e.buf;
    return (long)e.len - 1;
}

void rdoq_free(uint8_t *p) { free(p); }
