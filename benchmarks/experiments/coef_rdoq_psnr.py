"""coef_rdoq.py's greedy RDOQ inside the real encoder, measured as the scorer measures: PSNR over the decoded scene and
every packet byte (issue 22, item 5).

The encoder of this checkout, in process (``bench_rd.our_curve``: ``encode_scene`` at each level, ``decode_streams``
on the ground path, the scorer's PSNR per band over valid pixels), once as it is and once with
``Planner.residual_part`` wrapped: every quantised residual it returns (residual-only and hybrid tiles alike) goes
through ``coef_rdoq.py``'s greedy choice at the encoder's own lambda times each of ``--multipliers``, its error and
reconstruction recomputed and its estimated bits scaled by the v5 stream's byte ratio (what the mode decision reads);
the tiles stay format v7 and decode with the shipped decoder. ``--start nearest``: the choice starts from the nearest
integers instead of the encoder's per-subband rounding offsets (could it replace the four-offset search?), written as
``coef_rdoq_psnr_nearest``. Per scene the BD-rate (PSNR, points under 20 dB
ignored, ``cvae.metrics.bd_rate``) of the RDOQ curve against the plain one.

    python benchmarks/experiments/coef_rdoq_psnr.py .dev/val/*.tif --levels 2 4 6 8 10 11

**Shipped** (after this experiment, at commit bbf19c2): ``Planner.residual_part`` now starts from the nearest integers
and makes this choice itself (``coefs.encode_rdo``), so in later checkouts "plain" already includes it and this script
no longer applies; check out bbf19c2 to rerun it.

**Conclusion** (decided; one-off, not rerun by reproduce_readme.sh; 9 min on 2 cores a run): it pays, on every
scene, and more without the four-offset search. From the encoder's values at its own lambda (m = 1) the median BD-rate
is -0.96% (-0.66% to -1.28%; m = 0.75: -0.63%, m = 1.25: -0.97% but -0.29% on the smallest scene). From the nearest
integers (``--start nearest``) it is -1.49% (-1.02% to -2.29%; m = 1.25: -1.43%, m = 1.5: -0.60%; a run at m = 0.6 /
0.8 not kept: -0.54% / -1.37%, one scene +0.20% at 0.6), no scene worse from m = 0.8 to 1.25. No format change (v7 tiles, the shipped decoder). To ship:
in ``Planner.residual_part``, quantise every component to the nearest integers (the rounding-offset search goes), run
the greedy choice over the tile's coefficients in the coding order (a C pass in ``_coefs.c``, about one v5
encode), then the inverse transforms and errors from the chosen values, the bits from the stream.
Results: ``benchmarks/results/782c7ed21f22/coef_rdoq_psnr.md``, ``coef_rdoq_psnr_nearest.md``.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import native_pixels, scenes_main, sibling, utc_now  # noqa: E402


def rdoq_residual_part(mult: float, nearest: bool = False):
    """A replacement for ``Planner.residual_part`` that passes its coefficients through the greedy choice
    (``nearest``: starting from the nearest integers instead of the encoder's per-subband rounding offsets)."""
    from cvae.edge.codec import _coefs, coefs, wavelet
    from cvae.edge.codec.plan import Planner, ResidualPart

    plain = Planner.residual_part
    rdoq = sibling("coef_rdoq")
    lam = mult * math.log(2) / 6

    def residual_part(self, a, level, lat, step=None, keep=None):
        part = plain(self, a, level, lat, step, keep)
        st = self.model.preset_step(level) if step is None else float(step)
        r = a.z - self.reconstruction(a, lat, keep) if lat is not None else a.z
        if a.valid is not None and lat is not None:
            r[:, ~a.valid] = 0.0
        c, h, w = r.shape
        levels = wavelet.levels_for(h, w)
        bands = [wavelet.forward(r[k], levels) for k in range(c)] if lat is not None else self.z_subbands(a)
        order, geom = coefs.coding_order(h, w)
        geom = np.ascontiguousarray(geom)
        q = np.ascontiguousarray(coefs.flatten(list(part.arrays), h, w), np.int32)
        x = np.ascontiguousarray(np.concatenate([np.asarray(b[i], np.float64).reshape(-1) / st
                                                 for b in bands for i in order]))
        data, v = rdoq.encode((np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int32) if nearest else q, x,
                              c, geom, lam)
        ratio = len(data) / max(1, len(_coefs.encode(q, c, geom)))
        arrays = tuple([np.array(s) for s in comp] for comp in coefs.split(v, c, h, w))
        recon = np.zeros((c, h, w), np.float32)
        comp_err = np.zeros(c)
        for k in range(c):
            recon[k] = wavelet.inverse([s.astype(np.float32) for s in arrays[k]], levels) * np.float32(st)
            e = r[k] - recon[k]
            if a.valid is not None:
                e = e[a.valid]
            comp_err[k] = float(np.sum(e.astype(np.float64) ** 2))
        comp_bits = part.comp_bits * ratio if part.comp_bits is not None else None
        return ResidualPart(arrays=arrays, bits=part.bits * ratio, err=float(comp_err.sum()), recon=recon,
                            comp_bits=comp_bits, comp_err=comp_err)

    return residual_part


def run(scenes: list[Path], levels: list[int], mults: list[float], start: str = "encoder", log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec.plan import Planner
    from cvae.edge.io.raster import read_raster
    from cvae.metrics import bd_rate

    bench_rd = sibling("bench_rd")
    bundle = Bundle.load()
    records = []
    plain = Planner.residual_part
    variants = [("plain", plain), *((f"m={m}", rdoq_residual_part(m, start == "nearest")) for m in mults)]
    for path in scenes:
        r = read_raster(path)
        orig = native_pixels(r.pixels)
        curves = {}
        for name, fn in variants:
            Planner.residual_part = fn
            try:
                codec = bundle.codec("onnxruntime", mode_search="auto")  # a fresh codec: no plan cached across the two
                curves[name] = bench_rd.our_curve(path, bundle, codec, levels, orig, r.valid)
            finally:
                Planner.residual_part = plain
        pairs = {n: [(p["bpp"], p["psnr"]) for p in pts] for n, pts in curves.items()}
        bd = {n: bd_rate(pairs["plain"], pairs[n], min_psnr=20.0) for n, _ in variants[1:]}
        records.append({"scene": path.stem, "bd_rate_psnr": bd,
                        "points": {n: [{"level": p["param"], "bpp": p["bpp"], "psnr": p["psnr"]} for p in pts]
                                   for n, pts in curves.items()}})
        log(f"{path.stem}: " + " ".join(f"{n}: {v:+.2f}%" for n, v in bd.items()))
    names = [n for n, _ in variants[1:]]
    return {"date": utc_now(), "bundle": bundle.model_id[:12], "levels": levels, "multipliers": mults, "start": start,
            "scenes": records, "median_bd_rate_psnr": {n: float(np.nanmedian([s["bd_rate_psnr"][n] for s in records]))
                                                       for n in names}}


def markdown(rec: dict, command: str) -> str:
    names = list(rec["median_bd_rate_psnr"])
    best = min(names, key=lambda n: rec["median_bd_rate_psnr"][n])
    lines = [f"# Greedy RDOQ in the encoder, scorer's PSNR (bundle {rec['bundle']}, {rec['date'][:10]})", "",
             f"`{command}`", "",
             "BD-rate (PSNR >= 20 dB, all packet bytes) of the encoder with the greedy choice at m times the "
             f"encoder's lambda against the same encoder without it; per level, for {best} (the best median), the bpp "
             "and PSNR change.", "",
             "| scene | " + " | ".join(f"BD {n}" for n in names) + " | "
             + " | ".join(f"L{lv} bpp / dB" for lv in rec["levels"]) + " |",
             "|---|" + "---|" * (len(names) + len(rec["levels"]))]
    for s in rec["scenes"]:
        cells = [f"{100 * (p1['bpp'] / p0['bpp'] - 1):+.1f}% / {p1['psnr'] - p0['psnr']:+.3f}"
                 for p0, p1 in zip(s["points"]["plain"], s["points"][best])]
        lines.append(f"| {s['scene']} | " + " | ".join(f"{s['bd_rate_psnr'][n]:+.2f}%" for n in names) + " | "
                     + " | ".join(cells) + " |")
    lines.append("| **median** | " + " | ".join(f"**{rec['median_bd_rate_psnr'][n]:+.2f}%**" for n in names)
                 + " |" * (len(rec["levels"]) + 1))
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    name = "coef_rdoq_psnr_nearest" if "nearest" in argv else "coef_rdoq_psnr"
    return scenes_main(argv, __doc__, __file__, name, run, markdown,
                       [("--levels", {"nargs": "+", "type": int, "default": [2, 4, 6, 8, 10, 11]}),
                        ("--multipliers", {"nargs": "+", "type": float, "default": [0.75, 1.0, 1.25]}),
                        ("--start", {"choices": ["encoder", "nearest"], "default": "encoder"})])


if __name__ == "__main__":
    sys.exit(main())
