"""A pure-Python decoder of tile format v5's coefficient stream, written from docs/bitstream.md ("Version 5") alone.

It shows the specification is complete: a ground station implementing it from the text decodes the same integers
as the C reference (tests/edge/codec/test_coefs.py compares them). The binary decoder is v4's (its reference in
predictive_reference.py); the bit models are v5's own. Slow (pure Python); used on small tiles only.
"""
from __future__ import annotations

from predictive_reference import EDGES, Decoder, clip


class Model:
    """P(0) in 16 bits: fast and slow estimates with a warm-up (rate 1/(n + 2) until 2^-5 and 2^-7)."""

    def __init__(self):
        self.f = self.s = 32768
        self.n = 0

    def p(self) -> int:
        return clip((self.f + self.s) >> 1, 64, 65472)

    def update(self, bit: int) -> None:
        w = (self.n + 2).bit_length() - 1
        f, s = min(w, 5), min(w, 7)
        self.n = min(self.n + 1, 1024)
        if bit:
            self.f -= self.f >> f
            self.s -= self.s >> s
        else:
            self.f += (65535 - self.f) >> f
            self.s += (65535 - self.s) >> s


def bit(d: Decoder, m: Model) -> int:
    b = d.bit(m.p())
    m.update(b)
    return b


class Models:
    def __init__(self):
        self.zero = [Model() for _ in range(16)]
        self.sign = [Model() for _ in range(9)]
        self.unary = [[Model() for _ in range(32)] for _ in range(16)]
        self.mant1 = [[Model() for _ in range(32)] for _ in range(16)]
        self.mant2 = [[[Model(), Model()] for _ in range(32)] for _ in range(16)]


def decode(data: bytes, comps: int, geometry: list[tuple[int, int, int, int]]) -> list[list[list[list[int]]]]:
    """``geometry``: (height, width, class, parent) per subband in coding order -> q[comp][subband][y][x]."""
    d = Decoder(data)
    models = [Models() for _ in range(4)]
    mag = lambda v: min(abs(v), 255)
    tri = lambda v: 1 if v > 0 else (2 if v < 0 else 0)
    out = []
    for k in range(comps):
        comp = []
        for s, (h, w, cls, parent) in enumerate(geometry):
            q = [[0] * w for _ in range(h)]
            m = models[cls]
            for y in range(h):
                for x in range(w):
                    W = q[y][x - 1] if x > 0 else 0
                    N = q[y - 1][x] if y > 0 else 0
                    a = 2 * mag(W) + 2 * mag(N) + (mag(q[y - 1][x - 1]) if y > 0 and x > 0 else 0) + \
                        (mag(q[y - 1][x + 1]) if y > 0 and x + 1 < w else 0)
                    P = 0
                    if parent >= 0:
                        ph, pw = geometry[parent][:2]
                        P = mag(comp[parent][min(y >> 1, ph - 1)][min(x >> 1, pw - 1)])
                    B = mag(out[k - 1][s][y][x]) if k > 0 else 0
                    v = min((a + 2 * P + 2 * B + 1) // 2, 255)
                    ctx = sum(v >= e for e in EDGES)
                    if not bit(d, m.zero[ctx]):
                        continue
                    neg = bit(d, m.sign[3 * tri(W) + tri(N)])
                    kk = 0
                    while kk < 31 and bit(d, m.unary[ctx][kk]):
                        kk += 1
                    u = 1
                    if kk >= 1:
                        top = bit(d, m.mant1[ctx][kk])
                        u = (u << 1) | top
                        if kk >= 2:
                            u = (u << 1) | bit(d, m.mant2[ctx][kk][top])
                        i = kk - 2
                        while i > 0:
                            n = min(i, 16)
                            u = (u << n) | d.raw(n)
                            i -= 16
                    q[y][x] = -u if neg else u
            comp.append(q)
        out.append(comp)
    if d.pos != len(d.data):
        raise ValueError("bytes left over")
    return out
