"""Clean-room tile decoder (docs/bitstream.md), versions 3 to 10 and the integers of 2, without the project's code."""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field

import numpy as np

from crcoders import (BinaryDecoder, CleanroomError, Model4, Model5, RansTables, decode_mask,
                      rans_decode)
from crmixing import decode_coefs_v10

DTYPES = {0: np.uint8, 1: np.uint16, 2: np.int16, 3: np.uint32, 4: np.int32, 5: np.float32, 6: np.float64}


class Reader:
    def __init__(self, data: bytes):
        self.b = bytes(data)
        self.p = 0

    def take(self, n: int) -> bytes:
        if self.p + n > len(self.b):
            raise CleanroomError("tile truncated")
        out = self.b[self.p : self.p + n]
        self.p += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def leb(self) -> int:
        v, shift = 0, 0
        while True:
            c = self.u8()
            v |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return v
            if shift > 70:
                raise CleanroomError("LEB128 too long")

    def blob(self) -> bytes:
        return self.take(self.leb())

    def done(self):
        if self.p != len(self.b):
            raise CleanroomError(f"{len(self.b) - self.p} bytes left over after the tile")


@dataclass
class Tile:
    version: int
    model_id: bytes
    level: int
    dtype: type
    C: int
    H: int
    W: int
    flags: int
    lat: int = 0
    residual: int = 0
    step_code: int | None = None  # versions 7 and 10 with a residual
    lo: np.ndarray | None = None  # float32[C]
    hi: np.ndarray | None = None
    mean: np.ndarray | None = None  # float16[C]
    matrix: np.ndarray | None = None  # int8[C, C]
    level_matrices: dict = field(default_factory=dict)  # version 11: detail level j -> int8[C, C]
    present: list = field(default_factory=list)
    side: bytes = b""
    main: bytes = b""
    coefs: bytes = b""
    payload: bytes = b""
    valid: np.ndarray | None = None
    band_fill: np.ndarray | None = None
    mask_stream1: list | None = None
    mask_stream2: list | None = None
    # version 4
    E: list = field(default_factory=list)
    blo: list = field(default_factory=list)
    bhi: list = field(default_factory=list)
    rep: list = field(default_factory=list)
    palette: list = field(default_factory=list)
    modes: list = field(default_factory=list)  # version 8: per band 0 (version 4's predictor) or 1 (replication)


def _masks(r: Reader, t: Tile):
    if t.flags & 1:
        if t.version in (1, 2):
            raw = zlib.decompress(r.blob())
            bits = np.unpackbits(np.frombuffer(raw, np.uint8))[: t.H * t.W]
            t.valid = bits.reshape(t.H, t.W).astype(bool)
        else:
            s1, s2 = r.blob(), r.blob()
            t.valid, t.mask_stream1, t.mask_stream2 = decode_mask(s1, s2, t.H, t.W)
    if t.flags & 4:
        if t.version in (1, 2):
            raise CleanroomError("fill masks on a v1/v2 tile")
        fills = []
        for _ in range(t.C):
            s1, s2 = r.blob(), r.blob()
            fills.append(decode_mask(s1, s2, t.H, t.W)[0])
        t.band_fill = np.stack(fills)


def parse_tile(data: bytes, scene_band_range: bytes | None = None) -> Tile:
    r = Reader(data)
    version = r.u8()
    if version not in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11):
        raise CleanroomError(f"unknown tile version {version}")
    model_id = r.take(4)
    level = r.u8()
    dt = r.u8()
    if dt not in DTYPES:
        raise CleanroomError("bad dtype")
    C = r.u8()
    H = r.u16()
    W = r.u16()
    flags = r.u8()
    allowed = 0b011 | (0b100 if version >= 3 else 0) | (0b1000 if version in (6, 7, 10, 11) else 0)
    if flags & ~allowed:
        raise CleanroomError("unknown flag bits")
    if not 1 <= C <= 32:
        raise CleanroomError("bad band count")
    t = Tile(version, model_id, level, DTYPES[dt], C, H, W, flags)
    if version in (4, 8, 9):  # 8, 9: version 4 with a mode byte per band after its palette
        if flags & 2:
            raise CleanroomError("v4 with a matrix")
        for _ in range(C):
            E = r.leb()
            zz = r.leb()
            lo = zz // 2 if zz % 2 == 0 else -(zz + 1) // 2
            span = r.leb()
            k = r.u8()
            o = r.u8()
            ky, kx = (k >> 4) + 1, (k & 15) + 1
            oy, ox = o >> 4, o & 15
            if oy >= ky or ox >= kx:
                raise CleanroomError("bad replication offsets")
            pal_flag = r.u8()
            pal = None
            if pal_flag == 1:
                raw = zlib.decompress(r.blob())
                nbytes = (span + 1 + 7) // 8
                if len(raw) != nbytes:
                    raise CleanroomError("bad palette length")
                bits = np.unpackbits(np.frombuffer(raw, np.uint8))[: span + 1]
                pal = [lo + int(i) for i in np.flatnonzero(bits)]
            elif pal_flag != 0:
                raise CleanroomError("bad palette byte")
            mode = r.u8() if version in (8, 9) else 0
            if mode not in (0, 1):
                raise CleanroomError("bad mode byte")
            t.modes.append(mode)
            t.E.append(E)
            t.blo.append(lo)
            t.bhi.append(lo + span)
            t.rep.append((ky, kx, oy, ox))
            t.palette.append(pal)
        t.payload = r.blob()
        _masks(r, t)
        r.done()
        return t
    if version in (2, 3, 5, 6, 7, 10, 11):
        t.lat = r.u8()
        t.residual = r.u8()
        if version in (7, 10, 11) and t.residual != 0:
            t.step_code = r.u16()
    if flags & 8:
        if scene_band_range is None:
            raise CleanroomError("tile needs the scene's band_range")
        br = scene_band_range
    else:
        br = r.take(8 * C)
    lohi = np.frombuffer(br, ">f4").astype(np.float32).reshape(C, 2)
    t.lo, t.hi = lohi[:, 0].copy(), lohi[:, 1].copy()
    t.mean = np.frombuffer(r.take(2 * C), ">f2").astype(np.float16)
    if flags & 2:
        t.matrix = np.frombuffer(r.take(C * C), np.int8).reshape(C, C).copy()
    if version == 11:  # a byte: bit j-1 = detail level j has its own rotation; then those, C*C int8 each
        lmask = r.u8()
        if lmask >> levels_for(H, W):
            raise CleanroomError("level rotation beyond the tile's wavelet levels")
        for j in range(1, levels_for(H, W) + 1):
            if lmask >> (j - 1) & 1:
                m = np.frombuffer(r.take(C * C), np.int8).reshape(C, C).copy()
                if abs(np.linalg.det(m.astype(np.float64) / 127.0)) < 0.25:
                    raise CleanroomError("singular level rotation")
                t.level_matrices[j] = m
    pb = r.take((C + 7) // 8)
    t.present = [(pb[k // 8] >> (7 - k % 8)) & 1 for k in range(C)]
    if version == 1:
        if any(t.present):
            t.payload = r.blob()
    else:
        t.side = r.blob()
        t.main = r.blob()
        if version in (5, 6, 7, 10, 11):
            t.coefs = r.blob()
            if (len(t.coefs) == 0) != (t.residual == 0):
                raise CleanroomError("coefs stream must be empty exactly when residual kind is 0")
    _masks(r, t)
    r.done()
    return t


# --------------------------------------------------------------------------- version 4

_EDGES = (1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224)
_EDGES9 = _EDGES + (320, 448, 640, 896, 1280, 1792)  # version 9: 22 contexts


def _bucket(z: int, edges=_EDGES) -> int:
    n = 0
    for e in edges:
        if e <= z:
            n += 1
        else:
            break
    return n


def _clip(v, a, b):
    return a if v < a else (b if v > b else v)


def _tdiv(a: int, b: int) -> int:
    """C99 division toward zero."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def decode_v4(t: Tile, replication_first: bool = True):
    """Returns (samples int64[C, H, W] with 0 where skipped, coder_lo, coder_hi).

    ``replication_first``: a skipped sample that is not its block's anchor copies the anchor (bitstream.md,
    "Replication": replication takes precedence). False reads the other rule instead (a skipped sample takes
    ``r = p``), only so that a test can show a case telling the two apart."""
    C, H, Wd = t.C, t.H, t.W
    skip = np.zeros((C, H, Wd), dtype=bool)
    if t.valid is not None:
        skip |= ~t.valid[None]
    if t.band_fill is not None:
        skip |= t.band_fill
    skipl = skip.tolist()
    clo = [0 if t.palette[b] is not None else t.blo[b] for b in range(C)]
    chi = [len(t.palette[b]) - 1 if t.palette[b] is not None else t.bhi[b] for b in range(C)]
    # how many samples cost a bit at least (the 5701 bound)
    coded_count = 0
    anchors_coded = []  # per band: set of (y, x) anchors that are coded although skipped
    for b in range(C):
        ky, kx, oy, ox = t.rep[b]
        s = set()
        for y in range(H):
            ay = max(0, y - ((y - oy) % ky))
            if ay != y:
                continue
            y1 = oy if (ay == 0 and oy > 0) else ay + ky
            for x in range(Wd):
                ax = max(0, x - ((x - ox) % kx))
                if ax != x:
                    continue
                x1 = ox if (ax == 0 and ox > 0) else ax + kx
                if not skipl[b][y][x]:
                    coded_count += 1
                elif not skip[b, ay:min(y1, H), ax:min(x1, Wd)].all():
                    s.add((y, x))
                    coded_count += 1
        anchors_coded.append(s)
    if coded_count > 5701 * (len(t.payload) + 1):
        raise CleanroomError("v4: more coded samples than the stream can hold")
    dec = BinaryDecoder(t.payload)
    # per band state
    R = [[[0] * Wd for _ in range(H)] for _ in range(C)]
    V = [[[0] * Wd for _ in range(H)] for _ in range(C)]
    PE = [[[0] * Wd for _ in range(H)] for _ in range(C)]
    D = [[[0] * Wd for _ in range(H)] for _ in range(C)]
    weights, Aerr, count, models = [], [], [], []
    v9 = t.version == 9  # mode 0 reads 11 previous bands and its own errors; 22 contexts; warm-up models
    pmax, edges, nctx = (11, _EDGES9, 22) if v9 else (3, _EDGES, 16)
    M = Model5 if v9 else Model4
    for b in range(C):
        nf = 6 + min(b, pmax) + (1 if b > 0 else 0) + (5 if v9 else 0)
        w = [0] * nf
        w[0] = w[1] = 24576
        w[2] = -16384
        if nf > 6:  # slot 6: the first previous band's d; in v9's band 0 its own error at W
            w[6] = 32768
        weights.append(w)
        Aerr.append(0)
        count.append(0)
        models.append({
            "zero": [M() for _ in range(nctx)],
            "sign": [M() for _ in range(27)],
            "unary": [[M() for _ in range(41)] for _ in range(nctx)],
            "mant1": [[M() for _ in range(41)] for _ in range(nctx)],
            "mant2": [[[M(), M()] for _ in range(41)] for _ in range(nctx)],
            "rzero": [Model5() for _ in range(64 * nctx)],  # versions 8, 9, mode 1
            "runary": [[Model5(), Model5()] for _ in range(64 * nctx)],
        })
    for y in range(H):
        for b in range(C):
            Rb, Vb, PEb, Db = R[b], V[b], PE[b], D[b]
            lo, hi, E = clo[b], chi[b], t.E[b]
            step = 2 * E + 1
            ky, kx, oy, ox = t.rep[b]
            replic = ky > 1 or kx > 1
            w = weights[b]
            md = models[b]
            amax = (hi - lo + E) // step
            for x in range(Wd):
                # neighbours
                if x > 0:
                    Wn = Rb[y][x - 1]
                elif y > 0:
                    Wn = Rb[y - 1][x]
                elif b > 0:
                    Wn = R[b - 1][y][x]
                else:
                    Wn = (lo + hi) // 2
                N = Rb[y - 1][x] if y > 0 else Wn
                NW = Rb[y - 1][x - 1] if (y > 0 and x > 0) else N
                NE = Rb[y - 1][x + 1] if (y > 0 and x + 1 < Wd) else N
                WW = Rb[y][x - 2] if x > 1 else Wn
                NN = Rb[y - 2][x] if y > 1 else N
                s = N + Wn + NW + NE
                if replic:
                    ay = max(0, y - ((y - oy) % ky))
                    ax = max(0, x - ((x - ox) % kx))
                    if (ay, ax) != (y, x) and (replication_first or not skipl[b][y][x]):
                        r_ = Rb[ay][ax]
                        Rb[y][x] = r_
                        Vb[y][x] = Vb[ay][ax]
                        PEb[y][x] = PEb[ay][ax]
                        Db[y][x] = 4 * r_ - s
                        continue
                # prediction
                if NW >= max(N, Wn):
                    med = min(N, Wn)
                elif NW <= min(N, Wn):
                    med = max(N, Wn)
                else:
                    med = N + Wn - NW
                mode = t.modes[b]
                if mode == 1:  # version 8 replication mode: MED itself
                    p = _clip(med, lo, hi)
                else:
                    u = [4 * N - s, 4 * Wn - s, 4 * NW - s, 4 * WW - s, 4 * NN - s, 4 * med - s]
                    for k in range(1, min(b, pmax) + 1):
                        u.append(D[b - k][y][x])
                    if b > 0:
                        u.append(4 * PE[b - 1][y][x])
                    if v9:  # this band's r - p at W, N, NW, NE, WW (0 if absent)
                        u.append(4 * PEb[y][x - 1] if x > 0 else 0)
                        u.append(4 * PEb[y - 1][x] if y > 0 else 0)
                        u.append(4 * PEb[y - 1][x - 1] if (y > 0 and x > 0) else 0)
                        u.append(4 * PEb[y - 1][x + 1] if (y > 0 and x + 1 < Wd) else 0)
                        u.append(4 * PEb[y][x - 2] if x > 1 else 0)
                    acc = 0
                    for j in range(len(u)):
                        acc += w[j] * u[j]
                    p4 = s + (acc >> 16)
                    p = _clip((p4 + 2) // 4, lo, hi)
                coded = (not skipl[b][y][x]) or ((y, x) in anchors_coded[b])
                if not coded:
                    Rb[y][x] = p
                    Vb[y][x] = 0
                    PEb[y][x] = 0
                    Db[y][x] = 4 * p - s
                    continue
                # contexts
                vW = Vb[y][x - 1] if x > 0 else 0
                vN = Vb[y - 1][x] if y > 0 else vW
                vB = V[b - 1][y][x] if b > 0 else 0
                qW = min(abs(vW), 255)
                qN = min(abs(vN), 255)
                qNW = min(abs(Vb[y - 1][x - 1]), 255) if (y > 0 and x > 0) else qN
                qNE = min(abs(Vb[y - 1][x + 1]), 255) if (y > 0 and x + 1 < Wd) else qN
                qWW = min(abs(Vb[y][x - 2]), 255) if x > 1 else qW
                qB = min(abs(vB), 255) if b > 0 else qN
                act = 2 * (qW + qN) + qNW + qNE + qWW + 2 * qB
                g = _tdiv(abs(Wn - NW) + abs(N - NW) + abs(N - NE) + abs(Wn - WW) + abs(N - NN), step)
                ctx = _bucket((act + min(g, 4096) + 1) // 2, edges)

                def tri(v):
                    return 0 if v == 0 else (1 if v > 0 else 2)

                sctx = 9 * tri(vW) + 3 * tri(vN) + tri(vB)
                zero_m = md["zero"][ctx]
                un = md["unary"][ctx]
                if mode == 1:
                    row = Rb[y]
                    if x == 0:
                        run = 0
                    elif x == 1 or row[x - 1] != row[x - 2]:
                        run = 1
                    elif x == 2 or row[x - 2] != row[x - 3]:
                        run = 2
                    else:
                        run = 3
                    eq = int(Wn == NW) + 2 * int(N == NW) + 4 * int(N == NE) + 8 * int(N == NN)
                    rctx = nctx * (4 * eq + run) + ctx
                    zero_m = md["rzero"][rctx]
                    un = md["runary"][rctx] + un[2:]
                # binarisation
                if zero_m.decode(dec) == 0:
                    q = 0
                else:
                    neg = md["sign"][sctx].decode(dec)
                    k = 0
                    while k < 40 and un[k].decode(dec):
                        k += 1
                    a = 1
                    if k >= 1:
                        m1 = md["mant1"][ctx][k].decode(dec)
                        a = (a << 1) | m1
                        if k >= 2:
                            m2 = md["mant2"][ctx][k][m1].decode(dec)
                            a = (a << 1) | m2
                            i = k - 2
                            while i > 0:
                                nb = min(i, 16)
                                a = (a << nb) | dec.raw(nb)
                                i -= 16
                    if a > amax:
                        raise CleanroomError("v4: residual out of the band's range")
                    q = -a if neg else a
                r_ = _clip(p + q * step, lo, hi)
                Rb[y][x] = r_
                Vb[y][x] = _clip(q, -32767, 32767)
                PEb[y][x] = r_ - p
                Db[y][x] = 4 * r_ - s
                if mode == 1:
                    continue  # no weights: only the bit models adapt
                # adaptation
                err = 4 * r_ - p4
                A = Aerr[b]
                cnt = count[b]
                if err != 0:
                    norm = 1 + sum(abs(v) for v in u)
                    shift = min(3 + cnt // 512, 7)
                    mu = 1 << (16 - shift)
                    eps = _clip(_tdiv(8 * err, A // 16 + 1), -32, 32)
                    for j in range(len(u)):
                        w[j] = _clip(w[j] + _tdiv(u[j] * mu * eps, 8 * norm), -(1 << 19), 1 << 19)
                ae = 16 * abs(err)
                if ae >= A:
                    A = A + ((ae - A) >> 5)
                else:
                    A = A - ((A - ae) >> 5)
                Aerr[b] = A
                count[b] = cnt + 1
    dec.finish()
    out = np.zeros((C, H, Wd), dtype=np.int64)
    for b in range(C):
        arr = np.array(R[b], dtype=np.int64)
        if t.palette[b] is not None:
            arr = np.asarray(t.palette[b], dtype=np.int64)[arr]
        arr[skip[b]] = 0
        out[b] = arr
    return out, np.array(clo, np.int64), np.array(chi, np.int64)


# --------------------------------------------------------------------------- wavelet (version 3, 5, 6)

ALPHA, BETA, GAMMA, DELTA = -1.586134342059924, -0.052980118572961, 0.882911075530934, 0.443506852043971
K = 1.230174104914001
LLG = (1.965907255313617, 4.122410234401326, 8.416743237365488, 16.93556578059223, 33.92491418373113)
HHG = (0.520218122554536, 0.967215944274607, 2.079255373335683, 4.300480601208342, 8.686719203695743)


def levels_for(H: int, W: int) -> int:
    J = 0
    for j in range(1, 6):
        if min(H, W) >> j >= 8:
            J = j
    return J


def subband_shapes(H: int, W: int, J: int):
    """dict: ('LL', J) and (name, j) -> shape; HL = vertically high, horizontally low."""
    shapes = {}
    h, w = H, W
    for j in range(1, J + 1):
        hl, hh_, wl, wh = (h + 1) // 2, h // 2, (w + 1) // 2, w // 2
        shapes[("HL", j)] = (hh_, wl)
        shapes[("LH", j)] = (hl, wh)
        shapes[("HH", j)] = (hh_, wh)
        h, w = hl, wl
    shapes[("LL", J)] = (h, w)
    return shapes


def gain(name: str, j: int) -> np.float32:
    if name == "LL":
        return np.float32(LLG[j - 1])
    if name == "HH":
        return np.float32(HHG[j - 1])
    return np.float32(math.sqrt(LLG[j - 1] * HHG[j - 1]))


def _inv1d(s: np.ndarray, d: np.ndarray, axis: int) -> np.ndarray:
    """1-D inverse CDF 9/7 along `axis` (0 rows of a 2-D array are samples along axis)."""
    f32 = np.float32
    s = np.moveaxis(s, axis, 0).astype(np.float32)
    d = np.moveaxis(d, axis, 0).astype(np.float32)
    ns, nd = s.shape[0], d.shape[0]
    if nd == 0:
        return np.moveaxis(s, 0, axis)
    s = s * f32(K)
    d = d * f32(1.0 / K)
    for cp, cu in ((GAMMA, DELTA), (ALPHA, BETA)):
        cp, cu = f32(cp), f32(cu)
        dm1 = np.concatenate([d[:1], d[:-1]], axis=0)  # d[i-1], d[-1] = d[0]
        dext = d if nd == ns else np.concatenate([d, d[-1:]], axis=0)  # d[i], d[nd] = d[nd-1]
        s = s - cu * (dm1[:ns] + dext[:ns])
        sp1 = s[1:] if ns > nd else np.concatenate([s[1:], s[-1:]], axis=0)  # s[i+1], s[ns] = s[ns-1]
        d = d - cp * (s[:nd] + sp1[:nd])
    out = np.empty((ns + nd,) + s.shape[1:], dtype=np.float32)
    out[0::2] = s
    out[1::2] = d
    return np.moveaxis(out, 0, axis)


def inverse_wavelet(bands: dict, J: int) -> np.ndarray:
    """bands: dict like subband_shapes, of quantised integer arrays."""
    if J == 0:
        return bands[("LL", 0)].astype(np.float32)
    a = bands[("LL", J)].astype(np.float32) / gain("LL", J)
    for j in range(J, 0, -1):
        HL = bands[("HL", j)].astype(np.float32) / gain("HL", j)
        LH = bands[("LH", j)].astype(np.float32) / gain("LH", j)
        HH = bands[("HH", j)].astype(np.float32) / gain("HH", j)
        lo = _inv1d(a, LH, axis=1)
        hi = _inv1d(HL, HH, axis=1)
        a = _inv1d(lo, hi, axis=0)
    return a


# --------------------------------------------------------------------------- version 5/6 coefficients

def coef_order(J: int):
    """Subbands coarsest first (version 5 coding order)."""
    if J == 0:
        return [("LL", 0)]
    order = [("LL", J)]
    for j in range(J, 0, -1):
        order += [("HL", j), ("LH", j), ("HH", j)]
    return order


def decode_coefs(data: bytes, C: int, H: int, W: int):
    """Returns (list per component of dict subband -> int array, flat list of values in coding order)."""
    J = levels_for(H, W)
    shapes = subband_shapes(H, W, J) if J else {("LL", 0): (H, W)}
    order = coef_order(J)
    total = C * H * W
    if total > 5701 * (len(data) + 1):
        raise CleanroomError("coefs: more coefficients than the stream can hold")
    dec = BinaryDecoder(data)
    models = []
    for _ in range(4):
        models.append({
            "zero": [Model5() for _ in range(16)],
            "sign": [Model5() for _ in range(9)],
            "unary": [[Model5() for _ in range(32)] for _ in range(16)],
            "mant1": [[Model5() for _ in range(32)] for _ in range(16)],
            "mant2": [[[Model5(), Model5()] for _ in range(32)] for _ in range(16)],
        })
    comps = []
    flat = []
    for c in range(C):
        bands = {}
        for key in order:
            name, j = key
            h, w = shapes[key]
            cls = 0 if name == "LL" else min(j, 3)
            md = models[cls]
            parent = bands.get((name, j + 1)) if name != "LL" else None
            prevc = comps[c - 1][key] if c > 0 else None
            q = [[0] * w for _ in range(h)]
            if parent is not None:
                ph, pw = len(parent), len(parent[0])
            for y in range(h):
                qy = q[y]
                qu = q[y - 1] if y > 0 else None
                for x in range(w):
                    Wv = qy[x - 1] if x > 0 else 0
                    Nv = qu[x] if qu is not None else 0
                    NWv = qu[x - 1] if (qu is not None and x > 0) else 0
                    NEv = qu[x + 1] if (qu is not None and x + 1 < w) else 0
                    nsum = 2 * min(abs(Wv), 255) + 2 * min(abs(Nv), 255) + min(abs(NWv), 255) + min(abs(NEv), 255)
                    par = min(abs(parent[min(y >> 1, ph - 1)][min(x >> 1, pw - 1)]), 255) if parent is not None else 0
                    Bv = min(abs(prevc[y][x]), 255) if prevc is not None else 0
                    act = min((nsum + 2 * par + 2 * Bv + 1) // 2, 255)
                    ctx = _bucket(act)
                    if md["zero"][ctx].decode(dec) == 0:
                        v = 0
                    else:
                        tW = 0 if Wv == 0 else (1 if Wv > 0 else 2)
                        tN = 0 if Nv == 0 else (1 if Nv > 0 else 2)
                        neg = md["sign"][3 * tW + tN].decode(dec)
                        k = 0
                        un = md["unary"][ctx]
                        while k < 31 and un[k].decode(dec):
                            k += 1
                        a = 1
                        if k >= 1:
                            m1 = md["mant1"][ctx][k].decode(dec)
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
                    qy[x] = v
                    flat.append(v)
            bands[key] = q
        comps.append(bands)
    dec.finish()
    out = [{k: np.array(v, dtype=np.int64).reshape(shapes[k]) for k, v in b.items()} for b in comps]
    return out, flat, J


# --------------------------------------------------------------------------- pixels

def to_pixels(t: Tile, z: np.ndarray) -> np.ndarray:
    """Steps 3 and 4 of "Decoding a tile": z float32[C, H, W] -> samples of the tile's dtype."""
    C = t.C
    f32 = np.float32
    if t.matrix is not None:
        rinv = np.linalg.inv(t.matrix.astype(np.float64) / 127.0).astype(np.float32)
    else:
        rinv = np.eye(C, dtype=np.float32)
    mean = t.mean.astype(np.float32)
    xs = []
    for i in range(C):
        acc = rinv[i, 0] * z[0]
        for j in range(1, C):
            acc = acc + rinv[i, j] * z[j]
        xn = acc + mean[i]
        lo, hi = f32(t.lo[i]), f32(t.hi[i])
        span = f32(hi - lo)
        if span == 0:
            span = f32(1)
        x = xn * span + lo
        x = np.clip(x, lo, hi).astype(np.float32)
        xs.append(x)
    x = np.stack(xs)
    dt = np.dtype(t.dtype)
    if dt.kind in "ui":
        x = np.rint(x.astype(np.float64))
        info = np.iinfo(dt)
        x = np.clip(x, info.min, info.max)
    return x.astype(dt)


# --------------------------------------------------------------------------- groups (v2, v3) and latents

class Bundle:
    """Only the data files of a bundle (docs/bundle.md)."""

    def __init__(self, path: str):
        import json
        import os
        self.path = path
        self.manifest = json.load(open(os.path.join(path, "manifest.json")))
        lad = np.load(os.path.join(path, "ladder.npz"))
        self.latent = lad["latent"].astype(int).tolist()
        self.step = lad["step"].astype(np.float32)
        self.gains = np.load(os.path.join(path, "gains.npz"))
        ad = np.load(os.path.join(path, "adaptive.npz"))
        self.ad = ad
        self.M = int(self.manifest["architecture"]["m"])
        self.L = int(self.manifest["levels"]["latent_levels"])
        self.index_tables = RansTables(ad["index_cdf"], ad["index_cdf_length"], ad["index_offset"])
        self._combined = {}

    def combined(self, lat: int) -> RansTables:
        import os
        if lat not in self._combined:
            tb = np.load(os.path.join(self.path, f"tables_level{lat}.npz"))
            bank = RansTables(self.ad["bank_cdf"], self.ad["bank_cdf_length"], self.ad["bank_offset"])
            fac = RansTables(tb["cdf"], tb["cdf_length"], tb["offset"])
            t = RansTables.__new__(RansTables)
            t.rows = bank.rows + fac.rows
            t.offsets = bank.offsets + fac.offsets
            self._combined[lat] = t
            self.precision = int(tb["precision"])
        return self._combined[lat]

    def residual_rank(self, level: int) -> int:
        res_levels = [i for i in range(len(self.step)) if self.step[i] > 0]
        return res_levels.index(level)


def decode_groups(t: Tile, bundle: Bundle):
    """side/main of versions 2, 3, 5, 6. Returns (indexes, values (0 for index-0 groups), groups)."""
    M = bundle.M
    h, w = -(-t.H // 16), -(-t.W // 16)
    P = sum(t.present)
    groups = []  # (context, size, kind)
    for _ in range(P):
        for m in range(M):
            groups.append((t.lat * M + m, h * w, ("lat", m)))
    if t.version == 3 and t.residual == 2:
        J = levels_for(t.H, t.W)
        shapes = subband_shapes(t.H, t.W, J) if J else {("LL", 0): (t.H, t.W)}
        order = []
        for j in range(1, J + 1):
            order += [("HL", j), ("LH", j), ("HH", j)]
        order.append(("LL", J))
        rctx = bundle.L * M + bundle.residual_rank(t.level)
        for c in range(t.C):
            for key in order:
                sh, sw = shapes[key]
                for by in range(0, sh, 16):
                    for bx in range(0, sw, 16):
                        groups.append((rctx, min(16, sh - by) * min(16, sw - bx), ("res", c, key, by, bx)))
    elif t.version == 2 and t.residual == 1:
        rctx = bundle.L * M + bundle.residual_rank(t.level)
        for c in range(t.C):
            for by in range(0, t.H, 32):
                for bx in range(0, t.W, 32):
                    groups.append((rctx, min(32, t.H - by) * min(32, t.W - bx), ("pix", c, by, bx)))
    G = len(groups)
    if (len(t.side) == 0) != (G == 0):
        raise CleanroomError("side stream must be empty exactly when there are no groups")
    idx = rans_decode(t.side, [g[0] for g in groups], bundle.index_tables, int(bundle.ad["precision"])) if G else []
    for k in idx:
        if not 0 <= k <= 63:
            raise CleanroomError("scale index out of range")
    comb = bundle.combined(t.lat)
    rows = []
    for (ctx, size, kind), k in zip(groups, idx):
        if k == 0:
            continue
        if k == 1:
            if kind[0] != "lat":
                raise CleanroomError("index 1 in a residual group")
            rows += [62 + kind[1]] * size
        else:
            rows += [k - 2] * size
    if (len(t.main) == 0) != (len(rows) == 0):
        raise CleanroomError("main stream must be empty exactly when no symbol is coded")
    syms = rans_decode(t.main, rows, comb, bundle.precision) if rows else []
    values = []
    pos = 0
    for (ctx, size, kind), k in zip(groups, idx):
        if k == 0:
            values += [0] * size
        else:
            values += syms[pos : pos + size]
            pos += size
    return idx, values, groups


def decode_tile_integers(t: Tile, bundle: Bundle | None):
    """Every integer of a v2/v3/v5/v6 tile: (indexes, values, latents[P, M, h, w], residual per component)."""
    M = bundle.M if bundle else 0
    h, w = -(-t.H // 16), -(-t.W // 16)
    P = sum(t.present)
    if bundle is not None:
        idx, values, groups = decode_groups(t, bundle)
    else:
        if t.side or t.main or P:
            raise CleanroomError("this tile needs a bundle")
        idx, values, groups = [], [], []
    nlat = P * M * h * w
    latents = np.array(values[:nlat], dtype=np.int64).reshape(P, M, h, w) if P else None
    residual = None
    J = levels_for(t.H, t.W)
    if t.version in (10, 11) and t.residual == 2:
        shapes = subband_shapes(t.H, t.W, J) if J else {("LL", 0): (t.H, t.W)}
        comps, flat = decode_coefs_v10(t.coefs, t.C, t.H, t.W, coef_order(J), shapes)
        values = values + flat
        residual = comps
    elif t.version in (5, 6, 7) and t.residual == 2:
        comps, flat, J = decode_coefs(t.coefs, t.C, t.H, t.W)
        values = values + flat
        residual = comps
    elif t.version == 3 and t.residual == 2:
        shapes = subband_shapes(t.H, t.W, J) if J else {("LL", 0): (t.H, t.W)}
        comps = [{k: np.zeros(s, np.int64) for k, s in shapes.items()} for _ in range(t.C)]
        pos = nlat
        for ctx, size, kind in groups[P * M:]:
            _, c, key, by, bx = kind
            sh, sw = shapes[key]
            bh, bw = min(16, sh - by), min(16, sw - bx)
            comps[c][key][by:by + bh, bx:bx + bw] = np.array(values[pos:pos + size]).reshape(bh, bw)
            pos += size
        residual = comps
    return idx, values, latents, residual, J


def synthesize(t: Tile, bundle: Bundle, latents: np.ndarray) -> np.ndarray:
    """Latents -> z of the present components, through decoder.onnx (docs/bundle.md)."""
    import os

    import onnxruntime as ort
    inv_gain = bundle.gains["inv_gain"].astype(np.float32)
    y_hat = latents.astype(np.float32) * inv_gain[t.lat][None, :, None, None]
    sess = ort.InferenceSession(os.path.join(bundle.path, "decoder.onnx"), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x_hat = sess.run(None, {name: y_hat.astype(np.float32)})[0]
    return x_hat[:, 0, : t.H, : t.W]


def decode_tile_pixels(t: Tile, bundle: Bundle | None, step: np.float32 | None = None) -> np.ndarray:
    """Pixels of a v3/v5/v6/v7/v10 tile (network only when a component is present)."""
    idx, values, latents, residual, J = decode_tile_integers(t, bundle)
    z = np.zeros((t.C, t.H, t.W), dtype=np.float32)
    if latents is not None:
        zs = synthesize(t, bundle, latents)
        pk = 0
        for c in range(t.C):
            if t.present[c]:
                z[c] = zs[pk]
                pk += 1
    if residual is not None:
        if t.step_code is not None:  # versions 7, 10: (4096 + m) * 2^-(12 + e), exact in float32
            e, m = t.step_code >> 12, t.step_code & 4095
            step = np.float32(4096 + m) * np.float32(2.0 ** -(12 + e))
        elif step is None:
            step = bundle.step[t.level]
        main = t.matrix.astype(np.float64) / 127.0 if t.matrix is not None else np.eye(t.C)
        for j, mj in t.level_matrices.items():  # version 11: level j's details to the tile's components
            S = main @ np.linalg.inv(mj.astype(np.float64) / 127.0)
            for name in ("HL", "LH", "HH"):
                v = np.tensordot(S, np.stack([residual[c][(name, j)].astype(np.float64) for c in range(t.C)]), axes=1)
                for c in range(t.C):
                    residual[c][(name, j)] = v[c].astype(np.float32)
        for c in range(t.C):
            z[c] = z[c] + inverse_wavelet(residual[c], J) * np.float32(step)
    return to_pixels(t, z)
