"""A pure-Python decoder of the coder stream of tile formats v4, v8 and v9, written from docs/bitstream.md ("Version 4",
"Version 8", "Version 9") alone.

It exists to show the specification is complete: a ground station implementing it from the text decodes the
same samples as the C reference (tests/edge/codec/test_predictive.py compares them). Slow (pure Python); used
on small tiles only.
"""
from __future__ import annotations

EDGES = (1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224)
EDGES9 = EDGES + (320, 448, 640, 896, 1280, 1792)  # version 9: 22 magnitude contexts


def fdiv(a: int, b: int) -> int:
    return a // b  # Python's // is floor division


def tdiv(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def clip(v: int, lo: int, hi: int) -> int:
    return min(max(v, lo), hi)


class Model:
    def __init__(self, warm_up: bool = False):
        self.f = self.s = 32768
        self.seen = 0 if warm_up else None  # version 8's replication-mode models: version 5's warm-up

    def p(self) -> int:
        return clip((self.f + self.s) >> 1, 64, 65472)

    def update(self, bit: int) -> None:
        rf, rs = 5, 7
        if self.seen is not None:
            lg = (self.seen + 2).bit_length() - 1
            rf, rs = min(lg, 5), min(lg, 7)
            self.seen = min(self.seen + 1, 1024)
        if bit:
            self.f -= self.f >> rf
            self.s -= self.s >> rs
        else:
            self.f += (65535 - self.f) >> rf
            self.s += (65535 - self.s) >> rs


class Decoder:
    def __init__(self, data: bytes):
        self.data = b"\0" + data
        self.pos = 0
        self.range = 2 ** 32 - 1
        self.code = 0
        for _ in range(5):
            self.code = (self.code << 8) | self.byte()

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ValueError("stream truncated")
        self.pos += 1
        return self.data[self.pos - 1]

    def bit(self, p: int) -> int:
        bound = (self.range >> 16) * p
        if self.code < bound:
            self.range, bit = bound, 0
        else:
            self.code -= bound
            self.range -= bound
            bit = 1
        while self.range < 2 ** 24:
            self.range = (self.range << 8) & 0xFFFFFFFF
            self.code = ((self.code << 8) | self.byte()) & 0xFFFFFFFF
        return bit

    def raw(self, n: int) -> int:
        r = self.range >> n
        u = self.code // r
        if u >> n:
            raise ValueError("raw chunk out of range")
        self.code -= u * r
        self.range = r
        while self.range < 2 ** 24:
            self.range = (self.range << 8) & 0xFFFFFFFF
            self.code = ((self.code << 8) | self.byte()) & 0xFFFFFFFF
        return u

    def model_bit(self, m: Model) -> int:
        b = self.bit(m.p())
        m.update(b)
        return b


class Band:
    def __init__(self, b: int, v9: bool = False):
        self.w = [0] * 23
        self.w[0] = self.w[1] = 24576
        self.w[2] = -16384
        self.w[6] = 32768
        self.n = 0
        self.a = 0
        nc = 22 if v9 else 16
        self.zero = [Model(v9) for _ in range(nc)]
        self.sign = [Model(v9) for _ in range(27)]
        self.unary = [[Model(v9) for _ in range(41)] for _ in range(nc)]
        self.mant1 = [[Model(v9) for _ in range(41)] for _ in range(nc)]
        self.mant2 = [[[Model(v9), Model(v9)] for _ in range(41)] for _ in range(nc)]
        self.rzero = [Model(True) for _ in range(64 * nc)]
        self.runary = [[Model(True), Model(True)] for _ in range(64 * nc)]


def decode(payload: bytes, C: int, H: int, W: int, E: list[int], lo: list[int], hi: list[int],
           rep: list[tuple[int, int, int, int]], skip, modes: list[int] | None = None, v9: bool = False) -> list:
    """Samples ``r[b][y][x]`` of the tile (skipped samples hold their prediction; the caller zeroes them).
    ``modes``: version 8's or 9's per band (None: version 4, every band in mode 0); ``v9``: version 9's coder."""
    modes = modes or [0] * C
    dec = Decoder(payload)
    r = [[[0] * W for _ in range(H)] for _ in range(C)]
    d = [[[0] * W for _ in range(H)] for _ in range(C)]
    v = [[[0] * W for _ in range(H)] for _ in range(C)]
    pe = [[[0] * W for _ in range(H)] for _ in range(C)]
    bands = [Band(b, v9) for b in range(C)]
    edges, pmax = (EDGES9, 11) if v9 else (EDGES, 3)

    def nb(b, y, x):
        Wv = r[b][y][x - 1] if x > 0 else (r[b][y - 1][x] if y > 0 else (r[b - 1][y][x] if b > 0 else
                                                                            fdiv(lo[b] + hi[b], 2)))
        N = r[b][y - 1][x] if y > 0 else Wv
        NW = r[b][y - 1][x - 1] if y > 0 and x > 0 else N
        NE = r[b][y - 1][x + 1] if y > 0 and x + 1 < W else N
        WW = r[b][y][x - 2] if x > 1 else Wv
        NN = r[b][y - 2][x] if y > 1 else N
        return Wv, N, NW, NE, WW, NN

    def block_has_coded(b, ay, ax, ky, kx, oy, ox):
        y1 = oy if ay == 0 and oy > 0 else ay + ky
        x1 = ox if ax == 0 and ox > 0 else ax + kx
        return any(not skip[b][yy][xx] for yy in range(ay, min(y1, H)) for xx in range(ax, min(x1, W)))

    def mag(q):
        return min(abs(q), 255)

    def t(q):
        return 0 if q == 0 else (1 if q > 0 else 2)

    for y in range(H):
        for b in range(C):
            m = bands[b]
            ky, kx, oy, ox = rep[b]
            for x in range(W):
                Wv, N, NW, NE, WW, NN = nb(b, y, x)
                s = N + Wv + NW + NE
                if ky > 1 or kx > 1:
                    ay = max(0, y - ((y - oy) % ky))
                    ax = max(0, x - ((x - ox) % kx))
                    if (ay, ax) != (y, x):
                        r[b][y][x] = r[b][ay][ax]
                        v[b][y][x] = v[b][ay][ax]
                        pe[b][y][x] = pe[b][ay][ax]
                        d[b][y][x] = 4 * r[b][y][x] - s  # its own local sum
                        continue
                med = min(N, Wv) if NW >= max(N, Wv) else (max(N, Wv) if NW <= min(N, Wv) else N + Wv - NW)
                if modes[b] == 1:  # version 8's replication mode: MED, no weights
                    p = clip(med, lo[b], hi[b])
                else:
                    u = [4 * N - s, 4 * Wv - s, 4 * NW - s, 4 * WW - s, 4 * NN - s, 4 * med - s]
                    u += [d[b - k][y][x] for k in range(1, min(b, pmax) + 1)]
                    if b > 0:
                        u.append(4 * pe[b - 1][y][x])
                    if v9:  # this band's errors r - p at W, N, NW, NE, WW; 0 where missing
                        u += [4 * pe[b][y][x - 1] if x > 0 else 0, 4 * pe[b][y - 1][x] if y > 0 else 0,
                              4 * pe[b][y - 1][x - 1] if y > 0 and x > 0 else 0,
                              4 * pe[b][y - 1][x + 1] if y > 0 and x + 1 < W else 0, 4 * pe[b][y][x - 2] if x > 1 else 0]
                    p4 = s + fdiv(sum(wj * uj for wj, uj in zip(m.w, u)), 2 ** 16)
                    p = clip(fdiv(p4 + 2, 4), lo[b], hi[b])
                if skip[b][y][x] and not ((ky > 1 or kx > 1) and block_has_coded(b, y, x, ky, kx, oy, ox)):
                    r[b][y][x], v[b][y][x], pe[b][y][x], d[b][y][x] = p, 0, 0, 4 * p - s
                    continue
                vW = v[b][y][x - 1] if x > 0 else 0
                vN = v[b][y - 1][x] if y > 0 else vW
                vB = v[b - 1][y][x] if b > 0 else 0
                qW, qN = mag(vW), mag(vN)
                qNW = mag(v[b][y - 1][x - 1]) if y > 0 and x > 0 else qN
                qNE = mag(v[b][y - 1][x + 1]) if y > 0 and x + 1 < W else qN
                qWW = mag(v[b][y][x - 2]) if x > 1 else qW
                qB = mag(vB) if b > 0 else qN
                act = 2 * (qW + qN) + qNW + qNE + qWW + 2 * qB
                g = tdiv(abs(Wv - NW) + abs(N - NW) + abs(N - NE) + abs(Wv - WW) + abs(N - NN), 2 * E[b] + 1)
                c = sum(1 for e in edges if e <= fdiv(act + min(g, 4096) + 1, 2))
                sctx = 9 * t(vW) + 3 * t(vN) + t(vB)
                zero, unary = m.zero[c], m.unary[c]
                if modes[b] == 1:
                    row = r[b][y]
                    run = 0 if x == 0 else (1 if x == 1 or row[x - 1] != row[x - 2] else
                                            (2 if x == 2 or row[x - 2] != row[x - 3] else 3))
                    eq = (Wv == NW) + 2 * (N == NW) + 4 * (N == NE) + 8 * (N == NN)
                    rctx = len(m.zero) * (4 * eq + run) + c
                    zero, unary = m.rzero[rctx], m.runary[rctx] + m.unary[c][2:]
                if not dec.model_bit(zero):
                    q = 0
                else:
                    neg = dec.model_bit(m.sign[sctx])
                    k = 0
                    while k < 40 and dec.model_bit(unary[k]):
                        k += 1
                    a = 1
                    if k >= 1:
                        top = dec.model_bit(m.mant1[c][k])
                        a = (a << 1) | top
                        if k >= 2:
                            a = (a << 1) | dec.model_bit(m.mant2[c][k][top])
                        i = k - 2
                        while i > 0:
                            n = min(i, 16)
                            a = (a << n) | dec.raw(n)
                            i -= 16
                    q = -a if neg else a
                rec = clip(p + q * (2 * E[b] + 1), lo[b], hi[b])
                r[b][y][x], v[b][y][x], pe[b][y][x], d[b][y][x] = rec, clip(q, -32767, 32767), rec - p, 4 * rec - s
                if modes[b] == 1:
                    continue  # no adaptation but the bit models'
                err = 4 * rec - p4
                if err != 0:
                    norm = 1 + sum(abs(uj) for uj in u)
                    shift = min(3 + tdiv(m.n, 512), 7)
                    mu = 2 ** (16 - shift)
                    cc = clip(tdiv(8 * err, tdiv(m.a, 16) + 1), -32, 32)
                    for j, uj in enumerate(u):
                        m.w[j] = clip(m.w[j] + tdiv(uj * mu * cc, 8 * norm), -2 ** 19, 2 ** 19)
                e16 = 16 * abs(err)
                m.a = m.a + ((e16 - m.a) >> 5) if e16 >= m.a else m.a - ((m.a - e16) >> 5)
                m.n += 1
    if dec.pos != len(dec.data):
        raise ValueError("bytes left over")
    return r
