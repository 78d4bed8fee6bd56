"""How much better tile format v9's predictive coder could get, measured two ways (issue 25, round 5).

1. **Bits, real streams**: v9 against candidate changes (``prediction_ceiling.patch``'s compile-time switches,
   compiled into a private module as ``predictor_v9.py`` does):
   - ``mix``: the zero flag, the unary positions 0-17 and the bit below the leading one coded by a logistic
     mixture (after lpaq, as tile format v10's coefficient coder) of v9's own model and four more, chosen by finer
     contexts (the causal neighbours' prediction errors on a log scale with 2 fractional bits; the previous band's
     error there; how far v9's prediction lies from MED's; the W error alone);
   - ``mixapm``: the same with an adaptive probability map after the mixture;
   - ``rep4``, ``rep8`` (E > 0): CCSDS 123.0-B-2's sample representatives: the predictor reads each sample moved
     1/4 of the way toward its prediction (at most E), or 1/2 (at most E / 2), instead of the reconstruction;
     bytes only (the experiment's decoder returns the representatives);
   - ``band order``: the bands coded in a greedy order (the smoothest first, then each time the band most
     correlated with one already coded) instead of the file's.
   Tile bytes of the scene's 256 x 256 tiles, each decoded back within its bound (but rep4, rep8); encode speed of
   the tile coder relative to v9's (one thread, one run: indicative).
2. **Ceilings of prediction, E = 0**: v9's predictions taken from its decoder, then replaced by
   - ``tile LS``: the least-squares fit, per tile and band, of the sample on v9's prediction, 9 causal neighbours
     and 8 samples of the 3 previous bands (row y of band b - 1 and the rows above: what v9 may read);
   - ``block LS``: the same fit per 32 x 32 block, *in sample*, its 20 weights sent for free: an oracle of local
     linear adaptation (no backward-adaptive predictor can know these weights);
   - ``blend``: v9's prediction blended with 8 simple spatial and spectral predictors, each weighted by the inverse
     cube of its recent errors at W, N, NW, NE, WW (JPEG XL's weighted predictor, TMW).
   Each residual field is costed by one estimator: a discretised Laplace whose scale is fitted per bin of the
   causal neighbours' mean error (32 bins a doubling), the same for all; ratios are to v9's own estimate. Bands
   in the replication mode keep v9's residuals. The estimator is within 2% of v9's real bytes.

    python benchmarks/experiments/prediction_ceiling.py .dev/val/*.tif --bounds 0 2 8

Writes ``prediction_ceiling.json`` and ``prediction_ceiling.md``.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import ROOT, machine_info, scenes_main, sibling, utc_now  # noqa: E402

PATCH = Path(__file__).with_suffix(".patch")
#: the coder variants of part 1: compile-time switches of the patched _predictive.c, and whether they run at E = 0
#: (the sample representatives change nothing there)
VARIANTS = {"v9": ({}, True), "mix": ({"EXP_MIX": 1}, True), "mixapm": ({"EXP_MIX": 1, "EXP_APM": 1}, True),
            "rep4": ({"EXP_REP": 4}, False), "rep8": ({"EXP_REP": 8, "EXP_REP_LIM": 2}, False)}
NO_VALUE = np.iinfo(np.int64).min


def build(name: str, flags: dict, where: Path):
    """``edge/codec/_predictive.c`` with the patch applied, compiled with ``flags`` (and EXP_DUMP)."""
    src = where / name / "_predictive.c"
    src.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "edge" / "codec" / "_predictive.c", src)
    subprocess.run(["patch", "-s", str(src), str(PATCH)], check=True)
    so = src.with_name("_predictive" + sysconfig.get_config_var("EXT_SUFFIX"))
    cmd = ["cc", "-O3", "-std=c99", "-shared", "-fPIC", f"-I{sysconfig.get_paths()['include']}",
           f"-I{ROOT / 'edge' / 'codec'}", "-DEXP_DUMP=1", *[f"-D{k}={v}" for k, v in flags.items()], str(src),
           "-o", str(so)]
    subprocess.run(cmd, check=True)
    spec = importlib.util.spec_from_file_location("cvae.edge.codec._predictive", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def estimate_bits(e: np.ndarray, m: np.ndarray) -> float:
    """Bits of residuals ``e[C, H, W]`` at ``m``: a two-sided geometric law per bin of the causal mean error."""
    a = np.abs(e).astype(np.float64)
    p = np.pad(a, ((0, 0), (1, 1), (2, 2)), mode="edge")
    s = (2 * p[:, 1:-1, 1:-3] + 2 * p[:, :-2, 2:-2] + p[:, :-2, 1:-3] + p[:, :-2, 3:-1] + p[:, 1:-1, :-4]) / 7
    b = np.clip(np.floor(4 * np.log2(s + 1)), 0, 80).astype(int)
    total = 0.0
    for k in np.unique(b[m]):
        ek = np.abs(e[m & (b == k)]).astype(np.float64)
        mu = ek.mean()
        th = (np.sqrt(1 + mu * mu) - 1) / mu if mu > 0 else 1e-12  # mean |e| = 2 th / (1 - th^2)
        pz = (1 - th) / (1 + th)
        total += float(-(np.log2(pz) * len(ek) + np.log2(th) * ek.sum()) if mu > 0 else 0.0)
    return total


def _shift(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` at (y - dy, x - dx), edges replicated."""
    h, w = a.shape
    return np.pad(a, 2, mode="edge")[2 - dy:2 - dy + h, 2 - dx:2 - dx + w]


def features(r: np.ndarray, p: np.ndarray, b: int) -> np.ndarray:
    """float64[H, W, F]: v9's prediction, 9 causal neighbours, 8 samples of the previous 3 bands, 1."""
    x = r[b].astype(np.float64)
    f = [p[b].astype(np.float64)] + [_shift(x, dy, dx) for dy, dx in
                                     ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0), (1, 2), (2, 1), (2, -1))]
    for k in (1, 2, 3):
        if b - k >= 0:
            q = r[b - k].astype(np.float64)
            f += [q] if k > 1 else [q] + [_shift(q, dy, dx) for dy, dx in ((0, 1), (0, -1), (1, 0), (1, 1), (1, -1))]
    return np.stack(f + [np.ones_like(x)], -1)


def block_ls(f: np.ndarray, y: np.ndarray, m: np.ndarray, fallback: np.ndarray, size: int = 32) -> np.ndarray:
    out = fallback.astype(np.float64).copy()
    for y0 in range(0, y.shape[0], size):
        for x0 in range(0, y.shape[1], size):
            sl = (slice(y0, y0 + size), slice(x0, x0 + size))
            mm = m[sl]
            if mm.sum() >= 4 * f.shape[-1]:
                w = np.linalg.lstsq(f[sl][mm], y[sl][mm], rcond=None)[0]
                out[sl] = f[sl] @ w
    return np.rint(out)


def blend(r: np.ndarray, p: np.ndarray, b: int) -> np.ndarray:
    x = r[b].astype(np.float64)
    W, N, NW, NE = _shift(x, 0, 1), _shift(x, 1, 0), _shift(x, 1, 1), _shift(x, 1, -1)
    preds = [p[b].astype(np.float64), W + NE - N, N + W - NW, (N + W) / 2, W, N]
    if b > 0:
        q = r[b - 1].astype(np.float64)
        qw, qn = _shift(q, 0, 1), _shift(q, 1, 0)
        preds += [W + q - qw, N + q - qn, (N + W + 2 * q - qn - qw) / 2]
    num, den = np.zeros_like(x), np.zeros_like(x)
    for pr in preds:
        e = np.abs(x - pr)
        local = _shift(e, 0, 1) + _shift(e, 1, 0) + 0.5 * (_shift(e, 1, 1) + _shift(e, 1, -1) + _shift(e, 0, 2)) + 1
        num += pr / local ** 3
        den += 1 / local ** 3
    return np.rint(num / den)


def dumped(codec, mod, tiles):
    """Each tile coded lossless by ``mod`` (a module built with EXP_DUMP) and decoded back through it: ``(bytes,
    prediction, value, coded mask, band modes)``, the first three int64[C, H, W] (0 where nothing was coded)."""
    from cvae.edge.codec import bitstream, predictive

    keep, predictive._predictive = predictive._predictive, mod
    try:
        for t, va, fill in tiles:
            data = codec.compress_bounded(t, 0, va, fill)
            c, h, w = t.shape
            buf = np.full(2 * c * h * w, NO_VALUE, np.int64)
            mod.dump(buf)
            try:
                codec.decompress(data)
            finally:
                mod.dump(None)
            p, r = buf[:c * h * w].reshape(c, h, w), buf[c * h * w:].reshape(c, h, w)
            m = p != NO_VALUE
            yield data, np.where(m, p, 0), np.where(m, r, 0), m, bitstream.unpack_tile(data)[0].modes
    finally:
        predictive._predictive = keep


def ceilings(codec, mod, tiles) -> dict:
    """Part 2 on one scene's tiles: estimated bits of each residual field, and v9's real bytes."""
    out = dict.fromkeys(["v9", "tile_ls", "block_ls", "blend"], 0.0) | {"bytes": 0}
    for data, p, r, m, modes in dumped(codec, mod, tiles):
        out["bytes"] += len(data)
        for b in range(len(modes)):
            mb = m[b][None]
            own = estimate_bits((r[b] - p[b])[None], mb)
            out["v9"] += own
            if modes[b] or mb.sum() < 200:
                for k in ("tile_ls", "block_ls", "blend"):
                    out[k] += own
                continue
            f, y = features(r, p, b), r[b].astype(np.float64)
            wt = np.linalg.lstsq(f[m[b]], y[m[b]], rcond=None)[0]
            for k, pred in (("tile_ls", np.rint(f @ wt)), ("block_ls", block_ls(f, y, m[b], p[b])),
                            ("blend", blend(r, p, b))):
                out[k] += estimate_bits((y - pred).astype(np.int64)[None], mb)
    return out


def band_order(tiles) -> list[int]:
    """A greedy band order: first the band whose horizontal differences are smallest against its spread, then each
    time the band most correlated with one already chosen."""
    px = np.concatenate([t.reshape(t.shape[0], -1) for t, _, _ in tiles], axis=1).astype(np.float64)
    px = px[:, ::max(1, px.shape[1] // 200_000)]
    cc = np.abs(np.nan_to_num(np.corrcoef(px)))
    rough = [np.mean([np.var(np.diff(t[b].astype(np.float64), axis=1)) / max(np.var(t[b].astype(np.float64)), 1e-9)
                      for t, _, _ in tiles]) for b in range(px.shape[0])]
    order = [int(np.argmin(rough))]
    while len(order) < len(rough):
        rest = [b for b in range(len(rough)) if b not in order]
        order.append(max(rest, key=lambda b: max(cc[b, o] for o in order)))
    return order


def coded(codec, tiles, e: int, n: int, check: bool = True) -> tuple[float, float]:
    """(bits per sample, MSamples/s) of the tiles coded at bound e, each decoded back within it (check)."""
    t0 = time.perf_counter()
    datas = [codec.compress_bounded(t, e, va, f) for t, va, f in tiles]
    sec = time.perf_counter() - t0
    for (t, va, f), data in zip(tiles, datas) if check else ():
        d = codec.decompress(data).pixels.astype(np.int64)
        ok = np.broadcast_to(va, t.shape) & (~f if f is not None else True)
        if (np.abs(d - t.astype(np.int64))[ok] > e).any():
            raise AssertionError(f"bound {e} broken")
    return 8 * sum(map(len, datas)) / n, n / sec / 1e6


def run(scenes: list[Path], bounds: list[int], log=print) -> dict:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec import predictive

    tiles_of = sibling("predictor_modes")._tiles
    codec = Bundle.load(None).codec()
    keep = predictive._predictive
    rows, ceil = [], []
    with tempfile.TemporaryDirectory() as tmp:
        mods = {v: build(v, f, Path(tmp)) for v, (f, _) in VARIANTS.items()}
        for path in scenes:
            tiles, n = tiles_of(path)
            order = band_order(tiles) if tiles[0][0].shape[0] >= 3 else None
            permuted = [(np.ascontiguousarray(t[order]), va, None if f is None else np.ascontiguousarray(f[order]))
                        for t, va, f in tiles] if order else None
            for e in bounds:
                row = {"scene": path.stem, "E": e, "order": order}
                for v, mod in mods.items():
                    if e == 0 and not VARIANTS[v][1]:
                        continue
                    predictive._predictive = mod
                    try:  # the representatives' decoder returns them, not the reconstruction: bytes only
                        bps, ms = coded(codec, tiles, e, n, check=not v.startswith("rep"))
                    finally:
                        predictive._predictive = keep
                    row[v] = {"bits_per_sample": bps, "msamples_per_s": ms}
                if permuted:
                    row["ordered"] = {"bits_per_sample": coded(codec, permuted, e, n)[0]}
                rows.append(row)
                log(f"{path.stem} E={e}: " + ", ".join(
                    f"{v} {row[v]['bits_per_sample'] / row['v9']['bits_per_sample']:.4f}" for v in [*mods, "ordered"]
                    if v in row))
            if 0 in bounds:
                c = ceilings(codec, mods["v9"], tiles) | {"scene": path.stem, "samples": n}
                ceil.append(c)
                log(f"{path.stem} ceilings: estimate / bytes {c['v9'] / (8 * c['bytes']):.4f}, " + ", ".join(
                    f"{k} {c[k] / c['v9']:.4f}" for k in ("tile_ls", "block_ls", "blend")))
    return {"date": utc_now(), "machine": machine_info(), "bounds": bounds, "variants": VARIANTS, "rows": rows,
            "ceilings": ceil}


def markdown(rec: dict, command: str) -> str:
    vs = list(rec["variants"])

    def ratio(r, v):
        return r[v]["bits_per_sample"] / r["v9"]["bits_per_sample"] if v in r else None

    def cell(x, fmt="{:.4f}"):
        return fmt.format(x) if x is not None else "-"

    lines = [f"# How much the predictive coder could still gain (issue 25, {rec['date'][:10]})", "", "```bash",
             command, "```", "", __doc__.split("\n\n")[1].strip(), "",
             "## 1. Richer probability models, real streams", "",
             "Tile bytes / v9's (below 1: fewer), and the tile coder's encode speed / v9's (one thread).", "",
             "| scene | E | " + " | ".join(f"{v} bytes | {v} speed" for v in vs[1:3]) + " | " +
             " | ".join(f"{v} bytes" for v in vs[3:]) + " | band order bytes | order |",
             "|---|---|" + "---|---|" * 2 + "---|" * (len(vs) - 3) + "---|---|"]
    for r in rec["rows"]:
        lines.append(f"| {r['scene']} | {r['E']} | " + " | ".join(
            f"{cell(ratio(r, v))} | {cell(r[v]['msamples_per_s'] / r['v9']['msamples_per_s'], '{:.2f}x')}"
            for v in vs[1:3]) + " | " + " | ".join(cell(ratio(r, v)) for v in vs[3:]) +
            f" | {cell(ratio(r, 'ordered'))} | {r['order'] or '-'} |")
    for e in rec["bounds"]:
        rs = [r for r in rec["rows"] if r["E"] == e]

        def med(v):
            xs = [ratio(r, v) for r in rs if v in r]
            return f"**{np.median(xs):.4f}**" if xs else "-"
        lines.append(f"| **median** | {e} | " + " | ".join(
            f"{med(v)} | {np.median([r[v]['msamples_per_s'] / r['v9']['msamples_per_s'] for r in rs]):.2f}x"
            for v in vs[1:3]) + " | " + " | ".join(med(v) for v in vs[3:]) + f" | {med('ordered')} | |")
    if rec["ceilings"]:
        ks = ("tile_ls", "block_ls", "blend")
        lines += ["", "## 2. Ceilings of prediction, E = 0", "",
                  "Estimated bits / the estimate of v9's own residuals (below 1: fewer); v9's real bits per sample, "
                  "and the estimate / real bytes.", "",
                  "| scene | v9 bps | estimate / real | tile LS | block LS (oracle) | blend |",
                  "|---|---|---|---|---|---|"]
        for c in rec["ceilings"]:
            lines.append(f"| {c['scene']} | {8 * c['bytes'] / c['samples']:.4f} | {c['v9'] / (8 * c['bytes']):.4f} | " +
                         " | ".join(f"{c[k] / c['v9']:.4f}" for k in ks) + " |")
        lines.append("| **median** | | | " + " | ".join(
            f"**{np.median([c[k] / c['v9'] for c in rec['ceilings']]):.4f}**" for k in ks) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "prediction_ceiling", run, markdown,
                       [("--bounds", {"nargs": "+", "type": int, "default": [0]})])


if __name__ == "__main__":
    sys.exit(main())
