/*
 * _rangecoder.c -- rANS entropy coder behind cvae.edge.codec.rangecoder.
 *
 * The byte format is specified in docs/range_coder.md (format version 1); this file and the
 * pure-Python reference coder in tests/edge/codec/test_rangecoder.py both follow it.
 *
 *   two interleaved 64-bit states (symbol i uses state i % 2), each kept in [L, 2^63) with
 *   L = 2^31 (ryg_rans "rans64" layout); interleaving lets the CPU overlap two symbols
 *   renormalisation: 32-bit little-endian words, at most one per coding step
 *   table step (start, freq, precision p):  x -> (x / freq) << p | (x % freq) + start
 *   bypass step (k bits, value u):         x -> x << k | u        (freq 1, precision k)
 *   escape: table symbol n = cdf_length - 2, then an Elias-gamma code of the zig-zagged
 *           out-of-range amount in bypass steps
 *
 * Only the Python C API and the buffer protocol are used (no numpy headers); C99 plus an
 * optional unsigned __int128 for the 64x64->128 multiply. The coding loops run without the GIL.
 *
 * The Python wrapper validates its inputs and produces the user-facing errors. This module
 * still re-checks everything memory safety depends on (buffer sizes, table rows, index range),
 * copies the table rows it reads, and reports problems as (status, detail) tuples, so that a
 * bad call can never read or write out of bounds.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define RC_FORMAT_VERSION 1u
#define RC_PREC_MIN 12
#define RC_PREC_MAX 16
#define RC_L ((uint64_t)1 << 31)     /* lower bound of the normalised state interval */
#define RC_X_END ((uint64_t)1 << 63) /* exclusive upper bound of the state interval */
#define RC_HEADER_BYTES 17           /* header byte + two 64-bit final encoder states */
#define RC_LUT_BITS 9                /* decoder: 2^9 search start points per table row */
#define RC_CHUNK_BITS 16             /* bypass mantissa chunk width */
#define RC_MAX_GAMMA 32              /* longest Elias-gamma prefix (out-of-range amount < 2^33) */
/* Most bytes one symbol can emit: a word per step; table step + 33 prefix bits + 2 chunks. */
#define RC_MAX_SYMBOL_BYTES (4 * (1 + (RC_MAX_GAMMA + 1) + 2))
#define RC_RESERVE (RC_MAX_SYMBOL_BYTES + RC_HEADER_BYTES + 16)

enum {
    RC_OK = 0,
    RC_ERR_INDEX = 1,     /* detail: position i with indexes[i] outside [0, C) */
    RC_ERR_TABLE = 2,     /* detail: table row that is not a valid CDF */
    RC_ERR_SHORT = 3,     /* stream not 17 + 4k bytes long */
    RC_ERR_HEADER = 4,    /* detail: the header byte */
    RC_ERR_STATE = 5,     /* stored state outside [2^31, 2^63) */
    RC_ERR_TRUNCATED = 6, /* detail: position of the symbol that ran out of words */
    RC_ERR_ESCAPE = 7,    /* detail: position of an escape with a too long gamma prefix */
    RC_ERR_OVERFLOW = 8,  /* detail: position whose decoded value is outside int32 */
    RC_ERR_TRAILING = 9,  /* detail: number of bytes left after the last symbol */
    RC_ERR_FINAL = 10,    /* final decoder state differs from the initial encoder state */
    RC_ERR_NOMEM = 11
};

/* ---------------------------------------------------------------------------------------- */
/* Little-endian loads/stores (GCC and Clang turn these into single moves).                  */

static inline uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

static inline void wr64(uint8_t *p, uint64_t v)
{
    wr32(p, (uint32_t)v);
    wr32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t mulhi64(uint64_t a, uint64_t b)
{
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 u128;
    return (uint64_t)(((u128)a * b) >> 64);
#else
    uint64_t a_lo = (uint32_t)a, a_hi = a >> 32, b_lo = (uint32_t)b, b_hi = b >> 32;
    uint64_t lo_lo = a_lo * b_lo, hi_lo = a_hi * b_lo, lo_hi = a_lo * b_hi, hi_hi = a_hi * b_hi;
    uint64_t cross = (lo_lo >> 32) + (uint32_t)hi_lo + lo_hi;
    return hi_hi + (hi_lo >> 32) + (cross >> 32);
#endif
}

/* ---------------------------------------------------------------------------------------- */
/* Tables                                                                                   */

/* A row is a valid CDF: 3 <= len <= L, cdf[0] == 0, cdf[len-1] == 2^p, strictly increasing. */
static int row_is_valid(const int32_t *cdf, int32_t len, Py_ssize_t L, int prec)
{
    if (len < 3 || (Py_ssize_t)len > L || cdf[0] != 0 || cdf[len - 1] != ((int32_t)1 << prec))
        return 0;
    for (int32_t k = 1; k < len; k++)
        if (cdf[k] <= cdf[k - 1])
            return 0;
    return 1;
}

/* Encoder step for one table symbol: division by freq via an exact reciprocal (Alverson), as in
 * ryg_rans' Rans64EncSymbol; exact for every state below 2^63. */
typedef struct {
    uint64_t rcp_freq;
    uint32_t freq;
    uint32_t bias;
    uint32_t cmpl_freq;
    uint32_t rcp_shift;
} enc_sym;

static void enc_sym_init(enc_sym *e, uint32_t start, uint32_t freq, int prec)
{
    e->freq = freq;
    e->cmpl_freq = ((uint32_t)1 << prec) - freq;
    if (freq < 2) {
        e->rcp_freq = ~(uint64_t)0;
        e->rcp_shift = 0;
        e->bias = start + ((uint32_t)1 << prec) - 1;
    } else {
        uint32_t shift = 0;
        while (freq > ((uint32_t)1 << shift))
            shift++;
        /* rcp = ceil(2^(shift + 63) / freq), computed in two 32-bit halves */
        uint64_t x1 = (uint64_t)1 << (shift + 31);
        uint64_t t1 = x1 / freq;
        uint64_t x0 = (uint64_t)(freq - 1) + ((x1 % freq) << 32);
        uint64_t t0 = x0 / freq;
        e->rcp_freq = t0 + (t1 << 32);
        e->rcp_shift = shift - 1;
        e->bias = start;
    }
}

typedef struct {
    const enc_sym *sym; /* sym[s] for s in [0, n]; sym[n] is the escape symbol */
    int64_t offset;
    uint64_t n; /* number of directly coded values = cdf_length - 2 */
    int ready;
} enc_row;

typedef struct {
    const uint32_t *cdf;  /* private copy of the row, len entries */
    const uint16_t *lut;  /* lut[b] = largest s with cdf[s] <= b << (p - RC_LUT_BITS) */
    int64_t offset;
    uint32_t n;   /* escape symbol index = cdf_length - 2 */
    uint32_t lim; /* symbols s < lim decode to offset + s without leaving int32 */
    int ready;
} dec_row;

typedef struct {
    const int32_t *cdfs;
    const int32_t *lengths;
    const int32_t *offsets;
    Py_ssize_t n_rows, L;
    int prec;
} tables_t;

/* Validates row c and fills its encoder steps. Reads every table entry exactly once, so a row
 * that changes during the call cannot slip past the checks. */
static int enc_row_build(enc_row *r, enc_sym *sym, const tables_t *t, Py_ssize_t c)
{
    const int32_t *cdf = t->cdfs + c * t->L;
    const int32_t len = t->lengths[c];
    const int32_t total = (int32_t)1 << t->prec;
    if (len < 3 || (Py_ssize_t)len > t->L)
        return 0;
    int32_t prev = cdf[0];
    if (prev != 0)
        return 0;
    for (int32_t s = 0; s + 1 < len; s++) {
        int32_t next = cdf[s + 1];
        if (next <= prev || next > total || (s + 2 == len && next != total))
            return 0;
        enc_sym_init(&sym[s], (uint32_t)prev, (uint32_t)(next - prev), t->prec);
        prev = next;
    }
    r->sym = sym;
    r->offset = t->offsets[c];
    r->n = (uint64_t)(len - 2);
    r->ready = 1;
    return 1;
}

static int dec_row_build(dec_row *r, uint32_t *cdf_copy, uint16_t *lut, const tables_t *t, Py_ssize_t c)
{
    const int32_t *cdf = t->cdfs + c * t->L;
    const int32_t len = t->lengths[c];
    /* copy first, then validate the copy: the caller's array may change under us */
    for (int32_t k = 0; k < len && (Py_ssize_t)k < t->L; k++)
        cdf_copy[k] = (uint32_t)cdf[k];
    if (!row_is_valid((const int32_t *)cdf_copy, len, t->L, t->prec))
        return 0;
    unsigned bshift = (unsigned)(t->prec - RC_LUT_BITS);
    uint32_t s = 0;
    for (uint32_t b = 0; b < ((uint32_t)1 << RC_LUT_BITS); b++) {
        while (cdf_copy[s + 1] <= (b << bshift))
            s++;
        lut[b] = (uint16_t)s;
    }
    const int64_t offset = t->offsets[c];
    const int64_t room = (int64_t)INT32_MAX - offset + 1; /* in [1, 2^32] */
    r->cdf = cdf_copy;
    r->lut = lut;
    r->offset = offset;
    r->n = (uint32_t)(len - 2);
    r->lim = room < (int64_t)r->n ? (uint32_t)room : r->n;
    r->ready = 1;
    return 1;
}

/* ---------------------------------------------------------------------------------------- */
/* Encoder. Symbols are coded last to first; words are written backwards from the end of a  */
/* buffer, so the finished stream reads front to back in decoding order.                     */

typedef struct {
    uint8_t *buf; /* [buf, buf + cap) */
    size_t cap;
    uint8_t *p; /* first written byte */
} out_t;

static int out_grow(out_t *o)
{
    size_t used = (size_t)(o->buf + o->cap - o->p);
    size_t cap = o->cap * 2 + RC_RESERVE;
    uint8_t *buf = (uint8_t *)malloc(cap);
    if (buf == NULL)
        return 0;
    memcpy(buf + cap - used, o->p, used);
    free(o->buf);
    o->buf = buf;
    o->cap = cap;
    o->p = buf + cap - used;
    return 1;
}

static inline uint64_t enc_put(uint64_t x, const enc_sym *e, unsigned xmax_shift, uint8_t **pp)
{
    /* if x >= x_max = freq * 2^(63 - p): emit the low word, x >>= 32. Branch-free: the word is
     * always stored below the cursor (the buffer keeps RC_RESERVE bytes free) and the cursor
     * only moves when it counts. */
    unsigned shift = (unsigned)(x >= ((uint64_t)e->freq << xmax_shift)) << 5;
    wr32(*pp - 4, (uint32_t)x);
    *pp -= shift >> 3;
    x >>= shift;
    uint64_t q = mulhi64(x, e->rcp_freq) >> e->rcp_shift; /* q = x / freq */
    return x + e->bias + q * e->cmpl_freq;                 /* (q << p) + x % freq + start */
}

/* bypass step: k bits (1 <= k <= 16) of value u, i.e. a table step with freq 1, precision k */
static inline uint64_t enc_bits(uint64_t x, uint32_t u, unsigned k, uint8_t **pp)
{
    if (x >= ((uint64_t)1 << (63 - k))) {
        *pp -= 4;
        wr32(*pp, (uint32_t)x);
        x >>= 32;
    }
    return (x << k) | u;
}

static uint64_t enc_escape(uint64_t x, int64_t v, const enc_row *r, unsigned xmax_shift, uint8_t **pp)
{
    /* out-of-range amount e >= 0, zig-zagged with the side: z = 2e (+1 below the table) */
    uint64_t z = v < 0 ? 2 * (uint64_t)(-(v + 1)) + 1 : 2 * ((uint64_t)v - r->n);
    uint64_t m = z + 1; /* >= 1, < 2^33 */
    unsigned nbits = 0; /* floor(log2 m): mantissa bits below the leading one */
    while ((m >> nbits) > 1)
        nbits++;
    uint64_t mant = m - ((uint64_t)1 << nbits);
    /* pushed in reverse of the decoding order: hi chunk, lo chunk, stop bit, prefix, escape */
    if (nbits > RC_CHUNK_BITS)
        x = enc_bits(x, (uint32_t)(mant >> RC_CHUNK_BITS), nbits - RC_CHUNK_BITS, pp);
    if (nbits > 0) {
        unsigned k = nbits < RC_CHUNK_BITS ? nbits : RC_CHUNK_BITS;
        x = enc_bits(x, (uint32_t)(mant & (((uint64_t)1 << k) - 1)), k, pp);
    }
    x = enc_bits(x, 0, 1, pp);
    for (unsigned j = 0; j < nbits; j++)
        x = enc_bits(x, 1, 1, pp);
    return enc_put(x, &r->sym[r->n], xmax_shift, pp);
}

typedef struct {
    const tables_t *t;
    enc_row *rows;
    enc_sym *syms;
    size_t n_rows, row_syms;
    unsigned xmax_shift;
    out_t *o;
} enc_ctx;

/* Puts all steps of one symbol into state *x. */
static inline int enc_symbol(const enc_ctx *e, int32_t value, int32_t index, uint64_t *x, uint8_t **pp)
{
    uint32_t c = (uint32_t)index;
    if (c >= e->n_rows)
        return RC_ERR_INDEX;
    enc_row *r = &e->rows[c];
    if (!r->ready && !enc_row_build(r, e->syms + (size_t)c * e->row_syms, e->t, (Py_ssize_t)c))
        return RC_ERR_TABLE;
    if ((size_t)(*pp - e->o->buf) < RC_RESERVE) {
        e->o->p = *pp;
        if (!out_grow(e->o))
            return RC_ERR_NOMEM;
        *pp = e->o->p;
    }
    int64_t v = (int64_t)value - r->offset;
    if ((uint64_t)v < r->n)
        *x = enc_put(*x, &r->sym[v], e->xmax_shift, pp);
    else
        *x = enc_escape(*x, v, r, e->xmax_shift, pp);
    return RC_OK;
}

static int encode_core(const int32_t *symbols, const int32_t *indexes, Py_ssize_t n, const tables_t *t,
                       out_t *o, Py_ssize_t *detail)
{
    int status = RC_OK;
    enc_ctx e;
    e.t = t;
    e.n_rows = (size_t)t->n_rows;
    e.row_syms = t->L > 1 ? (size_t)(t->L - 1) : 1;
    e.xmax_shift = 63u - (unsigned)t->prec;
    e.o = o;
    e.rows = (enc_row *)calloc(e.n_rows ? e.n_rows : 1, sizeof(enc_row));
    e.syms = (enc_sym *)malloc((e.n_rows ? e.n_rows : 1) * e.row_syms * sizeof(enc_sym));
    o->cap = 2 * (size_t)n + RC_RESERVE; /* enough unless escapes are frequent */
    o->buf = (uint8_t *)malloc(o->cap);
    if (e.rows == NULL || e.syms == NULL || o->buf == NULL) {
        status = RC_ERR_NOMEM;
        goto done;
    }
    o->p = o->buf + o->cap;

    /* symbol i uses state x[i % 2]; last to first, two symbols per iteration */
    uint64_t x0 = RC_L, x1 = RC_L;
    uint8_t *p = o->p;
    Py_ssize_t i = n;
    if (i & 1) {
        i--;
        status = enc_symbol(&e, symbols[i], indexes[i], &x0, &p);
    }
    while (status == RC_OK && i > 0) {
        i -= 2;
        status = enc_symbol(&e, symbols[i + 1], indexes[i + 1], &x1, &p);
        if (status != RC_OK) {
            i++;
            break;
        }
        status = enc_symbol(&e, symbols[i], indexes[i], &x0, &p);
    }
    if (status == RC_OK) {
        p -= 16;
        wr64(p, x0);
        wr64(p + 8, x1);
        p -= 1;
        *p = (uint8_t)((RC_FORMAT_VERSION << 4) | (unsigned)(t->prec - RC_PREC_MIN));
    } else {
        *detail = status == RC_ERR_TABLE ? (Py_ssize_t)indexes[i] : i;
    }
    o->p = p;
done:
    free(e.rows);
    free(e.syms);
    return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Decoder                                                                                  */

/* bypass step: returns 0 when the stream ran out of words */
static inline int dec_bits(uint64_t *x, const uint8_t **pp, const uint8_t *end, unsigned k, uint32_t *u)
{
    uint64_t v = *x;
    *u = (uint32_t)(v & (((uint64_t)1 << k) - 1));
    v >>= k;
    if (v < RC_L) {
        if (end - *pp < 4)
            return 0;
        v = (v << 32) | rd32(*pp);
        *pp += 4;
    }
    *x = v;
    return 1;
}

/* The escape symbol was decoded: read the bypass value and store the symbol in *out. */
static int dec_escape(uint64_t *x, const uint8_t **pp, const uint8_t *end, const dec_row *r, int32_t *out)
{
    unsigned nbits = 0;
    uint32_t bit, lo = 0, hi = 0;
    for (;;) {
        if (!dec_bits(x, pp, end, 1, &bit))
            return RC_ERR_TRUNCATED;
        if (!bit)
            break;
        if (++nbits > RC_MAX_GAMMA)
            return RC_ERR_ESCAPE;
    }
    if (nbits > 0 && !dec_bits(x, pp, end, nbits < RC_CHUNK_BITS ? nbits : RC_CHUNK_BITS, &lo))
        return RC_ERR_TRUNCATED;
    if (nbits > RC_CHUNK_BITS && !dec_bits(x, pp, end, nbits - RC_CHUNK_BITS, &hi))
        return RC_ERR_TRUNCATED;
    uint64_t m = ((uint64_t)1 << nbits) | ((uint64_t)hi << RC_CHUNK_BITS) | lo;
    uint64_t z = m - 1;
    int64_t e = (int64_t)(z >> 1); /* < 2^32 */
    int64_t v = (z & 1) ? -1 - e : (int64_t)r->n + e;
    int64_t value = v + r->offset;
    if (value < INT32_MIN || value > INT32_MAX)
        return RC_ERR_OVERFLOW;
    *out = (int32_t)value;
    return RC_OK;
}

typedef struct {
    const tables_t *t;
    dec_row *rows;
    uint32_t *cdfs;
    uint16_t *luts;
    size_t n_rows, L;
    const uint8_t *end;
    unsigned prec, bshift;
    uint32_t mask;
} dec_ctx;

/* Decodes all steps of one symbol from state *x. */
static inline int dec_symbol(const dec_ctx *d, int32_t index, uint64_t *x, const uint8_t **pp, int32_t *out)
{
    uint32_t c = (uint32_t)index;
    if (c >= d->n_rows)
        return RC_ERR_INDEX;
    dec_row *r = &d->rows[c];
    if (!r->ready &&
        !dec_row_build(r, d->cdfs + (size_t)c * d->L, d->luts + ((size_t)c << RC_LUT_BITS), d->t, (Py_ssize_t)c))
        return RC_ERR_TABLE;
    const uint32_t *cdf = r->cdf;
    uint64_t xv = *x;
    uint32_t slot = (uint32_t)xv & d->mask;
    uint32_t s = r->lut[slot >> d->bshift];
    while (cdf[s + 1] <= slot) /* terminates: cdf[len - 1] = 2^p > slot */
        s++;
    uint32_t start = cdf[s];
    xv = (uint64_t)(cdf[s + 1] - start) * (xv >> d->prec) + (slot - start);
    if (xv < RC_L) {
        if (d->end - *pp < 4)
            return RC_ERR_TRUNCATED;
        xv = (xv << 32) | rd32(*pp);
        *pp += 4;
    }
    *x = xv;
    if (s < r->lim) {
        *out = (int32_t)(r->offset + (int64_t)s);
        return RC_OK;
    }
    if (s != r->n)
        return RC_ERR_OVERFLOW; /* a direct value that does not fit int32 */
    return dec_escape(x, pp, d->end, r, out);
}

static int decode_core(const uint8_t *data, Py_ssize_t len, const int32_t *indexes, Py_ssize_t n,
                       const tables_t *t, int32_t *out, Py_ssize_t *detail)
{
    if (len < RC_HEADER_BYTES || (len - RC_HEADER_BYTES) % 4 != 0) {
        *detail = len;
        return RC_ERR_SHORT;
    }
    if (data[0] != (uint8_t)((RC_FORMAT_VERSION << 4) | (unsigned)(t->prec - RC_PREC_MIN))) {
        *detail = data[0];
        return RC_ERR_HEADER;
    }
    uint64_t x0 = rd64(data + 1), x1 = rd64(data + 9);
    if (x0 < RC_L || x0 >= RC_X_END || x1 < RC_L || x1 >= RC_X_END)
        return RC_ERR_STATE;

    int status = RC_OK;
    dec_ctx d;
    d.t = t;
    d.n_rows = (size_t)t->n_rows;
    d.L = (size_t)t->L;
    d.end = data + len;
    d.prec = (unsigned)t->prec;
    d.bshift = d.prec - RC_LUT_BITS;
    d.mask = ((uint32_t)1 << d.prec) - 1;
    size_t rows_alloc = d.n_rows ? d.n_rows : 1;
    d.rows = (dec_row *)calloc(rows_alloc, sizeof(dec_row));
    d.cdfs = (uint32_t *)malloc(rows_alloc * d.L * sizeof(uint32_t));
    d.luts = (uint16_t *)malloc(rows_alloc * ((size_t)1 << RC_LUT_BITS) * sizeof(uint16_t));
    if (d.rows == NULL || d.cdfs == NULL || d.luts == NULL) {
        status = RC_ERR_NOMEM;
        goto done;
    }

    /* symbol i uses state x[i % 2]; first to last, two symbols per iteration */
    const uint8_t *p = data + RC_HEADER_BYTES;
    Py_ssize_t i = 0;
    for (; i + 1 < n; i += 2) {
        status = dec_symbol(&d, indexes[i], &x0, &p, &out[i]);
        if (status != RC_OK)
            break;
        status = dec_symbol(&d, indexes[i + 1], &x1, &p, &out[i + 1]);
        if (status != RC_OK) {
            i++;
            break;
        }
    }
    if (status == RC_OK && i < n)
        status = dec_symbol(&d, indexes[i], &x0, &p, &out[i]);
    if (status != RC_OK)
        *detail = status == RC_ERR_TABLE ? (Py_ssize_t)indexes[i] : i;
    else if (p != d.end) {
        status = RC_ERR_TRAILING;
        *detail = (Py_ssize_t)(d.end - p);
    } else if (x0 != RC_L || x1 != RC_L) {
        status = RC_ERR_FINAL;
    }
done:
    free(d.rows);
    free(d.cdfs);
    free(d.luts);
    return status;
}

/* ---------------------------------------------------------------------------------------- */
/* Python glue                                                                              */

/* A C-contiguous native int32 buffer of any shape; returns 0 with an exception on error. */
static int get_i32(PyObject *obj, Py_buffer *view, int writable, const char *name)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) != 0)
        return 0;
    const char *f = view->format ? view->format : "B";
    size_t fl = strlen(f);
    char code = fl ? f[fl - 1] : '?';
    if (view->itemsize != 4 || !(code == 'i' || code == 'l') || (fl == 2 && (f[0] == '>' || f[0] == '!')) || fl > 2) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous native int32 buffer (format '%s', itemsize %zd)",
                     name, f, view->itemsize);
        PyBuffer_Release(view);
        return 0;
    }
    return 1;
}

typedef struct {
    Py_buffer cdfs, lengths, offsets;
    tables_t t;
} table_views;

static void release_tables(table_views *tv)
{
    if (tv->cdfs.obj)
        PyBuffer_Release(&tv->cdfs);
    if (tv->lengths.obj)
        PyBuffer_Release(&tv->lengths);
    if (tv->offsets.obj)
        PyBuffer_Release(&tv->offsets);
}

static int get_tables(table_views *tv, PyObject *cdfs, Py_ssize_t L, PyObject *lengths, PyObject *offsets, int prec)
{
    memset(tv, 0, sizeof(*tv));
    if (prec < RC_PREC_MIN || prec > RC_PREC_MAX) {
        PyErr_Format(PyExc_ValueError, "precision %d outside [%d, %d]", prec, RC_PREC_MIN, RC_PREC_MAX);
        return 0;
    }
    if (L < 3) {
        PyErr_Format(PyExc_ValueError, "cdf row length %zd < 3", L);
        return 0;
    }
    if (!get_i32(cdfs, &tv->cdfs, 0, "cdfs") || !get_i32(lengths, &tv->lengths, 0, "cdf_lengths") ||
        !get_i32(offsets, &tv->offsets, 0, "offsets")) {
        release_tables(tv);
        return 0;
    }
    Py_ssize_t n_rows = tv->lengths.len / 4;
    if (tv->offsets.len / 4 != n_rows || tv->cdfs.len / 4 / L != n_rows || tv->cdfs.len / 4 % L != 0) {
        PyErr_SetString(PyExc_ValueError, "cdfs, cdf_lengths and offsets disagree on the number of rows");
        release_tables(tv);
        return 0;
    }
    tv->t.cdfs = (const int32_t *)tv->cdfs.buf;
    tv->t.lengths = (const int32_t *)tv->lengths.buf;
    tv->t.offsets = (const int32_t *)tv->offsets.buf;
    tv->t.n_rows = n_rows;
    tv->t.L = L;
    tv->t.prec = prec;
    return 1;
}

PyDoc_STRVAR(encode_doc,
             "encode(symbols, indexes, cdfs, L, cdf_lengths, offsets, precision) -> (status, bytes | detail)\n\n"
             "Private: use cvae.edge.codec.rangecoder.encode. Buffers are native int32, cdfs is C x L.");

static PyObject *rc_encode(PyObject *self, PyObject *args)
{
    PyObject *o_sym, *o_idx, *o_cdfs, *o_len, *o_off;
    Py_ssize_t L;
    int prec;
    (void)self;
    if (!PyArg_ParseTuple(args, "OOOnOOi:encode", &o_sym, &o_idx, &o_cdfs, &L, &o_len, &o_off, &prec))
        return NULL;
    table_views tv;
    if (!get_tables(&tv, o_cdfs, L, o_len, o_off, prec))
        return NULL;
    Py_buffer sym, idx;
    if (!get_i32(o_sym, &sym, 0, "symbols")) {
        release_tables(&tv);
        return NULL;
    }
    if (!get_i32(o_idx, &idx, 0, "indexes")) {
        PyBuffer_Release(&sym);
        release_tables(&tv);
        return NULL;
    }
    PyObject *result = NULL;
    if (sym.len != idx.len) {
        PyErr_SetString(PyExc_ValueError, "symbols and indexes differ in length");
    } else {
        out_t o = {NULL, 0, NULL};
        Py_ssize_t detail = 0;
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = encode_core((const int32_t *)sym.buf, (const int32_t *)idx.buf, sym.len / 4, &tv.t, &o, &detail);
        Py_END_ALLOW_THREADS
        if (status == RC_ERR_NOMEM) {
            PyErr_NoMemory();
        } else if (status != RC_OK) {
            result = Py_BuildValue("(in)", status, detail);
        } else {
            PyObject *bytes = PyBytes_FromStringAndSize((const char *)o.p, (Py_ssize_t)(o.buf + o.cap - o.p));
            if (bytes != NULL) {
                result = Py_BuildValue("(iN)", RC_OK, bytes);
            }
        }
        free(o.buf);
    }
    PyBuffer_Release(&sym);
    PyBuffer_Release(&idx);
    release_tables(&tv);
    return result;
}

PyDoc_STRVAR(decode_doc,
             "decode(data, indexes, cdfs, L, cdf_lengths, offsets, precision, out) -> (status, detail)\n\n"
             "Private: use cvae.edge.codec.rangecoder.decode. Writes len(indexes) int32 symbols into out.");

static PyObject *rc_decode(PyObject *self, PyObject *args)
{
    PyObject *o_idx, *o_cdfs, *o_len, *o_off, *o_out;
    Py_buffer data;
    Py_ssize_t L;
    int prec;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*OOnOOiO:decode", &data, &o_idx, &o_cdfs, &L, &o_len, &o_off, &prec, &o_out))
        return NULL;
    table_views tv;
    if (!get_tables(&tv, o_cdfs, L, o_len, o_off, prec)) {
        PyBuffer_Release(&data);
        return NULL;
    }
    Py_buffer idx, out;
    int have_idx = get_i32(o_idx, &idx, 0, "indexes");
    int have_out = have_idx && get_i32(o_out, &out, 1, "out");
    PyObject *result = NULL;
    if (have_out && out.len != idx.len) {
        PyErr_SetString(PyExc_ValueError, "out and indexes differ in length");
    } else if (have_out) {
        Py_ssize_t detail = 0;
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = decode_core((const uint8_t *)data.buf, data.len, (const int32_t *)idx.buf, idx.len / 4, &tv.t,
                             (int32_t *)out.buf, &detail);
        Py_END_ALLOW_THREADS
        if (status == RC_ERR_NOMEM)
            PyErr_NoMemory();
        else
            result = Py_BuildValue("(in)", status, detail);
    }
    if (have_out)
        PyBuffer_Release(&out);
    if (have_idx)
        PyBuffer_Release(&idx);
    release_tables(&tv);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef rc_methods[] = {
    {"encode", rc_encode, METH_VARARGS, encode_doc},
    {"decode", rc_decode, METH_VARARGS, decode_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef rc_module = {
    PyModuleDef_HEAD_INIT, "_rangecoder", "rANS coder core; see cvae.edge.codec.rangecoder and docs/range_coder.md.",
    -1, rc_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__rangecoder(void)
{
    PyObject *m = PyModule_Create(&rc_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "FORMAT_VERSION", RC_FORMAT_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "PRECISION_MIN", RC_PREC_MIN) < 0 ||
        PyModule_AddIntConstant(m, "PRECISION_MAX", RC_PREC_MAX) < 0 ||
        PyModule_AddIntConstant(m, "OK", RC_OK) < 0 || PyModule_AddIntConstant(m, "ERR_INDEX", RC_ERR_INDEX) < 0 ||
        PyModule_AddIntConstant(m, "ERR_TABLE", RC_ERR_TABLE) < 0 ||
        PyModule_AddIntConstant(m, "ERR_SHORT", RC_ERR_SHORT) < 0 ||
        PyModule_AddIntConstant(m, "ERR_HEADER", RC_ERR_HEADER) < 0 ||
        PyModule_AddIntConstant(m, "ERR_STATE", RC_ERR_STATE) < 0 ||
        PyModule_AddIntConstant(m, "ERR_TRUNCATED", RC_ERR_TRUNCATED) < 0 ||
        PyModule_AddIntConstant(m, "ERR_ESCAPE", RC_ERR_ESCAPE) < 0 ||
        PyModule_AddIntConstant(m, "ERR_OVERFLOW", RC_ERR_OVERFLOW) < 0 ||
        PyModule_AddIntConstant(m, "ERR_TRAILING", RC_ERR_TRAILING) < 0 ||
        PyModule_AddIntConstant(m, "ERR_FINAL", RC_ERR_FINAL) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
