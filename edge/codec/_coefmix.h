/*
 * _coefmix.h -- tile format v10's coefficient coder, included by _coefs.c (one extension). Version 5's layout,
 * contexts, binarisation and binary coder (_coefs.c, _bincoder.h), with three kinds of decision coded by a logistic
 * mixture of five adaptive bit models (after lpaq: stretch each model's probability, an integer weighted sum, squash,
 * weights trained online): the zero flag, the unary bits of the magnitude class at positions 0..MX_UNARY-1, and the
 * bit below the leading one for k = 1..MX_MANT. The five models of a decision are chosen by differently formed
 * contexts:
 *
 *   in0: version 5's model of that decision (zero[ctx], unary[ctx][i], mant1[ctx][k]), two estimates and warm-up
 *   in1: c2 = 4 bucket((nsum + 1) / 2) + min(bitlen(|WW| + |NN|), 3)  the causal neighbourhood alone   (0..63)
 *   in2: c3 = map of the parent subband at (y >> 1, x >> 1)            its 3 x 3 sum and |parent|      (0..56)
 *   in3: c4 = map of the previous component's subband at (y, x)         its 3 x 3 sum and B             (0..56)
 *   in4: c5 = 16 min(|W|, 3) + 4 min(|N|, 3) + min(B, 3)                                               (0..63)
 *
 * (map: 1 + 7 floor(bucket((S + 2) >> 2) / 2) + min(bitlen(m), 6), S the 3 x 3 sum of the magnitudes around the
 * place inside the array, m the magnitude there; 0 where there is no such array.) in1..in4 are one-estimate models
 * (xmodel) with the same warm-up, rate 2^-5. The mixer's weights are chosen by set = 4 (component > 0 ? 1 +
 * min(bitlen(B), 3) : 0) + bucket((nsum + 1) / 2) / 4 (0..19) and the decision's slot. The sign's context adds the
 * previous component's sign (27 contexts). The zero flag of a quiet coefficient (ctx = 0, c2 = 0, c3 <= 1, c4 <= 1)
 * is coded with one plain model instead of the mixture. Everything else (the sign, the higher unary positions, mant1
 * for k > MX_MANT, mant2, the raw bits) is coded as in version 5.
 *
 * This is the `gated` variant of benchmarks/experiments/coef_mixing.c with in1..in4 as one-estimate models instead of
 * version 5's two-estimate ones (the same bits on the validation scenes, fewer operations), coded for speed: a
 * decoder and an encoder compiled apart, no neighbour checks inside a subband, the 3 x 3 maps made once per subband,
 * the signs kept as tri() planes, branch-free model updates, and the encoder's rate-distortion choice costing only
 * the decisions where its two candidates differ. Integer only (tables built by integer code at import), the same on
 * every platform; floor divisions of negative numbers are written out (fdiv_pow2, fdiv32) rather than left to the
 * compiler. Specified in docs/bitstream.md ("Version 10"); measured by benchmarks/experiments/coef_v10.py.
 */
#ifndef CVAE_COEFMIX_H
#define CVAE_COEFMIX_H

#if defined(__GNUC__)
#define MX_INLINE static inline __attribute__((always_inline))
#else
#define MX_INLINE static inline
#endif

#define MX_INPUTS 5
#define MX_UNARY 11                        /* unary positions mixed: 0..MX_UNARY-1 */
#define MX_MANT 4                          /* mant1 mixed for k = 1..MX_MANT */
#define MX_SLOTS (1 + MX_UNARY + MX_MANT)  /* 0 the zero flag, 1 + i unary position i, MX_UNARY + k mant1 of k */
#define MX_SETS 20                         /* weight sets per slot */
#define MX_CTX 64                          /* contexts of in1..in4 */
#define MX_SIGNS 27
#define MX_WMAX (1 << 20)                  /* |weight| <= 2^20 */
#define MX_W0 20000                        /* start weights: in0's; in1..in4 take MX_W1 */
#define MX_W1 13000

/* in1..in4's models: one estimate of P(0) in 16 bits, rate 2^-min(floor(log2(n + 2)), MX_XSHIFT) after n updates */
#define MX_XSHIFT 5
typedef struct { uint16_t p, n; } xmodel;

typedef struct {
    bitmodel zero[NCTX];
    bitmodel quiet; /* the zero flag of a quiet coefficient */
    bitmodel sign[MX_SIGNS];
    bitmodel unary[NCTX][KMAX + 1];
    bitmodel mant1[NCTX][KMAX + 1];
    bitmodel mant2[NCTX][KMAX + 1][2];
    xmodel x[4][MX_CTX][MX_SLOTS]; /* in1..in4 by their context, then the slot */
    int32_t w[MX_SETS][MX_SLOTS][MX_INPUTS];
} mix_models;

/* floor(v / 2^n) for any sign (a right shift of a negative number is implementation-defined in C) */
static inline int64_t fdiv_pow2(int64_t v, int n) { return v >= 0 ? v >> n : -((-v - 1) >> n) - 1; }

/* the same for |v| < 2^40, without a branch: shifted in unsigned arithmetic from an offset of 2^40 */
static inline int64_t fdiv_pow2_40(int64_t v, int n)
{
    return (int64_t)(((uint64_t)v + ((uint64_t)1 << 40)) >> n) - ((int64_t)1 << (40 - n));
}

/* floor(v / 2^n) of an int32: the arithmetic shift where the compiler does one (a constant condition), else the
 * division written out */
static inline int32_t fdiv32(int32_t v, int n)
{
    return (-1 >> 1) == -1 ? v >> n : (v >= 0 ? v >> n : -((-v - 1) >> n) - 1);
}

/* rates of the warm-up by a model's count n < MODEL_WARM: (min(lg, FAST_SHIFT) << 4) | min(lg, SLOW_SHIFT), lg =
 * floor(log2(n + 2)) (_bincoder.h's model_update); MODEL_WARM and up: the constant rates */
static uint8_t mx_rates[MODEL_WARM + 1], mx_xrates[MODEL_WARM + 1];

/* _bincoder.h's model_update, the same numbers, without branches (the compiler selects) */
MX_INLINE void mx_update(bitmodel *m, int bit)
{
    uint32_t n = m->n, r = mx_rates[n], f = r >> 4, s = r & 15, fast = m->fast, slow = m->slow;
    m->n = (uint16_t)(n + (n < MODEL_WARM));
    uint32_t f1 = fast - (fast >> f), f0 = fast + ((65535 - fast) >> f);
    uint32_t s1 = slow - (slow >> s), s0 = slow + ((65535 - slow) >> s);
    m->fast = (uint16_t)(bit ? f1 : f0);
    m->slow = (uint16_t)(bit ? s1 : s0);
}

/* squash(d) ~ 4096 / (1 + e^(-d / 256)), d in [-2047, 2047]: the 33 points at d = 128 (i - 16), linearly
 * interpolated (squash12); stretch its inverse. */
static const int mx_squash_pts[33] = {1,    2,    3,    6,    10,   16,   27,   45,   73,   120,  194,
                                      310,  488,  747,  1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785,
                                      3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094};
static uint16_t mx_squash[4095];  /* squash12(d) at d + 2047 */
static int16_t mx_stretch[4096];  /* at (fast + slow) >> 5 of a bit model: the stretch of its P(1) in 12 bits */

/* tables of the contexts, filled by mix_tables: min(v, 3); min(bitlen(v), 3) for v < 512; the map's two terms */
static uint8_t mx_min3[256], mx_blen3[512], mx_blen6[256], mx_sum[9 * 255 + 1];

static int squash12(int d)
{
    int i = (int)fdiv_pow2(d, 7) + 16, f = d - 128 * (i - 16); /* floor(d / 128), d mod 128 */
    return (mx_squash_pts[i] * (128 - f) + mx_squash_pts[i + 1] * f + 64) >> 7;
}

/* Once, at import: squash12 at every d, and stretch(p) = the least d in [-2047, 2047] with squash12(d) >= p
 * (2047 past squash12(2047)), looked up by a model's (fast + slow) >> 5 = i: its P0 >> 4 is clip(i, 4, 4092) (P0's
 * clip to [64, 65472], multiples of 16), its P(1) in 12 bits 4096 - that. */
static void mix_tables(void)
{
    int16_t st[4096];
    int p = 0;
    for (int d = -2047; d <= 2047; d++) {
        int s = squash12(d);
        mx_squash[d + 2047] = (uint16_t)s;
        for (; p <= s; p++)
            st[p] = (int16_t)d;
    }
    for (; p < 4096; p++)
        st[p] = 2047;
    for (int i = 0; i < 4096; i++)
        mx_stretch[i] = st[4096 - (i < 4 ? 4 : (i > 4092 ? 4092 : i))];
    for (int v = 0; v < 512; v++) {
        int b = bitlen((uint64_t)v);
        mx_blen3[v] = (uint8_t)(b < 3 ? b : 3);
        if (v < 256) {
            mx_min3[v] = (uint8_t)(v < 3 ? v : 3);
            mx_blen6[v] = (uint8_t)(b < 6 ? b : 6);
        }
    }
    for (int t = 0; t <= 9 * 255; t++) {
        int v = (t + 2) >> 2;
        mx_sum[t] = (uint8_t)(1 + 7 * (bucket_lut[v > 255 ? 255 : v] >> 1));
    }
    for (int n = 0; n <= MODEL_WARM; n++) {
        int lg = n < MODEL_WARM ? bitlen((uint64_t)n + 2) - 1 : 99;
        mx_rates[n] = (uint8_t)(((lg < FAST_SHIFT ? lg : FAST_SHIFT) << 4) | (lg < SLOW_SHIFT ? lg : SLOW_SHIFT));
        mx_xrates[n] = (uint8_t)(lg < MX_XSHIFT ? lg : MX_XSHIFT);
    }
}

static void mix_init(mix_models *m)
{
    const bitmodel half = model_half(0); /* with the warm-up, as version 5's */
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
                    k->x[i][x][j] = (xmodel){32768, 0};
        for (int s = 0; s < MX_SETS; s++)
            for (int j = 0; j < MX_SLOTS; j++) {
                k->w[s][j][0] = MX_W0;
                for (int i = 1; i < MX_INPUTS; i++)
                    k->w[s][j][i] = MX_W1;
            }
    }
}

/* One coefficient's place: its models, contexts, and the mixture's prediction of each slot (computed when first
 * asked: the encoder's rate-distortion choice and its coding share them; a slot's models and weights are its own,
 * so coding an earlier slot of the same coefficient does not change a later one's prediction). */
typedef struct {
    mix_models *m;
    xmodel *xs[4];           /* in1..in4: the slots of their contexts */
    int32_t (*w)[MX_INPUTS]; /* the weight set: one row per slot */
    bitmodel *zero, *unary, *mant1; /* in0: zero[ctx], unary[ctx], mant1[ctx] */
    int ctx, sctx, quiet;
    uint32_t have; /* bit s: st[s], p[s] computed */
    int16_t st[MX_SLOTS][MX_INPUTS];
    int16_t p[MX_SLOTS]; /* P(1) in 12 bits */
} mix_site;

MX_INLINE bitmodel *site_in0(const mix_site *s, int slot)
{
    return slot == 0 ? s->zero : (slot <= MX_UNARY ? s->unary + (slot - 1) : s->mant1 + (slot - MX_UNARY));
}

/* the mixture's P0 (16 bits, clipped as a bit model's) of slot */
MX_INLINE uint32_t site_p0(mix_site *s, int slot)
{
    if (!(s->have >> slot & 1)) {
        int16_t *st = s->st[slot];
        const int32_t *w = s->w[slot];
        const bitmodel *m0 = site_in0(s, slot);
        st[0] = mx_stretch[((uint32_t)m0->fast + m0->slow) >> 5];
        int64_t dot = (int64_t)w[0] * st[0];
        for (int i = 1; i < MX_INPUTS; i++) {
            st[i] = mx_stretch[s->xs[i - 1][slot].p >> 4];
            dot += (int64_t)w[i] * st[i];
        }
        int64_t d = fdiv_pow2_40(dot, 16); /* |dot| <= 5 2^20 2047 < 2^34 */
        s->p[slot] = (int16_t)mx_squash[(d > 2047 ? 2047 : (d < -2047 ? -2047 : d)) + 2047];
        s->have |= 1u << slot;
    }
    uint32_t p0 = (uint32_t)(4096 - s->p[slot]) << 4;
    return p0 < 64 ? 64 : (p0 > 65472 ? 65472 : p0);
}

/* code (enc) or decode the bit of slot with the mixture, then train: each weight moves by
 * floor((st_i err + 2048) / 4096), err = 4096 bit - p, clipped to +-MX_WMAX; each model updates with the bit */
MX_INLINE int site_bit(mix_site *s, int slot, encoder *enc, decoder *dec, int bit)
{
    uint32_t p0 = site_p0(s, slot);
    if (enc)
        enc_bit_p(enc, p0, bit);
    else
        bit = dec_bit_p(dec, p0);
    const int16_t *st = s->st[slot];
    int32_t *w = s->w[slot];
    int err = (bit << 12) - s->p[slot];
    for (int i = 0; i < MX_INPUTS; i++) {
        int32_t v = w[i] + fdiv32(st[i] * err + 2048, 12); /* |st err| < 2^23 */
        if ((uint32_t)(v + MX_WMAX) > 2u * MX_WMAX) /* rarely: the clip to +-MX_WMAX */
            v = v > 0 ? MX_WMAX : -MX_WMAX;
        w[i] = v;
    }
    mx_update(site_in0(s, slot), bit);
    for (int i = 0; i < 4; i++) {
        xmodel *x = s->xs[i] + slot;
        uint32_t n = x->n, r = mx_xrates[n], p = x->p;
        x->n = (uint16_t)(n + (n < MODEL_WARM));
        x->p = (uint16_t)(bit ? p - (p >> r) : p + ((65535 - p) >> r));
    }
    return bit;
}

MX_INLINE int plain_bit(encoder *enc, decoder *dec, bitmodel *m, int bit)
{
    if (enc) {
        enc_bit_p(enc, model_p(m), bit);
    } else {
        bit = dec_bit_p(dec, model_p(m));
    }
    mx_update(m, bit);
    return bit;
}

/* the zero flag, unary position i, mant1 of k: mixed or plain */
MX_INLINE int site_zero(mix_site *s, encoder *enc, decoder *dec, int bit)
{
    return s->quiet ? plain_bit(enc, dec, &s->m->quiet, bit) : site_bit(s, 0, enc, dec, bit);
}

MX_INLINE int site_unary(mix_site *s, int i, encoder *enc, decoder *dec, int bit)
{
    return i < MX_UNARY ? site_bit(s, 1 + i, enc, dec, bit) : plain_bit(enc, dec, s->unary + i, bit);
}

MX_INLINE int site_mant1(mix_site *s, int k, encoder *enc, decoder *dec, int bit)
{
    return k <= MX_MANT ? site_bit(s, MX_UNARY + k, enc, dec, bit) : plain_bit(enc, dec, s->mant1 + k, bit);
}

/* Encoder only: the cost in bits of the zero flag (nz), unary position i (one), mant1 of k (bit) under the coder as
 * it stands: the mixture's probability where it mixes */
static inline double mix_cost(uint32_t p0, int bit) { return cost_lut[(bit ? 65536 - p0 : p0) >> 4]; }

MX_INLINE double cost_zero(mix_site *s, int nz)
{
    return s->quiet ? bit_cost(&s->m->quiet, nz) : mix_cost(site_p0(s, 0), nz);
}

MX_INLINE double cost_unary(mix_site *s, int i, int one)
{
    return i < MX_UNARY ? mix_cost(site_p0(s, 1 + i), one) : bit_cost(s->unary + i, one);
}

MX_INLINE double cost_mant(mix_site *s, int k, uint64_t u)
{
    int top = (int)((u >> (k - 1)) & 1);
    double b = k <= MX_MANT ? mix_cost(site_p0(s, MX_UNARY + k), top) : bit_cost(s->mant1 + k, top);
    if (k >= 2)
        b += bit_cost(&s->m->mant2[s->ctx][k][top], (int)((u >> (k - 2)) & 1)) + (k - 2);
    return b;
}

/* bits(|v| = u) - bits(|v| = u - 1) at this place (u >= 1; the sign's bit cancels but for u = 1): only the
 * decisions where the two codes differ */
static double site_delta_bits(mix_site *s, uint64_t u, int neg)
{
    if (u == 1)
        return cost_zero(s, 1) - cost_zero(s, 0) + bit_cost(&s->m->sign[s->sctx], neg) + cost_unary(s, 0, 0);
    int k = bitlen(u) - 1;
    if (u & (u - 1)) /* u - 1 has the same k: the mantissa bits differ */
        return cost_mant(s, k, u) - cost_mant(s, k, u - 1);
    /* u = 2^k: k ones and a 0 against k - 1 ones and a 0 */
    double b = cost_unary(s, k - 1, 1) - cost_unary(s, k - 1, 0) + (k < KMAX ? cost_unary(s, k, 0) : 0.0);
    return b + cost_mant(s, k, u) - (k >= 2 ? cost_mant(s, k - 1, u - 1) : 0.0);
}

/* Code (encoding) or decode one coefficient at a set-up place; the encoder first takes val or val - sign(val),
 * the cheaper in (x - v)^2 + lam bits(v) when rdo; zero_done: the decoder has read its zero flag (1) already.
 * Returns the value coded, or with *bad set a damaged stream's (CF_ERR_RANGE). */
MX_INLINE int32_t mix_coef(mix_site *s, encoder *enc, decoder *dec, int32_t val, int rdo, double x, double lam,
                           int zero_done, int *bad, const int encoding)
{
    mix_models *m = s->m;
    if (encoding) {
        if (rdo && val != 0) { /* q or q - sign(q): the cheaper in (x - v)^2 + lam bits(v) */
            int32_t alt = val - (val > 0 ? 1 : -1);
            double d0 = x - val, d1 = x - alt;
            uint64_t u = val < 0 ? (uint64_t)(-(int64_t)val) : (uint64_t)val;
            if (d1 * d1 - d0 * d0 < lam * site_delta_bits(s, u, val < 0))
                val = alt;
        }
        if (!site_zero(s, enc, NULL, val != 0))
            return 0;
        uint64_t u = val < 0 ? (uint64_t)(-(int64_t)val) : (uint64_t)val;
        plain_bit(enc, NULL, &m->sign[s->sctx], val < 0);
        int k = bitlen(u) - 1;
        for (int i = 0; i <= k && i < KMAX; i++)
            site_unary(s, i, enc, NULL, i < k);
        if (k >= 1) {
            int top = (int)((u >> (k - 1)) & 1);
            site_mant1(s, k, enc, NULL, top);
            if (k >= 2)
                plain_bit(enc, NULL, &m->mant2[s->ctx][k][top], (int)((u >> (k - 2)) & 1));
            for (int i = k - 2; i > 0; i -= 16) {
                int n = i < 16 ? i : 16;
                enc_raw(enc, (uint32_t)((u >> (i - n)) & ((1u << n) - 1)), n);
            }
        }
        return val;
    }
    if (!zero_done && !site_zero(s, NULL, dec, 0))
        return 0;
    int neg = plain_bit(NULL, dec, &m->sign[s->sctx], 0);
    int k = 0;
    while (k < KMAX && site_unary(s, k, NULL, dec, 0))
        k++;
    uint64_t mag = 1;
    if (k >= 1) {
        int top = site_mant1(s, k, NULL, dec, 0);
        mag = 2 | (uint64_t)top;
        if (k >= 2)
            mag = (mag << 1) | (uint64_t)plain_bit(NULL, dec, &m->mant2[s->ctx][k][top], 0);
        for (int i = k - 2; i > 0; i -= 16) {
            int n = i < 16 ? i : 16;
            mag = (mag << n) | dec_raw(dec, n);
        }
    }
    if (mag > (uint64_t)CF_LIMIT) { /* |q| <= CF_LIMIT, as version 5 */
        *bad = 1;
        return 0;
    }
    return neg ? -(int32_t)mag : (int32_t)mag;
}

/* map[i] for every place of an h x w array of magnitudes mg: 1 + 7 floor(bucket((S + 2) >> 2) / 2) + min(bitlen(mg[i]),
 * 6), S the sum of mg over the 3 x 3 neighbourhood inside the array (in2's and in3's contexts, 1..56). rows:
 * uint16[3 w] of scratch. */
static void mix_map(const uint8_t *mg, Py_ssize_t h, Py_ssize_t w, uint8_t *map, uint16_t *rows)
{
    uint16_t *r[3] = {rows, rows + w, rows + 2 * w}; /* horizontal 3-sums of rows y - 1, y, y + 1 */
    memset(r[2], 0, (size_t)w * sizeof(uint16_t));
    for (Py_ssize_t y = -1; y < h; y++) {
        uint16_t *t = r[0];
        r[0] = r[1];
        r[1] = r[2];
        r[2] = t;
        if (y + 1 < h) {
            const uint8_t *s = mg + (y + 1) * w;
            if (w == 1) {
                t[0] = s[0];
            } else {
                t[0] = (uint16_t)(s[0] + s[1]);
                for (Py_ssize_t x = 1; x + 1 < w; x++)
                    t[x] = (uint16_t)(s[x - 1] + s[x] + s[x + 1]);
                t[w - 1] = (uint16_t)(s[w - 2] + s[w - 1]);
            }
        } else {
            memset(t, 0, (size_t)w * sizeof(uint16_t));
        }
        if (y < 0)
            continue;
        const uint8_t *s = mg + y * w;
        uint8_t *o = map + y * w;
        for (Py_ssize_t x = 0; x < w; x++)
            o[x] = (uint8_t)(mx_sum[r[0][x] + r[1][x] + r[2][x]] + mx_blen6[s[x]]);
    }
}

/* tri() of an int32 without branches: 0 zero, 1 positive, 2 negative */
static inline int tri32(int32_t q) { return (q > 0) | ((q < 0) << 1); }

/* the row pointers of one subband row: the magnitudes (mg) and values of the rows above, the parent's row and its
 * map, the previous component's row, its map and its values (NULL where there is none) */
typedef struct {
    const uint8_t *m, *m1, *m2, *p, *pm, *b, *bm;
    const uint8_t *t1, *bt; /* tri() of the row above, of the previous component's row */
    uint8_t *t;             /* tri() of this row, written as it is coded */
    int32_t *q;
    Py_ssize_t pw;
} mix_rows;

/* One coefficient of a row at x: its contexts (general: any x, neighbours outside the arrays read 0; else x >= 2,
 * x + 1 < w, a row y >= 2 and x >> 1 inside the parent, so every neighbour exists and none is checked), coded,
 * its value, tri() and magnitude stored; nonzero on a damaged stream. A quiet coefficient whose zero flag is 0
 * (the commonest at coarse steps) needs only the contexts that make it quiet. */
MX_INLINE int mix_one(mix_site *s, mix_models *m, const mix_rows *r, Py_ssize_t x, Py_ssize_t w, int has_prev,
                      encoder *enc, decoder *dec, const double *xs, double lam, uint8_t *mrow, const int general,
                      const int encoding)
{
    int Wm, Nm, NWm, NEm, WWm, NNm, P, c3;
    Py_ssize_t px = x >> 1;
    if (general) {
        Wm = x > 0 ? r->m[x - 1] : 0;
        WWm = x > 1 ? r->m[x - 2] : 0;
        Nm = r->m1 ? r->m1[x] : 0;
        NWm = r->m1 && x > 0 ? r->m1[x - 1] : 0;
        NEm = r->m1 && x + 1 < w ? r->m1[x + 1] : 0;
        NNm = r->m2 ? r->m2[x] : 0;
        px = px < r->pw ? px : r->pw - 1;
    } else {
        Wm = r->m[x - 1];
        WWm = r->m[x - 2];
        Nm = r->m1[x];
        NWm = r->m1[x - 1];
        NEm = r->m1[x + 1];
        NNm = r->m2[x];
    }
    P = r->p ? r->p[px] : 0;
    c3 = r->pm ? r->pm[px] : 0;
    int B = has_prev ? r->b[x] : 0, c4 = has_prev ? r->bm[x] : 0;
    int a = 2 * Wm + 2 * Nm + NWm + NEm;
    int v = (a + 2 * P + 2 * B + 1) >> 1;
    int ctx = bucket_lut[v > 255 ? 255 : v];
    int na = (a + 1) >> 1, ba = bucket_lut[na > 255 ? 255 : na];
    int c2 = 4 * ba + mx_blen3[WWm + NNm];
    int quiet = !(ctx | c2 | (c3 >> 1) | (c4 >> 1)), zero_done = 0; /* ctx = c2 = 0, c3 <= 1, c4 <= 1 */
    if (quiet) {
        if (encoding ? r->q[x] == 0 : !plain_bit(NULL, dec, &m->quiet, 0)) {
            if (encoding)
                plain_bit(enc, NULL, &m->quiet, 0);
            r->q[x] = 0;
            r->t[x] = 0;
            mrow[x] = 0;
            return !encoding && dec->overrun > 4;
        }
        zero_done = !encoding; /* the decoder has read a 1 */
    }
    int tw = general ? (x > 0 ? r->t[x - 1] : 0) : r->t[x - 1], tn = general ? (r->t1 ? r->t1[x] : 0) : r->t1[x];
    int tb = has_prev ? r->bt[x] : 0;
    int c5 = 16 * mx_min3[Wm] + 4 * mx_min3[Nm] + mx_min3[B];
    s->w = m->w[(has_prev ? 1 + mx_blen3[B] : 0) * 4 + (ba >> 2)];
    s->xs[0] = m->x[0][c2];
    s->xs[1] = m->x[1][c3];
    s->xs[2] = m->x[2][c4];
    s->xs[3] = m->x[3][c5];
    s->zero = &m->zero[ctx];
    s->unary = m->unary[ctx];
    s->mant1 = m->mant1[ctx];
    s->ctx = ctx;
    s->sctx = 9 * tw + 3 * tn + tb;
    s->quiet = quiet;
    s->have = 0;
    int bad = 0;
    int32_t val = mix_coef(s, enc, dec, encoding ? r->q[x] : 0, encoding && xs, encoding && xs ? xs[x] : 0.0, lam,
                           zero_done, &bad, encoding);
    r->q[x] = val;
    r->t[x] = (uint8_t)tri32(val);
    mrow[x] = (uint8_t)mag255(val);
    return bad || (!encoding && dec->overrun > 4);
}

/* Version 10's pass over every coefficient (the arguments as run()'s in _coefs.c; xs, lam: the encoder's
 * rate-distortion choice, with this coder's bits). scratch: uint8[4 per_comp] then uint16[3 (widest subband)].
 * encoding: a constant, so that the compiler makes an encoder and a decoder of it. */
MX_INLINE int mix_pass(int32_t *q, uint8_t *mg, Py_ssize_t comps, const subband *sb, int nsub, Py_ssize_t per_comp,
                       mix_models *models, encoder *enc, decoder *dec, Py_ssize_t *where, const double *xs,
                       double lam, uint8_t *scratch, const int encoding)
{
    /* of this component's coded subbands and of the previous one's: their maps, the tri() of their values */
    uint8_t *maps[2] = {scratch, scratch + per_comp}, *tris[2] = {scratch + 2 * per_comp, scratch + 3 * per_comp};
    uint16_t *rows = (uint16_t *)(scratch + 4 * per_comp);
    mix_site site;
    for (Py_ssize_t k = 0; k < comps; k++) {
        int32_t *base = q + k * per_comp;
        uint8_t *mbase = mg + k * per_comp;
        const uint8_t *mprev = k > 0 ? mbase - per_comp : NULL;
        uint8_t *map = maps[k & 1], *bmap0 = maps[(k + 1) & 1], *tri = tris[k & 1], *btri = tris[(k + 1) & 1];
        for (int s = 0; s < nsub; s++) {
            const subband *b = &sb[s];
            const Py_ssize_t w = b->w;
            const subband *pb = b->parent >= 0 ? &sb[b->parent] : NULL;
            const uint8_t *pmap = pb ? map + pb->offset : NULL, *bmap = mprev ? bmap0 + b->offset : NULL;
            mix_models *m = &models[b->cls];
            site.m = m;
            /* the columns whose every neighbour exists: x >= 2, x + 1 < w, x >> 1 < the parent's width */
            Py_ssize_t xlo = 2, xhi = w - 1;
            if (pb && xhi > 2 * pb->w)
                xhi = 2 * pb->w;
            for (Py_ssize_t y = 0; y < b->h; y++) {
                Py_ssize_t off = b->offset + y * w, py = pb ? (y >> 1 < pb->h ? y >> 1 : pb->h - 1) : 0;
                uint8_t *mrow = mbase + off;
                mix_rows r = {mrow, y > 0 ? mrow - w : NULL, y > 1 ? mrow - 2 * w : NULL,
                              pb ? mbase + pb->offset + py * pb->w : NULL, pb ? pmap + py * pb->w : NULL,
                              mprev ? mprev + off : NULL, mprev ? bmap + y * w : NULL,
                              y > 0 ? tri + off - w : NULL, mprev ? btri + off : NULL, tri + off, base + off,
                              pb ? pb->w : 0};
                const double *xr = encoding && xs ? xs + k * per_comp + off : NULL;
                int hp = mprev != NULL;
                Py_ssize_t x = 0, fast_end = y >= 2 && xhi > xlo ? xhi : 0;
                for (; x < (fast_end ? xlo : w); x++)
                    if (mix_one(&site, m, &r, x, w, hp, enc, dec, xr, lam, mrow, 1, encoding))
                        goto damaged;
                for (; x < fast_end; x++)
                    if (mix_one(&site, m, &r, x, w, hp, enc, dec, xr, lam, mrow, 0, encoding))
                        goto damaged;
                for (; x < w; x++)
                    if (mix_one(&site, m, &r, x, w, hp, enc, dec, xr, lam, mrow, 1, encoding))
                        goto damaged;
                continue;
            damaged:
                *where = k * per_comp + off + x;
                return dec->overrun > 4 ? CF_ERR_TRUNCATED : CF_ERR_RANGE;
            }
            /* its map, for its children (in2) and the next component (in3); the finest level has no children */
            if (k + 1 < comps || b->cls != 1)
                mix_map(mbase + b->offset, b->h, w, map + b->offset, rows);
        }
    }
    return CF_OK;
}

static int run_mix(int32_t *q, uint8_t *mg, Py_ssize_t comps, const subband *sb, int nsub, Py_ssize_t per_comp,
                   mix_models *models, encoder *enc, decoder *dec, Py_ssize_t *where, const double *xs, double lam,
                   uint8_t *scratch)
{
    if (enc)
        return mix_pass(q, mg, comps, sb, nsub, per_comp, models, enc, NULL, where, xs, lam, scratch, 1);
    return mix_pass(q, mg, comps, sb, nsub, per_comp, models, NULL, dec, where, NULL, 0.0, scratch, 0);
}

#endif
