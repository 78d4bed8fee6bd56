/*
 * _bincoder.h -- the adaptive binary range coder shared by the C coders of tile formats v4 (_predictive.c) and v5
 * (_coefs.c): a binary range coder in the LZMA layout (32-bit range, 64-bit low with carry propagation, one byte
 * out per renormalisation), adaptive bit models (P(bit = 0) in 16 bits, the mean of a fast 2^-5 and a slow 2^-7
 * estimate; v5's start with a warm-up, v4's without), the adaptive Elias-gamma code of a magnitude both code their
 * residuals with, and the magnitude contexts both coders bucket their neighbourhoods into. Integer only: every platform
 * codes and decodes the same bits. Specified in docs/bitstream.md ("Version 4": the binary coder; "Version 5"). A
 * header of static functions: each extension compiles its own copy.
 */
#ifndef CVAE_BINCODER_H
#define CVAE_BINCODER_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FAST_SHIFT 5 /* bit models: the mean of a fast and a slow estimate */
#define SLOW_SHIFT 7
#define MODEL_WARM 1024 /* a bit model's update count stops here: past the warm-up (v4's models start here) */

/* the number of bits of v (0 for 0): Elias-gamma prefixes, the bit models' warm-up */
static inline int bitlen(uint64_t v)
{
#if defined(__GNUC__)
    return v ? 64 - __builtin_clzll(v) : 0;
#else
    int k = 0;
    while (v) {
        k++;
        v >>= 1;
    }
    return k;
#endif
}

/* ------------------------------------------------------------------------------------------------------ */
/* Adaptive bit model: P(bit = 0) in 16 bits, the mean of a fast and a slow estimate; after n updates each     */
/* moves by 2^-min(floor(log2(n + 2)), its rate) of the distance to the bit: a warm-up that follows the running */
/* frequency, rate 1/(n + 2), until it reaches FAST_SHIFT (2^-5) or SLOW_SHIFT (2^-7); n counts to RATES_SETTLED*/
/* and stays. v5 (_coefs.c) starts its models at n = 0; v4 (_predictive.c) at MODEL_WARM, with no warm-up.     */

typedef struct { uint16_t fast, slow, n; } bitmodel;

/* P(0) = 1/2 after n updates */
static inline bitmodel model_half(uint16_t n)
{
    bitmodel m = {32768, 32768, n};
    return m;
}

static inline uint32_t model_p(const bitmodel *m)
{
    uint32_t p = ((uint32_t)m->fast + m->slow) >> 1;
    return p < 64 ? 64 : (p > 65472 ? 65472 : p);
}

/* the warm-up's rates min(floor(log2(n + 2)), FAST_SHIFT or SLOW_SHIFT) are the constant ones from this count on, so
 * the count stops here (or wherever a model started above it: v4's at MODEL_WARM) and settled models skip the warm-up */
#define RATES_SETTLED 126

static inline void model_update(bitmodel *m, int bit)
{
    int f = FAST_SHIFT, s = SLOW_SHIFT; /* warm (all of v4's models): the constant rates */
    if (m->n < RATES_SETTLED) {
        int w = bitlen((uint64_t)m->n + 2) - 1; /* floor(log2(n + 2)): the rate 1/(n + 2) of a running frequency */
        f = w < f ? w : f;
        s = w < s ? w : s;
        m->n++;
    }
    if (bit) {
        m->fast -= m->fast >> f;
        m->slow -= m->slow >> s;
    } else {
        m->fast += (65535 - m->fast) >> f;
        m->slow += (65535 - m->slow) >> s;
    }
}

/* ------------------------------------------------------------------------------------------------------ */
/* Binary range coder (LZMA layout).                                                                       */

typedef struct {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t cache_size;
    uint8_t *buf;
    size_t len, cap;
    int oom;
} encoder;

static void enc_byte(encoder *e, uint8_t b)
{
    if (e->len == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 4096;
        uint8_t *nb = realloc(e->buf, cap);
        if (!nb) {
            e->oom = 1;
            return;
        }
        e->buf = nb;
        e->cap = cap;
    }
    e->buf[e->len++] = b;
}

static void enc_shift_low(encoder *e)
{
    if ((uint32_t)e->low < 0xFF000000u || (e->low >> 32) != 0) {
        uint8_t carry = (uint8_t)(e->low >> 32);
        uint8_t temp = e->cache;
        do {
            enc_byte(e, (uint8_t)(temp + carry));
            temp = 0xFF;
        } while (--e->cache_size != 0);
        e->cache = (uint8_t)(e->low >> 24);
    }
    e->cache_size++;
    e->low = (e->low & 0x00FFFFFFu) << 8;
}

static inline void enc_bit_p(encoder *e, uint32_t p, int bit)
{
    uint32_t bound = (e->range >> 16) * p;
    if (!bit) {
        e->range = bound;
    } else {
        e->low += bound;
        e->range -= bound;
    }
    while (e->range < (1u << 24)) {
        e->range <<= 8;
        enc_shift_low(e);
    }
}

static inline void enc_bit(encoder *e, bitmodel *m, int bit)
{
    enc_bit_p(e, model_p(m), bit);
    model_update(m, bit);
}

/* n <= 16 bits of value at probability 1/2 each, in one step: the interval cut into 2^n equal parts */
static inline void enc_raw(encoder *e, uint32_t value, int n)
{
    uint32_t r = e->range >> n;
    e->low += (uint64_t)r * value;
    e->range = r;
    while (e->range < (1u << 24)) {
        e->range <<= 8;
        enc_shift_low(e);
    }
}

static void enc_finish(encoder *e)
{
    for (int i = 0; i < 5; i++)
        enc_shift_low(e);
}

typedef struct {
    uint32_t code, range;
    const uint8_t *p, *end;
    int overrun; /* bytes asked for beyond the end */
} decoder;

static inline uint8_t dec_byte(decoder *d)
{
    if (d->p < d->end)
        return *d->p++;
    d->overrun++;
    return 0;
}

static void dec_init(decoder *d, const uint8_t *data, size_t len)
{
    d->p = data;
    d->end = data + len;
    d->overrun = 0;
    d->range = 0xFFFFFFFFu;
    d->code = 0;
    for (int i = 0; i < 5; i++)
        d->code = (d->code << 8) | dec_byte(d);
}

static inline int dec_bit_p(decoder *d, uint32_t p)
{
    uint32_t bound = (d->range >> 16) * p;
    int bit;
    if (d->code < bound) {
        d->range = bound;
        bit = 0;
    } else {
        d->code -= bound;
        d->range -= bound;
        bit = 1;
    }
    while (d->range < (1u << 24)) {
        d->range <<= 8;
        d->code = (d->code << 8) | dec_byte(d);
    }
    return bit;
}

/* The most adaptive binary decisions (dec_bit_p) a stream of len bytes can hold, for a caller to refuse before it
 * allocates anything when a header declares more coded symbols (each costs at least one decision) than the payload
 * can carry. A decision at P(0) in [64, 65472] / 2^16 leaves range' <= range (1 - 2^-10) + 64 <= range (1 - 255 /
 * 2^18) (range >= 2^24 before it); a byte read multiplies range by 2^8; range starts below 2^32 with 5 bytes read
 * and ends at or above 2^24 with all len + 1 bytes read (the fed-back 0 byte; a stream that reads past its end is
 * refused). So D decisions need D (255 / 2^18) / ln 2 <= 8 (len - 3), D < 5701 (len + 1). Raw bits (dec_raw) only
 * narrow the range further. */
static inline uint64_t bin_max_decisions(size_t len) { return (uint64_t)5701 * ((uint64_t)len + 1); }

/* inverse of enc_raw; a value beyond n bits (only in a damaged stream) is flagged through overrun */
static inline uint32_t dec_raw(decoder *d, int n)
{
    uint32_t r = d->range >> n;
    uint32_t value = d->code / r;
    if (value >> n) {
        value = (1u << n) - 1;
        d->overrun += 16;
    }
    d->code -= value * r;
    d->range = r;
    while (d->range < (1u << 24)) {
        d->range <<= 8;
        d->code = (d->code << 8) | dec_byte(d);
    }
    return value;
}

static inline int dec_bit(decoder *d, bitmodel *m)
{
    int bit = dec_bit_p(d, model_p(m));
    model_update(m, bit);
    return bit;
}

/* ------------------------------------------------------------------------------------------------------ */
/* The adaptive Elias-gamma code of a magnitude v >= 1 (v4's and v5's residuals): k = bitlen(v) - 1 in unary  */
/* (unary[i] per position; no terminating 0 when k = kmax), the bit below the leading one (mant1[k]), the next */
/* (mant2[k][bit above]), the rest at probability 1/2 in chunks of up to 16 bits, most significant first.      */
/* unary and mant1 hold kmax + 1 models, mant2 kmax + 1 pairs (one magnitude context's); v < 2^(kmax + 1).     */

static inline void enc_gamma(encoder *e, bitmodel *unary, bitmodel *mant1, bitmodel (*mant2)[2], int kmax,
                             uint64_t v)
{
    int k = bitlen(v) - 1;
    for (int i = 0; i < k; i++)
        enc_bit(e, &unary[i], 1);
    if (k < kmax)
        enc_bit(e, &unary[k], 0);
    if (k >= 1) {
        int top = (int)((v >> (k - 1)) & 1);
        enc_bit(e, &mant1[k], top);
        if (k >= 2)
            enc_bit(e, &mant2[k][top], (int)((v >> (k - 2)) & 1));
        for (int i = k - 2; i > 0; i -= 16) {
            int n = i < 16 ? i : 16;
            enc_raw(e, (uint32_t)((v >> (i - n)) & ((1u << n) - 1)), n);
        }
    }
}

/* The inverse of enc_gamma: v < 2^(kmax + 1) (the mantissa built in uint64; callers bound it further). Unary
 * position i < nlo is modelled by low[i] instead of unary[i] (v8's replication mode; nlo = 0: dec_gamma). */
static inline uint64_t dec_gamma_low(decoder *d, bitmodel *low, int nlo, bitmodel *unary, bitmodel *mant1,
                                     bitmodel (*mant2)[2], int kmax)
{
    int k = 0;
    while (k < kmax && dec_bit(d, k < nlo ? &low[k] : &unary[k]))
        k++;
    uint64_t v = 1;
    if (k >= 1) {
        int top = dec_bit(d, &mant1[k]);
        v = (v << 1) | (uint64_t)top;
        if (k >= 2)
            v = (v << 1) | (uint64_t)dec_bit(d, &mant2[k][top]);
        for (int i = k - 2; i > 0; i -= 16) {
            int n = i < 16 ? i : 16;
            v = (v << n) | dec_raw(d, n);
        }
    }
    return v;
}

static inline uint64_t dec_gamma(decoder *d, bitmodel *unary, bitmodel *mant1, bitmodel (*mant2)[2], int kmax)
{
    return dec_gamma_low(d, NULL, 0, unary, mant1, mant2, kmax);
}

/* ------------------------------------------------------------------------------------------------------ */
/* Magnitude contexts shared by v4 and v5: a neighbourhood's summed magnitudes bucketed into MAG_CONTEXTS.    */

#define MAG_CONTEXTS 16

/* |q| clipped to 255: what the contexts sum */
static inline int64_t mag255(int64_t q) { return q < 0 ? (q < -255 ? 255 : -q) : (q > 255 ? 255 : q); }

/* 0 for zero, 1 positive, 2 negative: the sign contexts */
static inline int tri(int64_t q) { return q > 0 ? 1 : (q < 0 ? 2 : 0); }

/* bucket_lut[v]: how many of the edges 1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224 are <= v (v >= 255
 * counts as 255: all 15). Filled once at import (each module's PyInit). */
static unsigned char bucket_lut[256];

static void bucket_init(void)
{
    static const int edges[MAG_CONTEXTS - 1] = {1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224};
    for (int v = 0; v < 256; v++) {
        unsigned k = 0;
        while (k < MAG_CONTEXTS - 1 && v >= edges[k])
            k++;
        bucket_lut[v] = (unsigned char)k;
    }
}

#endif
