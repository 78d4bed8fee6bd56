"""What caps our top quality: the quantiser or the transforms? Same tiles, with and without rounding.

For each scene and level, every tile (256 px, scene band range) is coded through the library API (the real
bytes, then decoded), and also reconstructed from the *unrounded* latents of the same level (analysis, gain,
inverse gain, synthesis: the codec with its quantiser switched off). The second PSNR is the ceiling the
transforms allow at that level: when the coded PSNR already sits at it, finer quantisation (a higher lambda,
another level) cannot raise the quality, only a transform that loses less can (wider latents, longer
training). PSNR per band in native units over valid pixels, peak = max - min of the original, band mean.

    python benchmarks/experiments/transform_ceiling.py [--scenes A.tif ...] [--bundle DIR] [--out benchmarks/results/BUNDLE]

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): on bundle 106dd0149567 the coded
top level sat a median 0.30 dB below its unrounded ceiling (same components): the quantiser was not what capped the
top quality, the transforms were, so higher quality came from the wavelet residual levels of the adaptive ladder,
not from finer quantisation of the latents.
Result: ``benchmarks/results/106dd0149567/transform_ceiling.md``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import validation_scene_parser  # noqa: E402


def scene_psnrs(codec, r, levels: int, tile: int = 256) -> list[dict]:
    """[{level, bpp, psnr (coded), psnr_unrounded}] for one raster ``r``."""
    from cvae.edge.codec.tile import to_dtype
    from cvae.edge.io.raster import band_ranges
    from cvae.edge.io.tiling import tile_grid
    from cvae.metrics import psnr_bands

    px, valid = r.pixels, r.valid
    band_range = band_ranges(px, valid, r.nodata)
    coded = [np.zeros_like(px) for _ in range(levels)]
    cont = [np.zeros_like(px) for _ in range(levels)]
    full = [np.zeros_like(px) for _ in range(levels)]
    nbytes = [0] * levels
    for w in tile_grid(px.shape[1], px.shape[2], tile):
        ys, xs = w.slices
        a = codec.analyze(px[:, ys, xs], valid[ys, xs], band_range=band_range)
        c, h, wd = a.shape
        for lv in range(levels):
            data = codec.encode(a, lv)
            nbytes[lv] += len(data)
            coded[lv][:, ys, xs] = codec.decompress(data).pixels
            lat = codec.latent_level(lv)
            y = a.y * codec.gain[lat][None, :, None, None] * codec.inv_gain[lat][None, :, None, None]
            z = codec.transforms.synthesis(np.ascontiguousarray(y, np.float32))[:, 0, :h, :wd]
            st = a.spectral
            full[lv][:, ys, xs] = to_dtype(st.inverse(z), px.dtype, st.lo, st.hi)
            z[~codec.coded_components(a, lv)] = 0.0  # as decoded: components too faint for the level are not sent
            cont[lv][:, ys, xs] = to_dtype(st.inverse(z), px.dtype, st.lo, st.hi)
    return [{"level": lv, "bpp": 8 * nbytes[lv] / px.size, "psnr": psnr_bands(px, coded[lv], valid),
             "psnr_unrounded": psnr_bands(px, cont[lv], valid),
             "psnr_unrounded_all_components": psnr_bands(px, full[lv], valid)} for lv in range(levels)]


def main(argv=None) -> int:
    from cvae.edge.bundle import Bundle
    from cvae.edge.io.raster import read_raster

    a = validation_scene_parser(__doc__).parse_args(argv)
    bundle = Bundle.load(a.bundle)
    codec = bundle.codec("onnxruntime", mode_search="auto")
    arch = bundle.manifest.get("architecture", {})
    rows = {}
    for path in a.scenes:
        r = read_raster(path)
        # the transforms' ceiling concerns the latent levels; residual levels (adaptive ladder) go past it
        latent_only = sum(1 for lv in range(codec.levels) if not codec.has_residual(lv))
        rows[Path(path).stem] = pts = scene_psnrs(codec, r, latent_only)
        print(f"{Path(path).stem:28s} top level {pts[-1]['psnr']:.2f} dB coded, "
              f"{pts[-1]['psnr_unrounded']:.2f} dB unrounded", file=sys.stderr)
    gap = [p["psnr_unrounded"] - p["psnr"] for pts in rows.values() for p in pts[-1:]]
    rec = {"bundle": bundle.model_id, "architecture": arch, "command": "python benchmarks/experiments/transform_ceiling.py",
           "definitions": {"psnr": "coded: the real bytes decoded",
                           "psnr_unrounded": "same level's gains and coded components, latents not rounded",
                           "psnr_unrounded_all_components": "as psnr_unrounded, with the components the level "
                                                            "skips (too faint) synthesised too: the transforms' "
                                                            "own loss"},
           "median_top_level_gap_db": float(np.median(gap)), "scenes": rows}
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "transform_ceiling.json").write_text(json.dumps(rec, indent=1))
    m, stride = arch.get("m"), arch.get("stride", 16)
    lines = [f"Transform ceiling (bundle `{bundle.model_id[:16]}`, `benchmarks/experiments/transform_ceiling.py`): PSNR dB of the "
             "coded tiles / of the same level with its latents left unrounded (the quantiser switched off, the "
             "same components coded) / unrounded with every component, also those the level skips as too faint "
             f"(the transforms' own loss). Latents: M = {m} per {stride}x{stride} block = {m / stride ** 2:.3f} "
             "per pixel and component.", "",
             "| scene | " + " | ".join(f"level {lv}" for lv in range(bundle.levels)) + " |",
             "|---" * (bundle.levels + 1) + "|"]
    for name, pts in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{p['psnr']:.2f} / {p['psnr_unrounded']:.2f} / "
                                                  f"{p['psnr_unrounded_all_components']:.2f}" for p in pts) + " |")
    lines += ["", f"Median gap at the top level, coded to unrounded (same components): "
                  f"{rec['median_top_level_gap_db']:.2f} dB."]
    (out / "transform_ceiling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
