"""What the encoder chooses per tile: learned latents only, latents + residual, or the residual alone.

For every scene and level, the share of tiles in each mode (``TileCodec.plan``, the choice the encoder codes)
and the share of the scene's estimated bits spent on tiles that use the learned network at all. It shows where
the learned transform carries the codec and where the wavelet residual does.

    python benchmarks/experiments/mode_share.py .dev/val --out benchmarks/results/BUNDLE/mode_share

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): from level 4 up most tiles of most
scenes code the residual alone and the network carries a small share of the bits (the T33NZA Sentinel-2 scenes and
Landsat-5 are the exceptions): what led to the no-network shortcut on the top levels (``shortcut_eval.py``) and the
wavelet-only counterfactual.
Result: ``benchmarks/results/782c7ed21f22/mode_share.md``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import write_results  # noqa: E402


def scene_modes(path: Path, codec) -> list[dict]:
    from cvae.edge.io.raster import band_ranges, read_raster
    from cvae.edge.io.tiling import tile_grid

    r = read_raster(path)
    br = band_ranges(r.pixels, r.valid, r.nodata)
    rows = [{"latents": 0, "latents+residual": 0, "residual only": 0, "bits": 0.0, "bits_learned": 0.0}
            for _ in range(codec.levels)]
    for w in tile_grid(r.pixels.shape[1], r.pixels.shape[2], 256):
        if not r.valid[w.slices].any():
            continue
        a = codec.analyze(r.pixels[:, w.slices[0], w.slices[1]], r.valid[w.slices], band_range=br)
        for level in range(codec.levels):
            p = codec.plan(a, level)
            rows[level][p.mode] += 1
            rows[level]["bits"] += p.bits
            rows[level]["bits_learned"] += p.bits if p.present.any() else 0.0
    return rows


def main(argv=None) -> int:
    from cvae.edge.bundle import Bundle

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scenes_dir", type=Path)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args(argv)
    bundle = Bundle.load()
    codec = bundle.codec(mode_search="auto")
    out = {p.stem: scene_modes(p, codec) for p in sorted(a.scenes_dir.glob("*.tif"))}
    lines = [f"# Tile modes per level: bundle `{bundle.model_id[:12]}`", "",
             f"`python benchmarks/experiments/mode_share.py {a.scenes_dir}`; each cell: tiles with learned latents only / "
             "latents + residual / residual alone (no learned base), and the share of the level's bits in tiles "
             "that use the network.", "",
             "| level | " + " | ".join(out) + " |", "|---|" + "---|" * len(out)]
    for level in range(codec.levels):
        cells = []
        for rows in out.values():
            r = rows[level]
            share = r["bits_learned"] / r["bits"] if r["bits"] else 0.0
            cells.append(f"{r['latents']}/{r['latents+residual']}/{r['residual only']} ({share:.0%})")
        lines.append(f"| {level} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        write_results(a.out.parent, a.out.name, out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
