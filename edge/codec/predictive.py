"""Tile kind ``predictive`` (tile formats v9, v8 and v4): error-bounded coding of the samples themselves, lossless at E = 0.

Each sample is predicted from already decoded neighbours in its band and from the previous bands (an adaptive
linear predictor in integer arithmetic, weights updated by a sign-error NLMS, plus a context bias correction, in
the family of CCSDS 123.0-B-2's predictor and CALIC), the prediction residual is quantised with step ``2E + 1``
(so ``|decoded - original| <= E`` for every sample, exactly when ``E = 0``), and coded with adaptive binary
contexts chosen by the neighbouring residuals. All of it is in C (``_predictive.c``), integer only: any platform
decodes the same samples. No network runs, on either side.

Two encoder findings travel in the header: bands resampled by pixel replication (Sentinel-2's 20 m and 60 m bands in
a 10 m stack) are coded once per block, and lossless bands with a combed histogram are coded as ranks of a
palette of the values they use. Version 8 adds a third: each band's predictor, v4's or the replication mode (MED
with equal-neighbour contexts), which codes bands replicated off any aligned grid (nearest-neighbour upsampling onto
a rotated grid) in 0.4x v4's bits; the encoder codes a band both ways when it has many equal neighbours and keeps
the smaller. Version 9 (written) has v8's layout; its mode 0 also reads the band's own prediction errors and up to 11
previous bands, and codes with 22 contexts and warm-up bit models (1.6% fewer bits lossless, median).

``E`` is given per band in the band's own units (digital numbers). Integer dtypes are coded as they are; float
tiles only when every coded sample is an integer (float64 rasters holding integers): true floats have no bound
in digital numbers and are refused. Nodata pixels (the valid mask) and band-fill samples (a valid pixel holding
the nodata value in one band) are not coded: they travel as v3's transition-coded masks and come back exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvae.edge.codec import _predictive, bitstream
from cvae.edge.errors import CorruptTileError, InputError

__all__ = ["PredictiveKind", "BoundedTile", "check_max_error", "replication", "skipped", "coded_at_least", "coder_range",
           "LIMIT", "band_modes"]

LIMIT = bitstream.PREDICTIVE_LIMIT
_STATUS = {1: "stream truncated", 2: "bytes left over after the last sample", 3: "residual out of range"}


def check_max_error(max_error, bands: int) -> np.ndarray:
    """int64[C] from one bound or one per band; raises :class:`InputError` naming the fix."""
    e = np.atleast_1d(np.asarray(max_error))
    if e.dtype.kind not in "iu" and not (e.dtype.kind == "f" and np.all(e == np.round(e))):
        raise InputError(f"max error {max_error!r}: give whole digital numbers (0 = lossless)")
    e = e.astype(np.int64)
    if len(e) == 1:
        e = np.repeat(e, bands)
    if len(e) != bands:
        raise InputError(f"max error has {len(e)} values for {bands} bands: give one value or one per band")
    if (e < 0).any() or (e > LIMIT).any():
        raise InputError(f"max error {e.tolist()} out of range: each must be 0 (lossless) .. {LIMIT}")
    return e


@dataclass(frozen=True)
class BoundedTile:
    """A tile to code to an error bound: what :meth:`TileCodec.encode` takes in place of an analysed tile."""

    pixels: np.ndarray               # native[C, H, W]
    max_error: np.ndarray            # int64[C]
    valid: np.ndarray | None = None  # bool[H, W]
    band_fill: np.ndarray | None = None  # bool[C, H, W]

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.pixels.shape


class PredictiveKind:
    """Writes v9 tiles and reads v9, v8 and v4 tiles (the formats of kind 'predictive'); any bundle has it (it needs no
    model part but the model id in the header). A :class:`~cvae.edge.codec.kinds.SampleKind`."""

    name = "predictive"
    version = next(f.version for f in bitstream.formats_of(name) if f.written)
    versions = tuple(f.version for f in bitstream.formats_of(name))
    levels = 1         # the header's level byte is 0: the bound is the quality

    def __init__(self, model_id: bytes):
        self.model_id = model_id

    @classmethod
    def build(cls, latents: object, model_id: bytes, **_: object) -> "PredictiveKind":
        return cls(model_id)

    def encode(self, t: BoundedTile, level: int) -> bytes:
        """``t`` to its bound; ``level`` must be 0 (:class:`~cvae.edge.codec.kinds.SampleKind`)."""
        if level != 0:
            raise InputError(f"an error-bounded tile is coded at level 0, not {level}")
        return self.encode_tile(t.pixels, t.max_error, t.valid, t.band_fill)

    def decode_pixels(self, u: bitstream.UnpackedTile) -> np.ndarray:
        """native[C, H, W]: the samples of a parsed v4, v8 or v9 tile (skipped samples 0)."""
        if not isinstance(u.payload, bytes):
            raise CorruptTileError("a predictive tile has one coder stream")
        return self.decode_tile(u.header, u.payload, u.valid).astype(u.header.dtype)

    def encode_tile(self, tile: np.ndarray, max_error, valid: np.ndarray | None = None,
                    band_fill: np.ndarray | None = None) -> bytes:
        """``tile: native[C, H, W]`` -> v9 bytes with ``|decoded - tile| <= max_error`` on every coded sample."""
        c, h, w = tile.shape
        e = check_max_error(max_error, c)
        skip = np.zeros(tile.shape, bool)
        if valid is not None and not valid.all():
            skip[:, ~valid] = True
        else:
            valid = None
        if band_fill is not None:
            band_fill = np.asarray(band_fill, bool) & ~skip
            band_fill = band_fill if band_fill.any() else None
        if band_fill is not None:
            skip |= band_fill
        some_skipped = valid is not None or band_fill is not None  # else skip is all False
        x = _integers(tile, skip if some_skipped else None)
        if some_skipped:
            coded = np.where(skip, 0, x)
            kept = ~skip
            # each band's range over its coded samples (0 .. 0 for a band without one): masked reductions, no copies
            lo = x.min(axis=(1, 2), where=kept, initial=np.iinfo(np.int64).max)
            hi = x.max(axis=(1, 2), where=kept, initial=np.iinfo(np.int64).min)
            empty = ~kept.any(axis=(1, 2))
            lo[empty], hi[empty] = 0, 0
        else:  # every sample coded (most tiles): no masked copies
            coded = x  # a fresh array (_integers copies): the anchors below may be written into it
            lo, hi = (x.min(axis=(1, 2)), x.max(axis=(1, 2))) if x.size else (np.zeros(c, np.int64),) * 2
        rep = np.tile(np.array([1, 1, 0, 0], np.uint8), (c, 1))
        for b in range(c):
            rep[b], anchors = replication(coded[b], skip[b] if some_skipped else None)
            if anchors is not None:
                coded[b] = anchors
        palette = _palettes(coded, skip if some_skipped else None, e, lo, hi)
        ranks, clo, chi = coded, lo, hi
        if any(p is not None for p in palette):  # lossless bands with a combed histogram: coded as ranks
            # in place: coded is this call's own array (from _integers or np.where) and not read after this
            clo, chi = lo.copy(), hi.copy()
            for b, p in enumerate(palette):
                if p is not None:
                    # every sample, skipped anchors included (they carry their block's value); the other skipped
                    # samples are not coded, whatever rank they get
                    lut = np.zeros(int(hi[b] - lo[b] + 1), np.int64)
                    lut[p - lo[b]] = np.arange(len(p))
                    ranks[b] = lut[np.clip(coded[b] - lo[b], 0, len(lut) - 1)]
                    clo[b], chi[b] = 0, len(p) - 1
        # skip as uint8 0/1 without a copy (a C-contiguous bool array's bytes)
        args = (np.ascontiguousarray(ranks, np.int64), skip.view(np.uint8), rep, c, h, w, e, clo, chi)
        v9 = bitstream.tile_format(self.version).feedback
        modes, payload = band_modes(args, ranks, skip if some_skipped else None, v9)  # v9: a predictor per band
        header = bitstream.TileHeader(model_id=self.model_id[:bitstream.MODEL_ID_BYTES], level=0, dtype=tile.dtype,
                                      bands=c, height=h, width=w, lo=lo.astype(np.float64), hi=hi.astype(np.float64),
                                      mean=np.zeros(c, np.float32), matrix=(np.eye(c) * 127).astype(np.int8),
                                      version=self.version, band_fill=band_fill, max_error=e, replication=rep,
                                      palette=palette, modes=modes)
        return bitstream.pack_tile(header, np.ones(c, bool), payload, valid)

    def decode_tile(self, header: bitstream.TileHeader, payload: bytes, valid: np.ndarray | None) -> np.ndarray:
        """int64[C, H, W]: the decoded samples (skipped samples hold 0)."""
        c, h, w = header.bands, header.height, header.width
        skip = skipped(header, valid)
        coded = coded_at_least(skip, header.replication)
        if coded > bitstream.max_binary_decisions(len(payload)):  # before the output and the coder's state
            raise CorruptTileError(f"predictive stream: {len(payload)} bytes cannot hold the tile's {coded} coded "
                                   "samples; the tile is corrupt")
        out = np.zeros((c, h, w), np.int64)
        palette = header.palette or (None,) * c
        clo, chi = coder_range(header)
        modes = np.zeros(c, np.uint8) if header.modes is None else np.ascontiguousarray(header.modes, np.uint8)
        status, detail = _predictive.decode(payload, np.ascontiguousarray(skip, np.uint8),
                                            np.ascontiguousarray(header.replication, np.uint8), c, h, w,
                                            np.ascontiguousarray(header.max_error, np.int64), clo, chi, out, modes,
                                            header.format.feedback)
        if status:
            raise CorruptTileError(f"predictive stream: {_STATUS.get(status, f'status {status}')} (at {detail}); "
                                   "the tile is corrupt")
        for b, p in enumerate(palette):
            if p is not None:
                out[b] = p[out[b]]  # ranks back to values (ranks lie in 0 .. len - 1: the coder clips to them)
        out[skip] = 0
        return out


#: a band is a candidate for the replication mode when at least this share of its horizontal neighbour pairs (both
#: coded) are equal and v4 found no replication blocks in it: nearest-neighbour upsampling by k >= 2 leaves about
#: (k - 1) / k of them equal (resampled 20 m and 60 m Sentinel-2 bands: 0.49 and 0.83; 10 m bands 0.02; 8-bit
#: Landsat-5 bands up to 0.38, which v4 codes better); on aligned blocks v4 codes each block once, which MED does not beat
REPLICATION_CANDIDATE = 0.4


#: the encoder first codes strips of a tile both ways (TRIAL_STRIPS strips of TRIAL_ROWS rows, evenly spread, on tiles
#: of at least 8 TRIAL_ROWS rows); a candidate band estimated there at or above its v4 bits keeps v4's predictor, one
#: below CLEAR_MARGIN of them takes the replication mode; only the others make the whole tile be coded both ways
CLEAR_MARGIN, TRIAL_STRIPS, TRIAL_ROWS = 0.75, 4, 8


def band_modes(args: tuple, coded: np.ndarray, skip: np.ndarray | None, v9: bool = True) -> tuple[np.ndarray, bytes]:
    """``(modes uint8[C], payload)``: each band's predictor (0 v4's, 1 the replication mode) and the coder stream.
    ``args``: ``_predictive.encode``'s arguments; ``coded int64[C, H, W]``, ``skip bool[C, H, W]`` (None: no sample
    skipped): what it codes.

    Bands with many equal neighbours (:data:`REPLICATION_CANDIDATE`) are candidates. Their bits in both modes are
    estimated first on strips of the tile (:data:`TRIAL_STRIPS`); when that settles every candidate
    (:data:`CLEAR_MARGIN`) the tile is coded once with the modes it chose. Otherwise (and on short tiles) the whole
    tile is coded both ways and each band keeps the mode with fewer estimated bits; of the streams coded, the
    smallest is sent. Without candidates: v4's predictor, one pass. ``v9``: tile format v9's coder (else v8's). The
    strips' estimates cover the bands up to the last candidate (a band's bits depend on the bands before it only)."""
    c, h, w = coded.shape
    if skip is not None:
        pairs = ~skip[:, :, 1:] & ~skip[:, :, :-1]
        equal = ((coded[:, :, 1:] == coded[:, :, :-1]) & pairs).sum(axis=(1, 2))
        npairs = pairs.sum(axis=(1, 2))
    else:
        equal = (coded[:, :, 1:] == coded[:, :, :-1]).sum(axis=(1, 2))
        npairs = np.full(c, h * (w - 1))
    blocks = (np.asarray(args[2])[:, :2] > 1).any(axis=1)
    cand = ((equal >= REPLICATION_CANDIDATE * np.maximum(npairs, 1)) & ~blocks).astype(np.uint8)
    zero = np.zeros(c, np.uint8)
    if not cand.any():
        return zero, _predictive.encode(*args, zero, v9)
    if h >= 2 * TRIAL_STRIPS * TRIAL_ROWS:
        x, sk, rep, _, _, _, e, lo, hi = args
        n = int(np.flatnonzero(cand)[-1]) + 1  # the bands up to the last candidate
        rows = np.concatenate([np.arange(TRIAL_ROWS) + k * h // TRIAL_STRIPS for k in range(TRIAL_STRIPS)])
        trial = (np.ascontiguousarray(x[:n, rows]), np.ascontiguousarray(sk[:n, rows]), rep[:n], n, len(rows), w,
                 e[:n], lo[:n], hi[:n])
        t1 = np.zeros(c, np.int64)
        t0 = np.zeros(c, np.int64)
        t1[:n] = _predictive.costs(*trial, cand[:n], v9)
        t0[:n] = _predictive.costs(*trial, zero[:n], v9)
        wins = cand.astype(bool) & (t1 < CLEAR_MARGIN * t0)
        unclear = cand.astype(bool) & ~wins & (t1 < t0)
        if not unclear.any():
            modes = wins.astype(np.uint8)
            return modes, _predictive.encode(*args, modes, v9)
        cand = (wins | unclear).astype(np.uint8)
    p1, cost1 = _predictive.encode_costs(*args, cand, v9)
    p0, cost0 = _predictive.encode_costs(*args, zero, v9)
    chosen = (cand.astype(bool) & (np.array(cost1, np.int64) < np.array(cost0, np.int64))).astype(np.uint8)
    tried = [(len(p1), 1, cand, p1), (len(p0), 0, zero, p0)]
    if chosen.any() and not np.array_equal(chosen, cand):
        p2 = _predictive.encode(*args, chosen, v9)
        tried.append((len(p2), 2, chosen, p2))
    _, _, modes, payload = min(tried, key=lambda t: (t[0], t[1]))
    return modes, payload


def skipped(header: bitstream.TileHeader, valid: np.ndarray | None) -> np.ndarray:
    """bool[C, H, W]: the samples a v4 tile does not code (invalid pixels, band-fill samples)."""
    skip = np.zeros((header.bands, header.height, header.width), bool)
    if valid is not None:
        skip[:, ~valid] = True
    if header.band_fill is not None:
        skip |= header.band_fill
    return skip


def coded_at_least(skip: np.ndarray, rep: np.ndarray | None) -> int:
    """A lower bound on the samples a v4 stream codes (``_predictive.c``'s ``coded_at_least``): those not skipped
    that anchor their replication block (a block's anchor: its first row and column in the tile)."""
    c, h, w = skip.shape
    rep = np.tile([1, 1, 0, 0], (c, 1)) if rep is None else np.asarray(rep, np.int64)
    total = 0
    for b, (ky, kx, oy, ox) in enumerate(rep.tolist()):
        rows = np.flatnonzero(((np.arange(h) - oy) % ky == 0) | (np.arange(h) == 0))
        cols = np.flatnonzero(((np.arange(w) - ox) % kx == 0) | (np.arange(w) == 0))
        total += int((~skip[b][np.ix_(rows, cols)]).sum())
    return total


def coder_range(header: bitstream.TileHeader) -> tuple[np.ndarray, np.ndarray]:
    """int64[C] lo, hi the coder works in: the band's range, or 0 .. K - 1 for a band coded as palette ranks."""
    palette = header.palette or (None,) * header.bands
    lo = np.array([0 if p is not None else header.lo[b] for b, p in enumerate(palette)]).astype(np.int64)
    hi = np.array([len(p) - 1 if p is not None else header.hi[b] for b, p in enumerate(palette)]).astype(np.int64)
    return lo, hi


def replication(band: np.ndarray, skip: np.ndarray | None) -> tuple[tuple[int, int, int, int], np.ndarray | None]:
    """``((ky, kx, oy, ox), anchors)``: the largest blocks (at most 16 a side, starting at row ``oy`` and column
    ``ox``) on which the coded samples of ``band[H, W]`` are equal, ``((1, 1, 0, 0), None)`` when there are none;
    ``anchors``: the band with each block's value written into its anchor (the C coder codes an anchor whenever
    its block has a coded sample, even a skipped anchor). Pixel replication is how multi-resolution stacks
    (Sentinel-2's 20 m and 60 m bands at 10 m) put bands on one grid; a nodata mask need not follow the blocks.
    ``skip`` None: no sample skipped."""
    coded = np.ones(band.shape, bool) if skip is None else ~skip
    ky, oy = _line_period(band, coded, skip is not None)
    kx, ox = _line_period(band.T, coded.T, skip is not None)
    if ky == 1 and kx == 1:
        return (1, 1, 0, 0), None
    h, w = band.shape
    ay = np.maximum(0, np.arange(h) - (np.arange(h) - oy) % ky)
    ax = np.maximum(0, np.arange(w) - (np.arange(w) - ox) % kx)
    block = (ay[:, None] * w + ax[None, :])[coded]
    values = band[coded]
    lo = np.full(h * w, np.iinfo(np.int64).max)
    hi = np.full(h * w, np.iinfo(np.int64).min)
    np.minimum.at(lo, block, values)
    np.maximum.at(hi, block, values)
    used = np.unique(block)
    if (lo[used] != hi[used]).any():  # the row and column tests passed but a block is not constant
        return (1, 1, 0, 0), None
    anchors = band.copy()
    anchors.reshape(-1)[used] = lo[used]
    return (ky, kx, oy, ox), anchors


def _line_period(band: np.ndarray, coded: np.ndarray, some_skipped: bool) -> tuple[int, int]:
    """:func:`_period` of the lines (rows) of ``band[H, W]``: line i + 1 is the same as line i where they are equal
    on every pair of coded samples. Two adjacent lines that each differ from the line before settle it at once
    (period 1: the starts i + 1, i + 2 are 1 apart), tried at the top and in the middle before the full test."""
    h = band.shape[0]

    def differs(i: int) -> bool:
        return bool(((band[i + 1] != band[i]) & coded[i + 1] & coded[i]).any())

    for i in {1, h // 2}:
        if i + 2 < h and differs(i - 1) and differs(i):
            return 1, 0
    if not some_skipped:
        return _period(np.all(band[1:] == band[:-1], axis=1))
    pairs = coded[1:] & coded[:-1]
    return _period(np.all((band[1:] == band[:-1]) | ~pairs, axis=1))


def _period(same: np.ndarray) -> tuple[int, int]:
    """``same[i]``: line ``i + 1`` equals line ``i``. The largest period k <= 16 (and its offset) such that every
    line that differs from the one before lies on the grid ``o + k * n``."""
    starts = np.flatnonzero(~same) + 1
    if len(starts) == 0:
        return 16, 0
    g = int(np.gcd.reduce(np.diff(starts))) if len(starts) > 1 else 16
    k = max(d for d in range(1, 17) if g % d == 0)
    return k, int(starts[0] % k)


#: a lossless band whose values use under this share of the values between its 10th and 90th percentile (a
#: combed histogram, as some Sentinel-2 L2A products have; natural 16-bit data is dense there, sparse only in
#: its tails) is coded as ranks
PALETTE_OCCUPANCY = 0.6


def _palettes(coded: np.ndarray, skip: np.ndarray | None, e: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple:
    """Per band, the used values of a lossless band with a combed histogram, else None (measured: on such bands
    ranks cost about a bit per sample less, the bitmap a few hundred bytes a tile). ``coded: int64[C, H, W]``;
    ``skip`` None: every sample coded."""
    pals = []
    for b in range(len(e)):
        p = None
        span = int(hi[b] - lo[b] + 1)
        if e[b] == 0 and 2 < span <= bitstream.PALETTE_SPAN:
            values = coded[b].ravel() if skip is None else coded[b][~skip[b]]
            counts = np.bincount(values - lo[b], minlength=span)
            cum = np.cumsum(counts)
            i10, i90 = np.searchsorted(cum, [0.1 * cum[-1], 0.9 * cum[-1]])
            if (counts[i10:i90 + 1] > 0).mean() < PALETTE_OCCUPANCY:
                p = lo[b] + np.flatnonzero(counts).astype(np.int64)
        pals.append(p)
    return tuple(pals)


def _integers(tile: np.ndarray, skip: np.ndarray | None) -> np.ndarray:
    """int64[C, H, W] (a new array) of an integer tile, or of a float tile whose coded samples (not ``skip``; None:
    all) are all whole numbers."""
    if tile.dtype.kind in "iu":
        return tile.astype(np.int64)
    coded = np.ones(tile.shape, bool) if skip is None else ~skip
    v = tile[coded]
    if not np.isfinite(v).all() or (v != np.round(v)).any() or (np.abs(v) > LIMIT).any():
        raise InputError(f"{tile.dtype} tile holds values that are not whole numbers: an error bound in digital "
                         "numbers needs integer samples; code this scene with --level, --tile-bytes or --scene-bytes")
    out = np.zeros(tile.shape, np.int64)
    out[coded] = v.astype(np.int64)
    return out
