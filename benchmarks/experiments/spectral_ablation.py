"""Does the per-tile spectral rotation (KLT) pay? Same network, same tiles, with and without it.

For each scene: every level, coded tile by tile (256 px, scene band range) through the library API, with
the rotation and without (bands coded independently after normalisation). Reports the BD-rate of
"with" against "without" (PSNR per band, native units, valid pixels; negative = the rotation saves bits).

    python benchmarks/experiments/spectral_ablation.py [--scenes A.tif ...] [--out benchmarks/results/BUNDLE]

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): on bundle 106dd0149567 the per-
tile KLT saved a median 45.4% of the bits against coding the normalised bands one by one: the rotation stays in
every tile format since.
Result: ``benchmarks/results/106dd0149567/spectral_ablation.md``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import validation_scene_parser  # noqa: E402


def code_scene(codec, r, level: int, rotate: bool, tile: int = 256) -> tuple[float, float]:
    from cvae.edge.io.tiling import tile_grid
    from cvae.metrics import psnr_bands

    from cvae.edge.io.raster import band_ranges

    px, valid = r.pixels, r.valid
    band_range = band_ranges(px, valid, r.nodata)
    rec = np.zeros_like(px)
    nbytes = 0
    for w in tile_grid(px.shape[1], px.shape[2], tile):
        ys, xs = w.slices
        a = codec.analyze(px[:, ys, xs], valid[ys, xs], band_range=band_range, rotate=rotate)
        data = codec.encode(a, level)
        nbytes += len(data)
        rec[:, ys, xs] = codec.decompress(data).pixels
    return 8 * nbytes / px.size, psnr_bands(px, rec, valid)


def main(argv=None) -> int:
    from cvae.edge.bundle import Bundle
    from cvae.edge.io.raster import read_raster
    from cvae.metrics import bd_rate

    a = validation_scene_parser(__doc__).parse_args(argv)
    bundle = Bundle.load(a.bundle)
    codec = bundle.codec("onnxruntime", mode_search="auto")
    rows = {}
    for path in a.scenes:
        r = read_raster(path)
        if r.pixels.shape[0] == 1:
            continue
        with_rot = [code_scene(codec, r, lv, True) for lv in range(bundle.levels)]
        without = [code_scene(codec, r, lv, False) for lv in range(bundle.levels)]
        rows[Path(path).stem] = {"bands": r.pixels.shape[0], "with_rotation": with_rot, "without": without,
                                 "bd_rate": bd_rate(without, with_rot, min_psnr=0.0)}
        print(f"{Path(path).stem:28s} bands {r.pixels.shape[0]}  BD-rate of KLT vs band-wise: "
              f"{rows[Path(path).stem]['bd_rate']:+.1f}%", file=sys.stderr)
    med = float(np.nanmedian([v["bd_rate"] for v in rows.values()]))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "spectral_ablation.json").write_text(json.dumps({"bundle": bundle.model_id, "median_bd_rate": med,
                                                             "scenes": rows}, indent=1))
    lines = [f"Spectral rotation ablation (bundle `{bundle.model_id[:16]}`, `benchmarks/experiments/spectral_ablation.py`): "
             "BD-rate of coding KLT components against coding the normalised bands one by one, same network.", "",
             "| scene | bands | BD-rate (PSNR) |", "|---|---|---|"]
    lines += [f"| {k} | {v['bands']} | {v['bd_rate']:+.1f}% |" for k, v in rows.items()]
    lines.append(f"| **median** | | **{med:+.1f}%** |")
    (out / "spectral_ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
