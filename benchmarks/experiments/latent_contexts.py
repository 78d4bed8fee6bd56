"""Would contexts pay for the latents? Ideal code lengths of the same quantised latents under today's model and
under backward-adaptive context models (issue 17: "also try contexts for the latents").

Today (tile format v6) each latent channel of each coded component is one group with one transmitted scale index
(a Laplacian table of the bank, or the channel's factorised table): ``Part.bits`` of the mode search, indexes
included. The alternatives code each symbol with adaptive counts (start: the channel's factorised table as a
prior of weight ``PRIOR`` samples, so a model starts where today's does without indexes; then +1 per coded symbol,
Krichevsky-Trofimov style) chosen by a context, all per tile, decoder-computable:

- ``channel``: the channel alone (adaptation, no neighbours);
- ``spatial``: channel x the bucket of ``|W| + |N|`` (causal neighbours in the same channel);
- ``spatial+channel``: channel x the bucket of ``|W| + |N| + |co-located symbol of the previous channel|``.

Symbols beyond +-``SPAN`` are clipped into an escape bin charged the same as today's escape (``2 g + 1`` bits
plus the bin) so that both sides count the same values. Ideal lengths (no coder overhead on either side).

    python benchmarks/experiments/latent_contexts.py .dev/val/*.tif --levels 0 1

Writes ``latent_contexts.json`` and ``latent_contexts.md``.

**Conclusion** (decided; a one-off experiment, not rerun by reproduce_readme.sh): backward-adaptive contexts for the
latents cost a median +15% ideal bits at levels 0 and 1 against today's per-channel transmitted scale indexes
(spatial contexts gain 2-5 points over adaptation alone, the previous channel nothing): not adopted; the latents
keep their indexes.
Result: ``benchmarks/results/782c7ed21f22/latent_contexts.md``.
"""
from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402

SPAN = 24           # symbols -SPAN..SPAN have their own bin; beyond, one escape bin per side
PRIOR = 32.0        # weight of the factorised table's probabilities in the starting counts
BUCKETS = (0, 1, 2, 3, 5, 8, 13)  # |W| + |N| (+ |previous channel|): context = number of edges <= the sum


def _escape_bits(v: np.ndarray) -> np.ndarray:
    """Extra bits of today's escape for values beyond +-SPAN (gamma code of the overshoot, docs/range_coder.md)."""
    z = np.maximum(np.abs(v) - SPAN, 0)
    return np.where(z > 0, 2 * np.floor(np.log2(z + 1)) + 1, 0)


def adaptive_bits(sym: np.ndarray, prior: np.ndarray, ctx: np.ndarray) -> float:
    """Ideal bits of ``sym: int[N]`` in coding order, each with the adaptive counts of its context ``ctx: int[N]``
    (rows of ``prior: float[K, 2*SPAN+3]`` start each context; ``ctx // n_buckets`` is the prior row)."""
    bins = np.clip(sym, -SPAN - 1, SPAN + 1) + SPAN + 1
    counts: dict[int, np.ndarray] = {}
    nb = len(BUCKETS) + 1
    total = 0.0
    for s, c in zip(bins.tolist(), ctx.tolist()):
        row = counts.get(c)
        if row is None:
            row = counts[c] = prior[c // nb] * PRIOR + 0.02
        total -= np.log2(row[s] / row.sum())
        row[s] += 1.0
    return total + float(_escape_bits(sym).sum())


def bucket(v: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.asarray(BUCKETS), v, side="right")


def tile_bits(codec, a, lat: int) -> dict | None:
    k = codec.hybrid
    part = k.planner.latent_part(a, lat)
    if not part.present.any():
        return None
    sym = k.symbols(a, lat)[part.present]                     # [P, M, h, w]
    p, m, hl, wl = sym.shape
    t = codec.latents.tables[lat]
    prior = np.zeros((m, 2 * SPAN + 3))
    for ch in range(m):  # the factorised table's probabilities over the bins (escape bins get the tails)
        pmf = np.diff(t.cdf[ch, :t.cdf_length[ch]].astype(np.float64))
        vals = np.arange(len(pmf)) + t.offset[ch]
        b = np.clip(vals, -SPAN - 1, SPAN + 1) + SPAN + 1
        np.add.at(prior[ch], b, pmf / pmf.sum())
    padded = np.pad(np.abs(sym), ((0, 0), (0, 0), (1, 0), (1, 0)))
    west, north = padded[:, :, 1:, :-1], padded[:, :, :-1, 1:]
    prev = np.concatenate([np.zeros_like(sym[:, :1]), np.abs(sym[:, :-1])], axis=1)
    chan = np.broadcast_to(np.arange(m)[None, :, None, None], sym.shape)
    nb = len(BUCKETS) + 1
    flat = sym.reshape(-1)
    out = {"today": part.bits, "symbols": int(flat.size)}
    out["channel"] = adaptive_bits(flat, prior, (chan * nb).reshape(-1))
    out["spatial"] = adaptive_bits(flat, prior, (chan * nb + bucket(west + north)).reshape(-1))
    out["spatial+channel"] = adaptive_bits(flat, prior, (chan * nb + bucket(west + north + prev)).reshape(-1))
    return out


def run(scenes: list[Path], levels: list[int], max_tiles: int, log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.io.raster import band_ranges, read_raster
    from cvae.edge.io.tiling import tile_grid

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", threads=1, mode_search="auto")
    rows = []
    for path in scenes:
        r = read_raster(path)
        br = band_ranges(r.pixels, r.valid, r.nodata)
        for w in list(tile_grid(r.pixels.shape[1], r.pixels.shape[2], 256))[:max_tiles]:
            a = codec.analyze(r.pixels[:, w.slices[0], w.slices[1]], r.valid[w.slices], band_range=br)
            for level in levels:
                got = tile_bits(codec, a, codec.latent_level(level))
                if got is not None:
                    rows.append({"scene": path.stem, "level": level, **got})
        log(f"{path.stem}: {sum(1 for x in rows if x['scene'] == path.stem)} tile-levels")
    summary = {}
    for level in levels:
        per_scene = {}
        for s in sorted({x["scene"] for x in rows}):
            sel = [x for x in rows if x["scene"] == s and x["level"] == level]
            if sel:
                today = sum(x["today"] for x in sel)
                per_scene[s] = {k: 100 * (sum(x[k] for x in sel) / today - 1)
                                for k in ("channel", "spatial", "spatial+channel")}
        summary[str(level)] = {"per_scene": per_scene, "median": {
            k: statistics.median(v[k] for v in per_scene.values()) for k in ("channel", "spatial", "spatial+channel")}}
    return {"date": utc_now(), "machine": machine_info(), "bundle": bundle.model_id[:12], "span": SPAN,
            "prior_weight": PRIOR, "buckets": BUCKETS, "max_tiles": max_tiles, "tiles": rows, "summary": summary}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# Contexts for the latents: ideal bits against today's model (bundle {rec['bundle']}, "
             f"{rec['date'][:10]})", "", f"`{command}`", "",
             "Percent change of the latents' ideal code length (indexes included on today's side) with backward-"
             "adaptive context models started from the factorised tables (weight "
             f"{rec['prior_weight']:g} samples); negative: fewer bits. At most {rec['max_tiles']} tiles per scene.", ""]
    for level, s in rec["summary"].items():
        lines += [f"## Level {level}", "", "| scene | channel only | spatial | spatial + previous channel |",
                  "|---|---|---|---|"]
        for scene, v in s["per_scene"].items():
            lines.append(f"| {scene} | {v['channel']:+.1f}% | {v['spatial']:+.1f}% | {v['spatial+channel']:+.1f}% |")
        m = s["median"]
        lines += [f"| **median** | {m['channel']:+.1f}% | {m['spatial']:+.1f}% | {m['spatial+channel']:+.1f}% |", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "latent_contexts", run, markdown, [("--levels", {"nargs": "+", "type": int, "default": [0, 1]}),
                        ("--max-tiles", {"type": int, "default": 6})])

if __name__ == "__main__":
    sys.exit(main())
