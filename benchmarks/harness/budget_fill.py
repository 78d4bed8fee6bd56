"""How much of a byte budget the encoder spends: ``--scene-bytes`` and ``--tile-bytes`` (issue 22: within 1%).

Per scene, the scene's bytes at the lowest and the highest level bound the budgets tried: ``--scene-bytes`` at
``FRACTIONS`` of the way between them on a log scale (every packet byte counted, as the budget counts them), and
``--tile-bytes`` at the same fractions of its tiles' mean bytes at those two levels. Reported: the scene's bytes /
its budget; for the tile budget, each tile's coded bytes / the budget, over the tiles on a residual level (those can
take any step), and how many of them spend at least 99% of it (the others are at the finest step there is: tiles
mostly nodata; a tile whose latent-only or lowest level is over the budget has nothing cheaper, and the encoder warns).

    python benchmarks/harness/budget_fill.py .dev/val/*.tif

Writes ``budget_fill.json`` / ``.md``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402

#: where the budgets lie between the lowest and the highest level's bytes (log scale)
FRACTIONS = (0.25, 0.5, 0.75)


def run(scenes: list[Path]) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import EncodeOptions, encode_scene

    bundle = Bundle.load(None)
    codec = bundle.codec()
    rows = []
    for path in scenes:
        low = encode_scene(path, bundle, codec, EncodeOptions(level=0, scene_id=1))
        high = encode_scene(path, bundle, codec, EncodeOptions(level=bundle.levels - 1, scene_id=1))
        for f in FRACTIONS:
            budget = int(round(low.nbytes ** (1 - f) * high.nbytes ** f))
            enc = encode_scene(path, bundle, codec, EncodeOptions(scene_bytes=budget, scene_id=1))
            tile_budget = int(round(np.mean(low.tile_bytes) ** (1 - f) * np.mean(high.tile_bytes) ** f))
            tiles = encode_scene(path, bundle, codec, EncodeOptions(tile_bytes=tile_budget, scene_id=1))
            sizes, levels = np.array(tiles.tile_bytes, np.float64), np.array(tiles.levels)
            residual = codec.ladder.step[levels] > 0
            fill = sizes[residual] / tile_budget
            rows.append({"scene": path.stem, "fraction": f, "scene_budget": budget, "scene_bytes": enc.nbytes,
                         "scene_fill": enc.nbytes / budget, "tile_budget": tile_budget, "tiles": len(sizes),
                         "residual_tiles": int(residual.sum()),
                         "tile_fill_min": float(fill.min()) if fill.size else None,
                         "tile_fill_median": float(np.median(fill)) if fill.size else None,
                         "tile_fill_max": float(fill.max()) if fill.size else None,
                         "tiles_filled": int((fill >= 0.99).sum())})
            r = rows[-1]
            print(f"{path.stem} at {f}: scene {r['scene_fill']:.4f} of {budget} B; tiles "
                  f"{r['tile_fill_min'] if fill.size else float('nan'):.4f}..{r['tile_fill_max'] if fill.size else float('nan'):.4f}"
                  f" of {tile_budget} B ({r['residual_tiles']} of {r['tiles']} on residual levels)", flush=True)
    return {"date": utc_now(), "machine": machine_info(), "fractions": list(FRACTIONS), "rows": rows}


def markdown(rec: dict, command: str) -> str:
    rows = rec["rows"]
    scene = [r["scene_fill"] for r in rows]
    tmin = [r["tile_fill_min"] for r in rows if r["tile_fill_min"] is not None]
    tmax = [r["tile_fill_max"] for r in rows if r["tile_fill_max"] is not None]
    lines = [f"# Byte budgets spent (issue 22, {rec['date'][:10]})", "", "```bash", command, "```", "",
             "`--scene-bytes`: the scene's bytes (every packet byte) / its budget. `--tile-bytes`: each tile's coded "
             "bytes / the budget, over the tiles on a residual level. Budgets at "
             f"{', '.join(map(str, rec['fractions']))} of the way from the lowest to the highest level's bytes (log).",
             "", f"Scene budgets: {min(scene):.4f} to {max(scene):.4f} spent (median {np.median(scene):.4f}). "
                 f"Tile budgets: at most {max(tmax):.4f} per tile; {sum(r['tiles_filled'] for r in rows)} of "
                 f"{sum(r['residual_tiles'] for r in rows)} tiles on residual levels spend at least 99% (the least "
                 f"{min(tmin):.4f})." if tmin else "", "",
             "| scene | fraction | scene budget B | spent | tile budget B | tiles on residual levels | of them >= 99% "
             "spent | tile spent min / median / max |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = (f"{r['tile_fill_min']:.4f} / {r['tile_fill_median']:.4f} / {r['tile_fill_max']:.4f}"
             if r["tile_fill_min"] is not None else "-")
        lines.append(f"| {r['scene']} | {r['fraction']} | {r['scene_budget']} | {r['scene_fill']:.4f} | "
                     f"{r['tile_budget']} | {r['residual_tiles']} of {r['tiles']} | {r['tiles_filled']} | {t} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "budget_fill", run, markdown)


if __name__ == "__main__":
    sys.exit(main())
