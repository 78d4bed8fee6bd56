"""Bits of the residual coded as pixels against CDF 9/7 wavelet subbands, on the same tiles and steps.

For each scene (a 256 x 256 crop at most) and each residual step: the residual of latent level ``--base``
(the v2 coder: 32 x 32 pixel blocks) and the same residual as wavelet subbands (v3: 16 x 16 coefficient
blocks), both quantised without deadzone and costed with the shipped adaptive model's index choice
(``AdaptiveModel.choose``, payload + index bits); also the wavelet of the components with no learned base.
Rates include the base's latent bits; D is the mean squared error in normalised units.

    python benchmarks/experiments/residual_transform.py .dev/val/l8_elkton_b1234567.tif .dev/val/s2_t33nza_10m_b2348.tif \
        --out benchmarks/results/BUNDLE/residual_transform

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): at the same step the residual as
CDF 9/7 subbands needs far fewer bits than as pixel blocks (up to 47% on tiles with no learned base) at the same or
lower MSE: tile format v3 codes the residual as wavelet subbands, and residual-only tiles exist since.
Result: ``benchmarks/results/782c7ed21f22/residual_transform.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import write_results  # noqa: E402

STEPS = (0.035, 0.0125, 0.009, 0.005)


def measure(path: str, base: int, crop: int = 256) -> list[dict]:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import bitstream as bs, wavelet
    from cvae.edge.codec import residual
    from cvae.edge.io.raster import band_ranges, read_raster

    codec = Bundle.load().codec(mode_search="auto")
    ctx = codec.hybrid.residual_context(codec.levels - 1)
    r = read_raster(path)
    br = band_ranges(r.pixels, r.valid, r.nodata)
    c, h, w = r.pixels.shape
    y0, x0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    px, valid = r.pixels[:, y0:y0 + crop, x0:x0 + crop], r.valid[y0:y0 + crop, x0:x0 + crop]
    a = codec.analyze(px, valid, band_range=br)
    n = a.z.size

    def bits(arrays, kind):
        blocks, counts = residual.blocks_of(arrays, residual.block_size(kind))
        return float(codec.adaptive.choose(blocks, np.full(len(blocks), ctx, np.int32), counts=counts)[1].sum())

    rows = []
    for label, zr, latent_bits in (("base %d" % base, codec.hybrid.planner.reconstruction(a, base),
                                    codec.hybrid.planner.latent_part(a, base).bits), ("no base", np.zeros_like(a.z), 0.0)):
        res = a.z - zr
        if a.valid is not None:
            res[:, ~a.valid] = 0
        levels = wavelet.levels_for(*res.shape[1:])
        for step in STEPS:
            q = [np.round(res[k] / step).astype(np.int32) for k in range(res.shape[0])]
            d_pix = float(np.mean((res - np.stack(q) * step) ** 2))
            sub = [[np.round(s / step).astype(np.int32) for s in wavelet.forward(res[k], levels)] for k in range(res.shape[0])]
            rec = np.stack([wavelet.inverse([s.astype(np.float32) for s in sb], levels) * step for sb in sub])
            rows.append({"scene": Path(path).stem, "base": label, "step": step,
                         "pixels_bpp": (bits(q, bs.RESIDUAL_PIXELS) + latent_bits) / n, "pixels_mse": d_pix,
                         "wavelet_bpp": (bits([s for sb in sub for s in sb], bs.RESIDUAL_WAVELET) + latent_bits) / n,
                         "wavelet_mse": float(np.mean((res - rec) ** 2))})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", nargs="+")
    p.add_argument("--base", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    rows = [row for s in a.scenes for row in measure(s, a.base)]
    lines = ["# Residual as pixels vs CDF 9/7 subbands", "", f"`python benchmarks/experiments/residual_transform.py "
             f"{' '.join(a.scenes)} --base {a.base}`", "",
             "| scene | base | step | pixels bpp | pixels MSE | wavelet bpp | wavelet MSE | rate change |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['scene']} | {r['base']} | {r['step']} | {r['pixels_bpp']:.3f} | {r['pixels_mse']:.2e} | "
                     f"{r['wavelet_bpp']:.3f} | {r['wavelet_mse']:.2e} | {r['wavelet_bpp'] / r['pixels_bpp'] - 1:+.1%} |")
    lines += ["", "Same step, same quantiser: the wavelet rows have the same or lower MSE, so the rate change "
              "understates the gain at equal distortion."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        write_results(a.out.parent, a.out.name, rows, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
