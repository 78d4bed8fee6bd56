/*
 * ccsds123: our own implementation of the CCSDS 123.0-B-2 predictor and quantizer (lossless and
 * near-lossless with one absolute error limit for all bands) with the sample-adaptive entropy coder.
 * Written from the standard (CCSDS 123.0-B-2, Blue Book, Feb 2019, sections 4 and 5.4.3.2); not
 * derived from another implementation. See README.md for what is simplified.
 *
 *   ccsds123 enc IN.raw OUT.c123 NZ NY NX D SIGNED E [P OMEGA VMIN VMAX TINC_EXP K THETA PHI PSI]
 *   ccsds123 dec IN.c123 OUT.raw
 *
 * IN.raw / OUT.raw: int32 little-endian samples in BSQ order [NZ][NY][NX]. Samples are processed in
 * BIP order (y, x, z), which the standard allows; with per-band weights and per-band coder statistics
 * the order changes only the interleaving of codewords, not their lengths.
 *
 * Parameters fixed here (a mission-like configuration): full prediction mode, wide neighbour-oriented
 * local sums, default weight initialisation, weight exponent offsets 0, register size R = 64 (so the
 * mod_R wrap never triggers for D <= 16), U_max = 18, gamma_0 = 1, gamma_* = 6.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

#define MAGIC "C123"
#define HEADER_BYTES 32

typedef struct {
    int nz, ny, nx, D, is_signed, E, P, omega, vmin, vmax, tinc_exp, K, theta_res, phi, psi;
    int umax, gamma0, gammastar;
} Params;

/* ---------- bit I/O (MSB first) ---------- */
typedef struct {
    uint8_t *buf;
    size_t cap, pos; /* pos in bytes */
    uint64_t acc;
    int nacc;
} BitWriter;

static void bw_put(BitWriter *w, uint64_t v, int n) { /* n <= 32 */
    w->acc = (w->acc << n) | (v & ((n == 64) ? ~0ULL : ((1ULL << n) - 1)));
    w->nacc += n;
    while (w->nacc >= 8) {
        if (w->pos == w->cap) {
            w->cap *= 2;
            w->buf = realloc(w->buf, w->cap);
            if (!w->buf) { fprintf(stderr, "out of memory\n"); exit(3); }
        }
        w->buf[w->pos++] = (uint8_t)(w->acc >> (w->nacc - 8));
        w->nacc -= 8;
    }
}
static void bw_zeros(BitWriter *w, int n) { while (n > 24) { bw_put(w, 0, 24); n -= 24; } bw_put(w, 0, n); }
static void bw_flush(BitWriter *w) { if (w->nacc) bw_put(w, 0, 8 - w->nacc); }

typedef struct {
    const uint8_t *buf;
    size_t len;
    size_t bitpos;
} BitReader;

static int br_bit(BitReader *r) {
    size_t byte = r->bitpos >> 3;
    if (byte >= r->len) { fprintf(stderr, "truncated bitstream\n"); exit(4); }
    int b = (r->buf[byte] >> (7 - (r->bitpos & 7))) & 1;
    r->bitpos++;
    return b;
}
static uint64_t br_get(BitReader *r, int n) {
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v = (v << 1) | (uint64_t)br_bit(r);
    return v;
}

/* ---------- arithmetic helpers ---------- */
static inline i64 clip(i64 v, i64 lo, i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }
static inline i64 floordiv(i64 a, i64 b) { /* b > 0 */
    i64 q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}
static inline i64 sgn(i64 v) { return (v > 0) - (v < 0); }

/* ---------- sample-adaptive entropy coder (5.4.3.2) ---------- */
typedef struct { i64 counter, accum; } CoderState;

static int code_k(const CoderState *s, int D) {
    i64 rhs = s->accum + ((49 * s->counter) >> 7);
    if (2 * s->counter > rhs) return 0;
    int kmax = D - 2 > 0 ? D - 2 : 0, k = 0;
    while (k < kmax && (s->counter << (k + 1)) <= rhs) k++;
    return k;
}
static void coder_update(CoderState *s, i64 delta, int gammastar) {
    if (s->counter < (1LL << gammastar) - 1) {
        s->accum += delta;
        s->counter += 1;
    } else {
        s->accum = (s->accum + delta + 1) >> 1;
        s->counter = (s->counter + 1) >> 1;
    }
}

/* ---------- predictor + quantizer + coder, shared by encoder and decoder ---------- */
/* samples: int32 BSQ. Encoder reads it; decoder writes the reconstruction into it. */
static void run(const Params *p, int32_t *samples, BitWriter *bw, BitReader *br) {
    const int nz = p->nz, ny = p->ny, nx = p->nx, D = p->D, om = p->omega;
    const i64 plane = (i64)ny * nx;
    const i64 smin = p->is_signed ? -(1LL << (D - 1)) : 0;
    const i64 smax = p->is_signed ? (1LL << (D - 1)) - 1 : (1LL << D) - 1;
    const i64 smid = p->is_signed ? 0 : (1LL << (D - 1));
    const i64 wmin = -(1LL << (om + 2)), wmax = (1LL << (om + 2)) - 1;
    const i64 m = p->E, step = 2 * m + 1;
    const int nw = p->P + 3; /* full prediction: N, W, NW + P spectral */
    const i64 tinc = 1LL << p->tinc_exp;

    int32_t *rep = malloc(sizeof(int32_t) * nz * plane);   /* sample representatives s'' */
    int32_t *diff = malloc(sizeof(int32_t) * nz * plane);  /* central local differences d */
    i64 *w = malloc(sizeof(i64) * nz * nw);
    CoderState *cs = malloc(sizeof(CoderState) * nz);
    if (!rep || !diff || !w || !cs) { fprintf(stderr, "out of memory\n"); exit(3); }

    for (int z = 0; z < nz; z++) {
        i64 *wz = w + (i64)z * nw;
        wz[0] = wz[1] = wz[2] = 0; /* directional weights start at 0 (4.6.3.2) */
        int Pz = z < p->P ? z : p->P;
        i64 prev = 0;
        for (int i = 0; i < p->P; i++) {
            i64 v = 0;
            if (i < Pz) v = (i == 0) ? (7LL << om) / 8 : prev / 8; /* 7/8 2^Omega, then floor(1/8 w^(i-1)) */
            wz[3 + i] = v;
            prev = v;
        }
        cs[z].counter = 1LL << p->gamma0;
        cs[z].accum = ((3LL * (1LL << (p->K + 6)) - 49) * cs[z].counter) >> 7;
    }

    for (int y = 0; y < ny; y++) {
        for (int x = 0; x < nx; x++) {
            const i64 t = (i64)y * nx + x;
            for (int z = 0; z < nz; z++) {
                const i64 idx = z * plane + t;
                const int Pz = z < p->P ? z : p->P;
                i64 *wz = w + (i64)z * nw;
                if (t == 0) {
                    /* first sample of a band: no quantization (q = Delta), coded with D raw bits */
                    i64 sdr = (Pz > 0) ? 2 * (i64)rep[idx - plane] : 2 * smid;
                    i64 shat = sdr >> 1;
                    i64 theta = (shat - smin < smax - shat) ? shat - smin : smax - shat;
                    i64 q, delta;
                    int odd = (int)(sdr & 1);
                    if (bw) {
                        q = (i64)samples[idx] - shat;
                        i64 aq = q < 0 ? -q : q, sq = odd ? -q : q;
                        delta = (aq > theta) ? aq + theta : ((sq >= 0 && sq <= theta) ? 2 * aq : 2 * aq - 1);
                        bw_put(bw, (uint64_t)delta, D);
                    } else {
                        delta = (i64)br_get(br, D);
                        if (delta > 2 * theta) q = (theta == shat - smin) ? delta - theta : -(delta - theta);
                        else if ((delta & 1) == 0) q = odd ? -(delta / 2) : delta / 2;
                        else q = odd ? (delta + 1) / 2 : -((delta + 1) / 2);
                        samples[idx] = (int32_t)(shat + q);
                    }
                    rep[idx] = (int32_t)(shat + q);
                    diff[idx] = 0;
                    continue;
                }
                /* local sum, wide neighbour-oriented (4.4) */
                const int32_t *r = rep + z * plane;
                i64 sigma;
                if (y == 0) sigma = 4 * (i64)r[t - 1];
                else if (nx == 1) sigma = 4 * (i64)r[t - nx]; /* one column: no north-east neighbour */
                else if (x == 0) sigma = 2 * ((i64)r[t - nx] + r[t - nx + 1]);
                else if (x == nx - 1) sigma = (i64)r[t - 1] + r[t - nx - 1] + 2 * (i64)r[t - nx];
                else sigma = (i64)r[t - 1] + r[t - nx - 1] + r[t - nx] + r[t - nx + 1];
                /* directional local differences (4.5) */
                i64 U[3 + 16];
                if (y > 0) {
                    U[0] = 4 * (i64)r[t - nx] - sigma;
                    U[1] = (x > 0 ? 4 * (i64)r[t - 1] : 4 * (i64)r[t - nx]) - sigma;
                    U[2] = (x > 0 ? 4 * (i64)r[t - nx - 1] : 4 * (i64)r[t - nx]) - sigma;
                } else {
                    U[0] = U[1] = U[2] = 0;
                }
                for (int i = 0; i < Pz; i++) U[3 + i] = diff[idx - (i64)(i + 1) * plane];
                /* prediction (4.7) */
                i64 dhat = 0;
                for (int j = 0; j < 3 + Pz; j++) dhat += wz[j] * U[j];
                i64 shr = dhat + ((sigma - 4 * smid) << om) + (smid << (om + 2)) + (1LL << (om + 1));
                shr = clip(shr, smin << (om + 2), (smax << (om + 2)) + (1LL << (om + 1)));
                i64 sdr = shr >> (om + 1);
                i64 shat = sdr >> 1;
                /* quantization and mapping (4.8, 4.11) */
                i64 theta_lo = floordiv(shat - smin + m, step), theta_hi = floordiv(smax - shat + m, step);
                i64 theta = theta_lo < theta_hi ? theta_lo : theta_hi;
                int odd = (int)(sdr & 1);
                i64 q, delta;
                CoderState *c = cs + z;
                int k = code_k(c, D);
                if (bw) {
                    i64 res = (i64)samples[idx] - shat;
                    q = sgn(res) * (((res < 0 ? -res : res) + m) / step);
                    i64 aq = q < 0 ? -q : q, sq = odd ? -q : q;
                    delta = (aq > theta) ? aq + theta : ((sq >= 0 && sq <= theta) ? 2 * aq : 2 * aq - 1);
                    i64 u = delta >> k;
                    if (u < p->umax) {
                        bw_zeros(bw, (int)u);
                        bw_put(bw, 1, 1);
                        if (k) bw_put(bw, (uint64_t)delta, k);
                    } else {
                        bw_zeros(bw, p->umax);
                        bw_put(bw, (uint64_t)delta, D);
                    }
                } else {
                    int u = 0;
                    while (u < p->umax && !br_bit(br)) u++;
                    if (u < p->umax) delta = ((i64)u << k) | (i64)br_get(br, k);
                    else delta = (i64)br_get(br, D);
                    if (delta > 2 * theta) q = (theta == theta_lo) ? delta - theta : -(delta - theta);
                    else if ((delta & 1) == 0) q = odd ? -(delta / 2) : delta / 2;
                    else q = odd ? (delta + 1) / 2 : -((delta + 1) / 2);
                }
                coder_update(c, delta, p->gammastar);
                i64 sprime = clip(shat + q * step, smin, smax); /* clipped quantizer bin center */
                if (!bw) samples[idx] = (int32_t)sprime;
                /* sample representative (4.9) */
                const int th = p->theta_res;
                i64 num = 4 * ((1LL << th) - p->phi) * ((sprime << om) - sgn(q) * m * p->psi * (1LL << (om - th)))
                          + p->phi * shr - p->phi * (1LL << (om + 1));
                i64 sdrrep = num >> (om + th + 1);
                i64 srep = (sdrrep + 1) >> 1;
                rep[idx] = (int32_t)srep;
                diff[idx] = (int32_t)(4 * srep - sigma);
                /* weight update (4.10) */
                i64 err = 2 * sprime - sdr;
                i64 rho = clip(p->vmin + floordiv(t - nx, tinc), p->vmin, p->vmax) + D - om;
                int sg = err >= 0 ? 1 : -1;
                for (int j = 0; j < 3 + Pz; j++) {
                    i64 v = sg * U[j], inc;
                    if (rho >= 0) inc = (v + (1LL << rho)) >> (rho + 1);
                    else inc = (v * (1LL << (-rho)) + 1) >> 1;
                    wz[j] = clip(wz[j] + inc, wmin, wmax);
                }
            }
        }
    }
    free(rep); free(diff); free(w); free(cs);
}

/* ---------- header: 32 bytes, big-endian ---------- */
static void put_u32(uint8_t *b, uint32_t v) { b[0] = v >> 24; b[1] = v >> 16; b[2] = v >> 8; b[3] = v; }
static uint32_t get_u32(const uint8_t *b) { return ((uint32_t)b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]; }

static void write_header(uint8_t *h, const Params *p) {
    memcpy(h, MAGIC, 4);
    put_u32(h + 4, p->nz); put_u32(h + 8, p->ny); put_u32(h + 12, p->nx); put_u32(h + 16, p->E);
    h[20] = p->D; h[21] = p->is_signed; h[22] = p->P; h[23] = p->omega;
    h[24] = (uint8_t)(int8_t)p->vmin; h[25] = (uint8_t)(int8_t)p->vmax; h[26] = p->tinc_exp; h[27] = p->K;
    h[28] = p->theta_res; h[29] = p->phi; h[30] = p->psi; h[31] = 0;
}
static void read_header(const uint8_t *h, Params *p) {
    if (memcmp(h, MAGIC, 4)) { fprintf(stderr, "not a ccsds123 stream\n"); exit(4); }
    p->nz = get_u32(h + 4); p->ny = get_u32(h + 8); p->nx = get_u32(h + 12); p->E = get_u32(h + 16);
    p->D = h[20]; p->is_signed = h[21]; p->P = h[22]; p->omega = h[23];
    p->vmin = (int8_t)h[24]; p->vmax = (int8_t)h[25]; p->tinc_exp = h[26]; p->K = h[27];
    p->theta_res = h[28]; p->phi = h[29]; p->psi = h[30];
    p->umax = 18; p->gamma0 = 1; p->gammastar = 6;
}

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n ? n : 1);
    if (fread(b, 1, n, f) != (size_t)n) { perror(path); exit(2); }
    fclose(f);
    *len = n;
    return b;
}
static void spit(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n) { perror(path); exit(2); }
    fclose(f);
}

static int check(const Params *p) {
    if (p->D < 2 || p->D > 16) return fprintf(stderr, "D=%d: this implementation supports 2..16\n", p->D), 1;
    if (p->P < 0 || p->P > 15) return fprintf(stderr, "P=%d not in 0..15\n", p->P), 1;
    if (p->omega < 4 || p->omega > 19) return fprintf(stderr, "Omega=%d not in 4..19\n", p->omega), 1;
    if (p->vmin < -6 || p->vmax > 9 || p->vmin >= p->vmax) return fprintf(stderr, "bad vmin/vmax\n"), 1;
    if (p->tinc_exp < 4 || p->tinc_exp > 11) return fprintf(stderr, "t_inc exponent not in 4..11\n"), 1;
    if (p->K < 0 || p->K > (p->D - 2 < 14 ? p->D - 2 : 14)) return fprintf(stderr, "K=%d out of range\n", p->K), 1;
    if (p->theta_res < 0 || p->theta_res > 4 || p->phi < 0 || p->phi >= (1 << p->theta_res)
        || p->psi < 0 || p->psi >= (1 << p->theta_res))
        return fprintf(stderr, "bad Theta/phi/psi\n"), 1;
    if (p->E < 0 || p->E >= (1 << p->D)) return fprintf(stderr, "E=%d out of range\n", p->E), 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 10 && !strcmp(argv[1], "enc")) {
        Params p = {0};
        p.nz = atoi(argv[4]); p.ny = atoi(argv[5]); p.nx = atoi(argv[6]);
        p.D = atoi(argv[7]); p.is_signed = atoi(argv[8]); p.E = atoi(argv[9]);
        /* defaults: P=3, Omega=19, vmin=-1, vmax=3, t_inc=2^6, K=5, Theta=0, phi=0, psi=0 */
        int def[9] = {3, 19, -1, 3, 6, 5, 0, 0, 0};
        for (int i = 0; i < 9 && 10 + i < argc; i++) def[i] = atoi(argv[10 + i]);
        p.P = def[0]; p.omega = def[1]; p.vmin = def[2]; p.vmax = def[3]; p.tinc_exp = def[4]; p.K = def[5];
        p.theta_res = def[6]; p.phi = def[7]; p.psi = def[8];
        if (p.K > p.D - 2) p.K = p.D - 2;
        p.umax = 18; p.gamma0 = 1; p.gammastar = 6;
        if (check(&p)) return 1;
        size_t len;
        int32_t *s = (int32_t *)slurp(argv[2], &len);
        if (len != (size_t)p.nz * p.ny * p.nx * 4) { fprintf(stderr, "input size mismatch\n"); return 1; }
        i64 smin = p.is_signed ? -(1LL << (p.D - 1)) : 0, smax = p.is_signed ? (1LL << (p.D - 1)) - 1 : (1LL << p.D) - 1;
        for (size_t i = 0; i < len / 4; i++)
            if (s[i] < smin || s[i] > smax) { fprintf(stderr, "sample %d outside D=%d range\n", s[i], p.D); return 1; }
        BitWriter bw = {malloc(1 << 20), 1 << 20, 0, 0, 0};
        uint8_t h[HEADER_BYTES];
        write_header(h, &p);
        for (int i = 0; i < HEADER_BYTES; i++) bw_put(&bw, h[i], 8);
        run(&p, s, &bw, NULL);
        bw_flush(&bw);
        spit(argv[3], bw.buf, bw.pos);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "dec")) {
        size_t len;
        uint8_t *b = slurp(argv[2], &len);
        if (len < HEADER_BYTES) { fprintf(stderr, "truncated header\n"); return 4; }
        Params p;
        read_header(b, &p);
        if (check(&p)) return 1;
        int32_t *s = calloc((size_t)p.nz * p.ny * p.nx, 4);
        BitReader br = {b, len, HEADER_BYTES * 8};
        run(&p, s, NULL, &br);
        if ((br.bitpos + 7) / 8 != len) { fprintf(stderr, "trailing bytes after bitstream\n"); return 4; }
        spit(argv[3], s, (size_t)p.nz * p.ny * p.nx * 4);
        return 0;
    }
    fprintf(stderr, "usage: ccsds123 enc IN.raw OUT NZ NY NX D SIGNED E [P OMEGA VMIN VMAX TINC_EXP K THETA PHI PSI]\n"
                    "       ccsds123 dec IN OUT.raw\n");
    return 1;
}
