"""Clean-room decoder of version 10's coefficient stream (docs/bitstream.md, "Version 10"), from that section and
version 5's alone: the same layout, contexts and binarisation as crtile.decode_coefs, with the zero flag, the unary
positions 0..10 and the bit below the leading one (k = 1..4) decoded with the logistic mixture of five models."""
from __future__ import annotations

import numpy as np

from crcoders import BinaryDecoder, CleanroomError, Model5

_EDGES = (1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224)
BUCKET = [sum(1 for e in _EDGES if e <= v) for v in range(256)]
T = (1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994, 3348, 3607, 3785,
     3901, 3975, 4022, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094)


def bucket(z: int) -> int:
    return BUCKET[min(z, 255)]


def squash(d: int) -> int:
    i = d // 128 + 16  # Python's // is the floor the spec asks for
    f = d - 128 * (d // 128)
    return (T[i] * (128 - f) + T[i + 1] * f + 64) // 128


SQUASH = [squash(d) for d in range(-2047, 2048)]  # at d + 2047


def _stretch_table() -> list[int]:
    out = []
    d = -2047
    for p in range(4096):
        while d <= 2047 and SQUASH[d + 2047] < p:
            d += 1
        out.append(d if d <= 2047 else 2047)
    return out


STRETCH = _stretch_table()
#: the input of a model from u (version 5: floor((fast + slow) / 32); one-estimate: floor(P0 / 16))
INPUT = [STRETCH[4096 - min(max(u, 4), 4092)] for u in range(4096)]


class XModel:
    """One-estimate model: P0 in 16 bits, count n."""

    __slots__ = ("p0", "n")

    def __init__(self):
        self.p0 = 32768
        self.n = 0

    def update(self, b: int) -> None:
        r = min((self.n + 2).bit_length() - 1, 5)
        if b:
            self.p0 -= self.p0 >> r
        else:
            self.p0 += (65535 - self.p0) >> r
        self.n = min(self.n + 1, 1024)


def mixed_bit(dec: BinaryDecoder, in0: Model5, xs: list[XModel], w: list[int]) -> int:
    """One mixed decision: steps 1 to 4 of the spec."""
    s = [INPUT[(in0.fast + in0.slow) // 32]] + [INPUT[x.p0 // 16] for x in xs]
    dot = sum(wj * sj for wj, sj in zip(w, s))
    p = SQUASH[min(max(dot // 65536, -2047), 2047) + 2047]
    b = dec.bit(min(max(16 * (4096 - p), 64), 65472))
    err = 4096 * b - p
    for j in range(5):
        w[j] = min(max(w[j] + (s[j] * err + 2048) // 4096, -(1 << 20)), 1 << 20)
    in0.update(b)
    for x in xs:
        x.update(b)
    return b


def magnitude_map(a: list[list[int]]) -> list[list[int]]:
    """The map of an array of magnitudes (already min(|z|, 255))."""
    ah, aw = len(a), len(a[0])
    out = []
    for i in range(ah):
        row = []
        for j in range(aw):
            s = sum(a[ii][jj] for ii in range(max(i - 1, 0), min(i + 2, ah)) for jj in range(max(j - 1, 0), min(j + 2, aw)))
            row.append(1 + 7 * (bucket((s + 2) // 4) // 2) + min(a[i][j].bit_length(), 6))
        out.append(row)
    return out


def _tri(v: int) -> int:
    return 0 if v == 0 else (1 if v > 0 else 2)


def _class_models() -> dict:
    return {
        "zero": [Model5() for _ in range(16)],
        "quiet": Model5(),
        "sign": [Model5() for _ in range(27)],
        "unary": [[Model5() for _ in range(32)] for _ in range(16)],
        "mant1": [[Model5() for _ in range(32)] for _ in range(16)],
        "mant2": [[[Model5(), Model5()] for _ in range(32)] for _ in range(16)],
        "x": [[[XModel() for _ in range(16)] for _ in range(64)] for _ in range(4)],
        "wt": [[[20000, 13000, 13000, 13000, 13000] for _ in range(16)] for _ in range(20)],
    }


def decode_coefs_v10(data: bytes, C: int, H: int, W: int, order, shapes):
    """Version 10's ``coefs`` stream -> (per component a dict subband -> int64 array, the flat values in coding
    order). ``order``, ``shapes``: version 5's coding order and subband shapes (crtile)."""
    total = C * H * W
    if total > 5701 * (len(data) + 1):
        raise CleanroomError("coefs: more coefficients than the stream can hold")
    dec = BinaryDecoder(data)
    models = [_class_models() for _ in range(4)]
    comps, mags, maps, flat = [], [], [], []
    for c in range(C):
        bands, bmags, bmaps = {}, {}, {}
        for key in order:
            name, j = key
            h, w = shapes[key]
            md = models[0 if name == "LL" else min(j, 3)]
            pkey = (name, j + 1) if name != "LL" else None
            pmag = bmags.get(pkey)  # the parent (same component), decoded before
            pmap = bmaps.get(pkey)
            prevq = comps[c - 1][key] if c > 0 else None
            prevm = mags[c - 1][key] if c > 0 else None
            prevmap = maps[c - 1][key] if c > 0 else None
            q = [[0] * w for _ in range(h)]
            m = [[0] * w for _ in range(h)]
            for y in range(h):
                for x in range(w):
                    def mg(yy, xx):
                        return m[yy][xx] if 0 <= yy and 0 <= xx < w else 0
                    Wm, Nm, NWm, NEm = mg(y, x - 1), mg(y - 1, x), mg(y - 1, x - 1), mg(y - 1, x + 1)
                    WWm, NNm = mg(y, x - 2), mg(y - 2, x)
                    nsum = 2 * Wm + 2 * Nm + NWm + NEm
                    if pmag is not None:
                        py, px = min(y >> 1, len(pmag) - 1), min(x >> 1, len(pmag[0]) - 1)
                        par, c3 = pmag[py][px], pmap[py][px]
                    else:
                        par, c3 = 0, 0
                    B = prevm[y][x] if prevm is not None else 0
                    c4 = prevmap[y][x] if prevmap is not None else 0
                    ctx = bucket((nsum + 2 * par + 2 * B + 1) // 2)
                    ba = bucket((nsum + 1) // 2)
                    c2 = 4 * ba + min((WWm + NNm).bit_length(), 3)
                    c5 = 16 * min(Wm, 3) + 4 * min(Nm, 3) + min(B, 3)
                    wset = md["wt"][4 * ((1 + min(B.bit_length(), 3)) if c > 0 else 0) + ba // 4]
                    Wq = q[y][x - 1] if x > 0 else 0
                    Nq = q[y - 1][x] if y > 0 else 0
                    Bq = prevq[y][x] if prevq is not None else 0
                    sctx = 9 * _tri(Wq) + 3 * _tri(Nq) + _tri(Bq)
                    quiet = ctx == 0 and c2 == 0 and c3 <= 1 and c4 <= 1
                    xm = md["x"]

                    def mixed(slot, in0):
                        return mixed_bit(dec, in0, [xm[0][c2][slot], xm[1][c3][slot], xm[2][c4][slot],
                                                    xm[3][c5][slot]], wset[slot])

                    nz = md["quiet"].decode(dec) if quiet else mixed(0, md["zero"][ctx])
                    v = 0
                    if nz:
                        neg = md["sign"][sctx].decode(dec)
                        k = 0
                        while k < 31:
                            b = mixed(1 + k, md["unary"][ctx][k]) if k <= 10 else md["unary"][ctx][k].decode(dec)
                            if not b:
                                break
                            k += 1
                        a = 1
                        if k >= 1:
                            m1 = mixed(11 + k, md["mant1"][ctx][k]) if k <= 4 else md["mant1"][ctx][k].decode(dec)
                            a = (a << 1) | m1
                            if k >= 2:
                                a = (a << 1) | md["mant2"][ctx][k][m1].decode(dec)
                                i = k - 2
                                while i > 0:
                                    nb = min(i, 16)
                                    a = (a << nb) | dec.raw(nb)
                                    i -= 16
                        if a > (1 << 30):
                            raise CleanroomError("coefs: |q| > 2^30")
                        v = -a if neg else a
                    q[y][x] = v
                    m[y][x] = min(abs(v), 255)
                    flat.append(v)
            bands[key], bmags[key], bmaps[key] = q, m, magnitude_map(m)
        comps.append(bands)
        mags.append(bmags)
        maps.append(bmaps)
    dec.finish()
    out = [{k: np.array(v, dtype=np.int64).reshape(shapes[k]) for k, v in b.items()} for b in comps]
    return out, flat
