"""Would a greedy rate-distortion choice of each coefficient with the context coder's own adaptive probabilities
save bits at the same quality? (issue 22, item 5; no format change: the streams are v5's)

Every 256 x 256 tile of the scenes, coded as the residual alone at every level given: the encoder's quantised
coefficients (the rounding offset per subband chosen as the encoder then did, ``Planner.residual_part``) coded by v5's
coefficient coder with the greedy choice (first a compiled copy, now the flight coder's, ``_coefs.c``), which may move each
coefficient one step toward zero as it is coded when ``(x - v)^2 + m lambda bits(v)`` is smaller there (``x`` the
coefficient over the step, ``lambda`` the encoder's ``rd_lambda(step) / step^2 = ln 2 / 6``, ``bits(v)`` its cost under
the models as they stand, ``m`` the multipliers given). ``m = 0`` is v5's encoder byte for byte (checked against
``_coefs.encode``); every stream is decoded by the shipped decoder (``_coefs.decode``) and compared.

Per scene and level: coefficient bytes and the squared error in the subbands (the encoder's own distortion measure,
scaled so that it is about the pixels'); per scene the BD-rate (PCHIP, ``cvae.metrics.bd_rate``) of each multiplier's
(bytes, 10 log10(N / D)) curve over the levels against ``m = 0``. A proxy for the scorer's PSNR (no inverse
transform, no latents: the residual-only tiles), so a first look, not a verdict.

    python benchmarks/experiments/coef_rdoq.py .dev/val/*.tif --levels 2 3 4 5 6 7 8 9 10 11 --multipliers 1 1.5 2

**Conclusion** (a first look; one-off, not rerun by reproduce_readme.sh; 80 s on 2 cores): it pays about a point. At the
encoder's own lambda (m = 1) the greedy choice saves a median 0.91% BD-rate on this proxy (0.69-1.13%, every scene
better; m = 0.75: 0.63%, m = 1.25: 0.78%): 9.9% fewer coefficient bytes at level 2 down to 1.0% at level 11, for 6.4%
to 3.3% more squared error; weighing 0 as a third candidate (a variant of the copy) changed no figure. Shipped since
(commit c5f209d, from the nearest integers): at later commits ``Planner.residual_part`` already makes the choice, so
its integers are no longer the baseline this measured; check out bbf19c2 to rerun it as it was. Inside the real encoder
with the scorer's PSNR (``coef_rdoq_psnr.py``, hybrid tiles included): -0.96% median, every scene better.
Result: ``benchmarks/results/782c7ed21f22/coef_rdoq.md``.
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import scenes_main, utc_now  # noqa: E402

from cvae.edge.codec import _coefs  # noqa: E402


def encode(q: np.ndarray, x: np.ndarray, comps: int, geom: np.ndarray, lam: float) -> tuple[bytes, np.ndarray]:
    """(v5 stream, the coded values) of ``q`` with the greedy choice at ``lam`` (0: none): the flight coder's own
    (``_coefs.c``; this experiment's first version compiled a copy of it, removed once the choice shipped)."""
    q = q.copy()
    data = _coefs.encode(q, comps, geom, x, lam) if lam > 0 else _coefs.encode(q, comps, geom)
    return data, q


def scene_points(path: Path, codec, levels: list[int], mults: list[float]) -> dict:
    """{level: {multiplier: [bytes, squared error]}} over the scene's tiles."""
    from cvae.edge.codec import coefs
    from cvae.edge.io.raster import read_raster
    from cvae.edge.io.tiling import tile_grid

    planner = codec.hybrid.planner
    lam0 = math.log(2) / 6  # rd_lambda(step) / step^2
    r = read_raster(path)
    px = r.pixels
    if px.dtype.kind == "f":
        px = px.astype(np.uint16)
    out = {lv: {m: [0, 0.0] for m in [0.0, *mults]} for lv in levels}
    for win in tile_grid(px.shape[1], px.shape[2], 256):
        a = codec.analyze(px[:, win.slices[0], win.slices[1]], r.valid[win.slices])
        c, h, w = a.shape
        order, geom = coefs.coding_order(h, w)
        geom = np.ascontiguousarray(geom)
        bands = planner.z_subbands(a)
        for lv in levels:
            step = planner.model.preset_step(lv)
            q = np.ascontiguousarray(coefs.flatten(list(planner.residual_part(a, lv, None).arrays), h, w), np.int32)
            x = np.ascontiguousarray(np.concatenate([np.asarray(b[i], np.float64).reshape(-1) / step
                                                     for b in bands for i in order]))
            for m in [0.0, *mults]:
                data, v = encode(q, x, c, geom, m * lam0)
                if m == 0.0 and (data != _coefs.encode(q, c, geom) or not np.array_equal(v, q)):
                    raise AssertionError(f"{path.name} level {lv}: m = 0 is not v5's encoder")
                back = np.zeros_like(v)
                if _coefs.decode(data, c, geom, back) != (0, 0) or not np.array_equal(back, v):
                    raise AssertionError(f"{path.name} level {lv}: the shipped decoder does not read it back")
                out[lv][m][0] += len(data)
                out[lv][m][1] += float(np.sum((x - v) ** 2)) * step * step
    return out


def run(scenes: list[Path], levels: list[int], mults: list[float], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.metrics import bd_rate

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", mode_search="residual", threads=1)
    records = []
    for path in scenes:
        pts = scene_points(path, codec, levels, mults)

        def curve(m):
            return [(pts[lv][m][0], 10 * math.log10(1e12 / max(pts[lv][m][1], 1e-9))) for lv in levels]

        bd = {str(m): bd_rate(curve(0.0), curve(m), min_psnr=-1e9) for m in mults}
        records.append({"scene": path.stem, "bd_rate": bd, "levels": {
            str(lv): {str(m): {"bytes": b, "sq_error": d} for m, (b, d) in pts[lv].items()} for lv in levels}})
        log(f"{path.stem}: " + " ".join(f"m {m}: {v:+.2f}%" for m, v in bd.items()))
    return {"date": utc_now(), "bundle": bundle.model_id[:12], "levels": levels, "multipliers": mults,
            "scenes": records, "median_bd_rate": {str(m): float(np.nanmedian([s["bd_rate"][str(m)] for s in records]))
                                                  for m in mults}}


def markdown(rec: dict, command: str) -> str:
    ms = [str(m) for m in rec["multipliers"]]
    lines = [f"# Greedy RDOQ with the v5 coder's adaptive probabilities (bundle {rec['bundle']}, {rec['date'][:10]})",
             "", f"`{command}`", "",
             "BD-rate (%) of coefficient bytes against the encoder's own choice (m = 0), on the curve of (bytes, "
             "10 log10(1 / squared error in the subbands)) over the levels; residual-only tiles; every stream decoded "
             "back exactly by the shipped v5 decoder. Per level: bytes change / squared-error change.", "",
             "| scene | " + " | ".join(f"BD m={m}" for m in ms) + " |", "|---|" + "---|" * len(ms)]
    for s in rec["scenes"]:
        lines.append(f"| {s['scene']} | " + " | ".join(f"{s['bd_rate'][m]:+.2f}%" for m in ms) + " |")
    lines.append("| **median** | " + " | ".join(f"**{rec['median_bd_rate'][m]:+.2f}%**" for m in ms) + " |")
    m = min(ms, key=lambda k: rec["median_bd_rate"][k])  # the best multiplier
    lines += ["", f"Per level, m = {m} (the best median): bytes / squared error against m = 0, all scenes together:", "",
              "| level | bytes | squared error |", "|---|---|---|"]
    for lv in map(str, rec["levels"]):
        b0 = sum(s["levels"][lv]["0.0"]["bytes"] for s in rec["scenes"])
        b1 = sum(s["levels"][lv][m]["bytes"] for s in rec["scenes"])
        d0 = sum(s["levels"][lv]["0.0"]["sq_error"] for s in rec["scenes"])
        d1 = sum(s["levels"][lv][m]["sq_error"] for s in rec["scenes"])
        lines.append(f"| {lv} | {100 * (b1 / b0 - 1):+.2f}% | {100 * (d1 / d0 - 1):+.2f}% |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "coef_rdoq", run, markdown,
                       [("--levels", {"nargs": "+", "type": int, "default": list(range(2, 12))}),
                        ("--multipliers", {"nargs": "+", "type": float, "default": [0.75, 1.0, 1.25]})])


if __name__ == "__main__":
    sys.exit(main())
