"""Would seeing irregular pixel replication close the lossless gap to JPEG XL on resampled stacks? (issue 25)

Ideal adaptive code lengths (no entropy coder) of per-band lossless (E = 0) coding of each Sentinel-2 band of
the resampled stacks, grouped 10 / 20 / 60 m, under three models of increasing reach, and ``lin``, a model of v4's own predictor:

- ``lin``: per tile, the least-squares linear predictor from ``N, W, NW, NE, WW, NN`` (coefficients not counted;
  v4's LMS converges toward such a predictor), with ``a``'s context;

- ``a`` (baseline close to tile format v4): MED predictor; magnitude context as in v4 (``bucket`` of
  ``(act + min(g, 4096) + 1) / 2``, ``act`` from the neighbours' residual magnitudes, ``g`` the local gradient);
- ``b`` (+ equal neighbours, JPEG XL style): ``a``'s context times the equalities ``W == NW``, ``N == NW``,
  ``N == NE``, ``N == NN`` and the run of equal samples ending at ``W`` (1, 2, 3+); predictor: copy ``W`` when
  ``N == NW``, ``N`` when ``W == NW``, else MED (which MED already does: the contexts are what is new);
- ``c`` (+ predictor selection by local error, TMW/GraLIC style): per sample the predictor among
  ``{MED, W, N, NW, NE, W + N - NW}`` with the smallest sum of its own absolute errors at the causal neighbours
  ``W, N, NW, NE`` (ties to the earlier one); context: ``b``'s equalities times the bucket of that smallest sum
  (0 = the chosen predictor was exact on all four) instead of ``g``.

Binarisation as v4's, approximately: a magnitude symbol (``0`` for a zero residual, else ``1 + k`` with
``k = bitlength(|e|) - 1``) with adaptive counts per context (start ``ALPHA`` per symbol, +1 per coded sample);
a sign with adaptive counts per ``9 t(e_W) + 3 t(e_N)`` (``t``: zero, positive, negative); the bit below the
leading one adaptive per (context, ``k``); the remaining ``k - 1`` bits raw. Counts start afresh in every 256 x 256
tile of each band, as v4's models do (JPEG XL instead learns one tree and histograms per image); neighbours are
read across tile edges (v4 reads only its tile: a fraction of a percent). Every sample of every band is coded (no
subsampling). Bands are coded alone: no previous-band feature, unlike v4 on a stack.

Beside them: our real v4 bits for the same band alone (``codec.compress_bounded(tile[None], 0)`` on 256 x 256 tiles,
headers included), JPEG XL lossless per band (libjxl through imagecodecs, grayscale, effort 7 and 9), and the
whole-stack figures of ``bounded_jxl_resampled.json``.

    python benchmarks/experiments/replication_contexts.py .dev/val_resampled/s2_t33nza_rs10m_12band_rot2.tif \
        .dev/val_resampled/s2_t33nza_rs10m_12band_i16.tif .dev/val_resampled/s2_t33nza_rs10m_12band_aligned.tif

Writes ``replication_contexts.json`` and ``replication_contexts.md``.

**Conclusion** (decided; one-off, not rerun by reproduce_readme.sh; 2 min on 2 cores, every sample): what costs
us on the misaligned stacks is v4's LMS predictor, not the missing contexts. Bands coded alone (mean bits per
sample, rot2; i16 alike): 20 m bands ours 6.18, JPEG XL e9 2.35 (e7 2.63), MED with v4-like contexts (a) 3.15,
+ equal-neighbour/W-run contexts (b) 2.44; 60 m ours 2.06, e9 0.49, a 0.64, b 0.55; 10 m ours 6.56, e9 6.63, but
a 7.89, b 7.91. A per-tile least-squares linear predictor with the same contexts (``lin``, our model of v4's converged
LMS) costs 6.81 on the 20 m bands, near our real 6.18: a linear mix of neighbours never copies one exactly, so the
replicated samples' zero residuals are lost; MED copies ``W`` or ``N`` where the other pair is equal. Model (a) is not
close to our real bits (it is 1.20x ours on 10 m bands and 0.51x on 20 m); ``lin`` is (1.16x / 1.10x). Predictor
selection by causal local error (c) costs more than MED alone in every group (20 m 3.74): the selector leaves MED on 39% of
the 20 m samples (W, N or the gradient instead) and loses. Per band, the better of our v4 and (b) gives 3.50 bits on rot2
against JPEG XL e9's 3.47 per band (1.01x, from 1.62x: 99% of the gap), 3.35 against 3.35 on i16, and leaves the
aligned control as it is (there v4's replication blocks already win). Cost in the C decoder: a MED predictor path
chosen per band (or per tile) by a header flag (three compares a sample), five equality tests and a W-run counter a
sample, and 64x the context-indexed bit models (16 -> 1024 magnitude contexts per band), or a coarser split; a new tile format version. Not measured: MED or the
contexts inside the stack with v4's inter-band features, and JPEG XL's weighted predictor.
Result: ``benchmarks/results/782c7ed21f22/replication_contexts.md``.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402

TILE = 256
ALPHA = 0.125  # start count per symbol of a multi-symbol model
ALPHA_BIN = 0.5  # start count per value of a binary model (Krichevsky-Trofimov)
EDGES = np.array([1, 2, 3, 5, 7, 10, 14, 20, 28, 40, 56, 80, 112, 160, 224])  # v4's bucket edges
GROUPS = {"B02": "10 m", "B03": "10 m", "B04": "10 m", "B08": "10 m", "B05": "20 m", "B06": "20 m", "B07": "20 m",
          "B8A": "20 m", "B11": "20 m", "B12": "20 m", "B01": "60 m", "B09": "60 m"}
MODELS = ("lin", "a", "b", "c")
NSYM = 19  # magnitude symbols: 0 and 1 + k for k = 0..17


def bucket(z: np.ndarray) -> np.ndarray:
    """v4's 16 magnitude buckets: how many of EDGES are <= z."""
    return np.searchsorted(EDGES, z, side="right")


def adaptive_bits(keys: np.ndarray, sym: np.ndarray, nsym: int, alpha: float) -> float:
    """Sum over samples (in array order) of -log2 of the adaptive probability of ``sym`` given its context ``keys``:
    ``(n(key, sym) + alpha) / (n(key) + nsym alpha)``, counts of the earlier samples with that key."""
    def earlier(k: np.ndarray) -> np.ndarray:
        order = np.argsort(k, kind="stable")
        ks = k[order]
        start = np.r_[0, np.flatnonzero(ks[1:] != ks[:-1]) + 1]
        rank = np.arange(len(k)) - np.repeat(start, np.diff(np.r_[start, len(k)]))
        out = np.empty(len(k), np.int64)
        out[order] = rank
        return out

    n_ctx = earlier(keys)
    n_sym = earlier(keys * nsym + sym)
    return float(-np.log2((n_sym + alpha) / (n_ctx + nsym * alpha)).sum())


def neighbours(x: np.ndarray) -> dict[str, np.ndarray]:
    """Causal neighbours of every sample of ``x: int64[H, W]`` (v4's edge rules, approximately: above the first row
    the band's mid value, left of the first column the sample above)."""
    h, w = x.shape
    mid = (int(x.min()) + int(x.max())) // 2
    p = np.full((h + 2, w + 3), mid, np.int64)
    p[2:, 2:w + 2] = x
    p[3:, 0] = p[3:, 1] = x[:-1, 0]
    p[2:, w + 2] = x[:, w - 1]
    return {"W": p[2:, 1:w + 1], "WW": p[2:, 0:w], "N": p[1:h + 1, 2:w + 2], "NN": p[0:h, 2:w + 2],
            "NW": p[1:h + 1, 1:w + 1], "NE": p[1:h + 1, 3:w + 3]}


def shifted(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` at (y - dy, x - dx) (0 outside): a causal neighbour's value of a per-sample quantity."""
    out = np.zeros_like(a)
    h, w = a.shape
    ys, xs = slice(dy, h), slice(max(dx, 0), w + min(dx, 0))
    out[ys, xs] = a[0:h - dy, max(-dx, 0):w - max(dx, 0)]
    return out


def med(n: dict) -> np.ndarray:
    W, N, NW = n["W"], n["N"], n["NW"]
    lo, hi = np.minimum(W, N), np.maximum(W, N)
    return np.where(NW >= hi, lo, np.where(NW <= lo, hi, W + N - NW))


def run_w(x: np.ndarray, cap: int = 3) -> np.ndarray:
    """Length (1..cap) of the run of equal samples ending at ``W``, 0 in the first column."""
    n = neighbours(x)
    run = np.zeros(x.shape, np.int64)
    run[:, 1:] = 1
    eq = n["W"] == n["WW"]
    for k in range(2, cap + 1):  # W == x-2 == ... == x-k
        more = eq.copy()
        for j in range(2, k):
            more &= shifted(eq.astype(np.int64), 0, j - 1).astype(bool)
        more[:, :k] = False
        run = np.where(more, k, run)
    return run


def code_bits(x: np.ndarray, pred: np.ndarray, ctx: np.ndarray) -> float:
    """Ideal bits of ``x`` predicted by ``pred`` with magnitude context ``ctx`` (ints >= 0), counts per tile."""
    h, w = x.shape
    tile = (np.arange(h)[:, None] // TILE) * ((w + TILE - 1) // TILE) + np.arange(w)[None, :] // TILE
    e = x - pred
    a = np.abs(e)
    k = np.where(a > 0, np.floor(np.log2(np.maximum(a, 1))).astype(np.int64), -1)
    sym = np.where(a > 0, 1 + k, 0)
    t = np.sign(e)
    t = np.where(t < 0, 2, t)
    sctx = 9 * shifted(t, 0, 1) + 3 * shifted(t, 1, 0)
    # order within each tile is raster order, the same as the band's raster order restricted to it
    key = (tile * (int(ctx.max()) + 1) + ctx).ravel()
    bits = adaptive_bits(key, sym.ravel(), NSYM, ALPHA)
    nz = (a > 0).ravel()
    bits += adaptive_bits((tile * 9 + sctx).ravel()[nz], (e < 0).ravel()[nz].astype(np.int64), 2, ALPHA_BIN)
    m = (k >= 1).ravel()
    m1 = ((a >> np.maximum(k - 1, 0)) & 1).ravel()
    bits += adaptive_bits((key * 18 + k.ravel())[m], m1[m], 2, ALPHA_BIN)
    bits += float(np.maximum(k - 1, 0).sum())
    return bits


def model_bits(x: np.ndarray) -> dict[str, float]:
    """Ideal bits per sample of band ``x: int64[H, W]`` under models a, b, c, and c's predictor shares."""
    n = neighbours(x)
    W, N, NW, NE, WW, NN = (n[k] for k in ("W", "N", "NW", "NE", "WW", "NN"))
    p_med = med(n)
    g = np.abs(W - NW) + np.abs(N - NW) + np.abs(N - NE) + np.abs(W - WW) + np.abs(N - NN)
    q = np.minimum(np.abs(x - p_med), 255)
    qW, qN = shifted(q, 0, 1), shifted(q, 1, 0)
    act = 2 * (qW + qN) + shifted(q, 1, 1) + shifted(q, 1, -1) + shifted(q, 0, 2)
    ctx_a = bucket((act + np.minimum(g, 4096) + 1) // 2)
    out = {"a": code_bits(x, p_med, ctx_a), "lin": code_bits(x, ls_pred(x, n), ctx_a)}

    run = run_w(x)
    eq = ((W == NW).astype(np.int64) + 2 * (N == NW) + 4 * (N == NE) + 8 * (N == NN)) * 4 + run  # 0..63
    p_b = np.where(N == NW, W, np.where(W == NW, N, p_med))
    out["b"] = code_bits(x, p_b, eq * 16 + ctx_a)

    preds = np.stack([p_med, W, N, NW, NE, W + N - NW])
    err = np.abs(x[None] - preds)
    score = np.stack([shifted(e, 0, 1) + shifted(e, 1, 0) + shifted(e, 1, 1) + shifted(e, 1, -1) for e in err])
    choice = np.argmin(score, axis=0)
    p_c = np.take_along_axis(preds, choice[None], 0)[0]
    out["c"] = code_bits(x, p_c, eq * 16 + ctx_a)
    return {**{m: v / x.size for m, v in out.items()},
            "c_share": np.bincount(choice.ravel(), minlength=6) / x.size}


def ls_pred(x: np.ndarray, n: dict) -> np.ndarray:
    """A linear predictor like v4's converged LMS: per tile, least squares on N, W, NW, NE, WW, NN and 1 (its
    coefficients not counted), rounded and clipped to the band's range."""
    h, w = x.shape
    out = np.empty_like(x)
    feats = np.stack([n[k] for k in ("N", "W", "NW", "NE", "WW", "NN")] + [np.ones_like(x)], -1).astype(np.float64)
    for y in range(0, h, TILE):
        for xx in range(0, w, TILE):
            f = feats[y:y + TILE, xx:xx + TILE].reshape(-1, 7)
            t = x[y:y + TILE, xx:xx + TILE]
            coef = np.linalg.lstsq(f, t.ravel().astype(np.float64), rcond=None)[0]
            out[y:y + TILE, xx:xx + TILE] = np.rint(f @ coef).reshape(t.shape).astype(np.int64)
    return np.clip(out, x.min(), x.max())


def ours_bits(codec, band: np.ndarray) -> float:
    """Our real v4 bits per sample of one band alone, coded on 256 x 256 tiles at E = 0 (headers included)."""
    h, w = band.shape
    nbytes = 0
    for y in range(0, h, TILE):
        for xx in range(0, w, TILE):
            t = np.ascontiguousarray(band[y:y + TILE, xx:xx + TILE])
            nbytes += len(codec.compress_bounded(t[None], 0))
    return 8 * nbytes / band.size


def jxl_bits(band: np.ndarray, effort: int) -> float:
    """JPEG XL lossless of one band, grayscale, bits per sample (int16 shifted by its minimum)."""
    import imagecodecs

    data = band
    if band.dtype.kind == "i":
        data = (band.astype(np.int32) - int(band.min())).astype(np.uint16)
    bits = max(1, int(data.max()).bit_length())
    s = imagecodecs.jpegxl_encode(np.ascontiguousarray(data), lossless=True, effort=effort, bitspersample=bits,
                                  numthreads=1)
    assert np.array_equal(imagecodecs.jpegxl_decode(s), data)
    return 8 * len(s) / band.size


def run(scenes: list[Path], efforts: list[int], log=print) -> dict:
    import rasterio

    from cvae.edge.bundle import Bundle

    bundle = Bundle.load(None)
    codec = bundle.codec()
    rows = []
    for path in scenes:
        with rasterio.open(path) as src:
            pixels, names = src.read(), src.descriptions
        for b, name in enumerate(names):
            t0 = time.perf_counter()
            band = pixels[b]
            m = model_bits(band.astype(np.int64))
            row = {"scene": path.stem, "band": name, "group": GROUPS[name], **{k: m[k] for k in MODELS},
                   "c_share": m["c_share"].tolist(), "ours": ours_bits(codec, band)}
            for e in efforts:
                row[f"jxl{e}"] = jxl_bits(band, e)
            rows.append(row)
            log(f"{path.stem} {name}: " + " ".join(f"{k}={row[k]:.3f}" for k in (*MODELS, "ours",
                *(f"jxl{e}" for e in efforts))) + f" ({time.perf_counter() - t0:.1f} s)")
    cols = (*MODELS, "ours", *(f"jxl{e}" for e in efforts))
    summary = {}
    for s in dict.fromkeys(r["scene"] for r in rows):
        summary[s] = {}
        for grp in ("10 m", "20 m", "60 m", "all"):
            sel = [r for r in rows if r["scene"] == s and (grp == "all" or r["group"] == grp)]
            summary[s][grp] = {c: float(np.mean([r[c] for r in sel])) for c in cols}
    stack = {}
    stack_json = Path(__file__).resolve().parents[1] / "results" / bundle.model_id[:12] / "bounded_jxl_resampled.json"
    if stack_json.exists():
        import json

        for sc in json.loads(stack_json.read_text())["scenes"]:
            b0 = sc["bounds"][0]
            stack[sc["scene"]] = {k: b0[k]["bits_per_sample"] for k in ("ours", "jpegxl_lossless", "jpegxl_lossless_e9")}
    hybrid = {s: float(np.mean([min(r["ours"], r["b"]) for r in rows if r["scene"] == s])) for s in summary}
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "tile": TILE, "hybrid": hybrid,
            "alpha": ALPHA, "alpha_bin": ALPHA_BIN, "efforts": efforts, "rows": rows, "summary": summary,
            "stack_bounded_jxl_resampled": stack}


def markdown(rec: dict, command: str) -> str:
    efforts = rec["efforts"]
    cols = (*MODELS, "ours", *(f"jxl{e}" for e in efforts))
    lines = [f"# Replication contexts: ideal lossless bits per sample with equal-neighbour contexts and predictor "
             f"selection (issue 25, bundle {rec['bundle']}, {rec['date'][:10]})", "", "```bash", command, "```", "",
             "Per band, coded alone, every sample (no subsampling); model bits are ideal adaptive code lengths "
             f"(counts reset per {rec['tile']} x {rec['tile']} tile), `ours` our real v4 bytes of the band alone "
             "on 256 x 256 tiles, `jxl7`/`jxl9` libjxl lossless of the band alone (grayscale). Mean bits per sample "
             "over the bands of each group. a: MED + v4-like gradient/activity context; b: + equal-neighbour and "
             "W-run contexts; c: + predictor selection by causal local error among {MED, W, N, NW, NE, W+N-NW}.", "",
             "| scene | bands | " + " | ".join(cols) + " | b / jxl9 | ours / jxl9 |",
             "|---|---|" + "---|" * (len(cols) + 2)]
    for s, groups in rec["summary"].items():
        for grp, v in groups.items():
            ref = v.get("jxl9", v.get(f"jxl{efforts[-1]}"))
            lines.append(f"| {s.replace('s2_t33nza_rs10m_12band_', '')} | {grp} | "
                         + " | ".join(f"{v[c]:.3f}" for c in cols) + f" | {v['b'] / ref:.2f} | {v['ours'] / ref:.2f} |")
    if rec["stack_bounded_jxl_resampled"]:
        lines += ["", "Whole stacks from `bounded_jxl_resampled.json` (ours with its inter-band features; JPEG XL the "
                  "smaller of per-band and multi-channel): " + "; ".join(
                      f"{k.replace('s2_t33nza_rs10m_12band_', '')}: ours {v['ours']:.3f}, jxl7 "
                      f"{v['jpegxl_lossless']:.3f}, jxl9 {v['jpegxl_lossless_e9']:.3f}"
                      for k, v in rec["stack_bounded_jxl_resampled"].items()) + " bits per sample."]
    lines += ["", "## Per band", "", "| scene | band | group | " + " | ".join(cols)
              + " | c's choice: MED W N NW NE grad |", "|---|---|---|" + "---|" * (len(cols) + 1)]
    for r in rec["rows"]:
        lines.append(f"| {r['scene'].replace('s2_t33nza_rs10m_12band_', '')} | {r['band']} | {r['group']} | "
                     + " | ".join(f"{r[c]:.3f}" for c in cols) + " | "
                     + " ".join(f"{100 * s:.0f}" for s in r["c_share"]) + " |")
    doc = __doc__.split("**Conclusion**")[1].split("Result:")[0]
    lines += ["", "## Conclusion", "", "Per band, the better of our v4 and model b (mean bits per sample): "
              + "; ".join(f"{k.replace('s2_t33nza_rs10m_12band_', '')} {v:.3f}" for k, v in rec.get("hybrid", {}).items())
              + ".", "", " ".join(doc.split())]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "replication_contexts", run, markdown,
                       [("--efforts", {"nargs": "+", "type": int, "default": [7, 9]})])


if __name__ == "__main__":
    sys.exit(main())
