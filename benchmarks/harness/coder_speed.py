"""Speed of our rANS coder (cvae.edge.codec.rangecoder) against constriction, same data, same run.

Setup (the fairest match we found): C categorical tables of width L (L - 2 values plus the escape
symbol) quantized at ``precision`` bits, discrete-Laplace shaped with scales from 0.5 to 8;
N symbols drawn from their own table, tables assigned to symbols at random (as channels
interleave in a latent). Every value lies inside its table, so no escapes are coded.

- ours: one ``encode``/``decode`` call over all N symbols, input validation included.
- constriction: ``stack.AnsCoder`` (rANS, like ours) and ``queue.RangeEncoder``, each with one
  ``stream.model.Categorical`` per table built from the same quantized probabilities. constriction
  takes one model per call, so its symbols are grouped by table beforehand (not timed: this
  favours constriction) and coded with one call per table; model construction is timed.

Reports medians over ``--repeats`` runs of encode/decode Msymbols/s, the ratio ours/theirs and
bits/symbol next to the ideal information content; writes JSON with machine info.

    python benchmarks/harness/coder_speed.py [--n 1000000] [--tables 8] [--width 64] [--repeats 7]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sysconfig
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from cvae.edge.codec import rangecoder
from cvae.edge.io.files import write_atomic

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "no-bundle" / "coder_speed.json"  # no model


@dataclass(frozen=True)
class Config:
    n: int = 1_000_000
    tables: int = 8
    width: int = 64
    precision: int = 16
    repeats: int = 7
    seed: int = 0


@dataclass(frozen=True)
class Problem:
    """values: table symbols int32[N] in [0, L - 2); indexes int32[N]; cdfs int32[C, L]."""

    values: np.ndarray
    indexes: np.ndarray
    cdfs: np.ndarray
    lengths: np.ndarray
    offsets: np.ndarray
    ideal_bits: float


def make_problem(cfg: Config) -> Problem:
    rng = np.random.default_rng(cfg.seed)
    total = 1 << cfg.precision
    n_values = cfg.width - 2
    cdfs = np.zeros((cfg.tables, cfg.width), dtype=np.int32)
    for c, scale in enumerate(np.geomspace(0.5, 8.0, cfg.tables)):
        pmf = np.exp(-np.abs(np.arange(n_values + 1) - n_values // 2) / scale)
        pmf[-1] = 1e-4 * pmf.sum()  # escape
        freq = np.maximum(1, np.floor(pmf / pmf.sum() * total)).astype(np.int64)
        freq[np.argmax(freq)] += total - freq.sum()
        cdfs[c, 1:] = np.cumsum(freq)
    lengths = np.full(cfg.tables, cfg.width, dtype=np.int32)
    offsets = np.full(cfg.tables, -(n_values // 2), dtype=np.int32)
    indexes = rng.integers(0, cfg.tables, size=cfg.n).astype(np.int32)
    slots = rng.integers(0, total, size=cfg.n)
    k = np.empty(cfg.n, dtype=np.int32)
    for c in range(cfg.tables):
        sel = indexes == c
        k[sel] = np.searchsorted(cdfs[c], slots[sel], side="right") - 1
    k[k == n_values] = n_values // 2  # no escapes: constriction's categorical has no bypass
    freq = cdfs[indexes, k + 1] - cdfs[indexes, k]
    ideal = float(np.sum(cfg.precision - np.log2(freq)))
    return Problem(k, indexes, cdfs, lengths, offsets, ideal)


def _median_seconds(fn: Callable[[], object], repeats: int) -> tuple[float, list[float], object]:
    result = fn()  # warm-up, and the result for checking
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, result


def bench_ours(p: Problem, cfg: Config) -> dict:
    symbols = (p.values + p.offsets[p.indexes]).astype(np.int32)
    args = (p.indexes, p.cdfs, p.lengths, p.offsets, cfg.precision)
    t_enc, enc_times, data = _median_seconds(lambda: rangecoder.encode(symbols, *args), cfg.repeats)
    t_dec, dec_times, out = _median_seconds(lambda: rangecoder.decode(data, *args), cfg.repeats)
    np.testing.assert_array_equal(out, symbols)
    return _row("cvae rangecoder (rANS)", cfg, t_enc, t_dec, 8 * len(data), enc_times, dec_times)


def bench_constriction(p: Problem, cfg: Config, kind: str) -> dict:
    import constriction

    probs = np.diff(p.cdfs, axis=1).astype(np.float64) / (1 << cfg.precision)
    groups = [np.ascontiguousarray(p.values[p.indexes == c]) for c in range(cfg.tables)]

    def models() -> list:
        return [constriction.stream.model.Categorical(q, perfect=False) for q in probs]

    if kind == "ans":
        name = "constriction stack.AnsCoder + Categorical"

        def enc() -> np.ndarray:
            coder = constriction.stream.stack.AnsCoder()
            for g, m in zip(groups, models()):
                coder.encode_reverse(g, m)
            return coder.get_compressed()

        def dec(data: np.ndarray) -> list[np.ndarray]:
            coder = constriction.stream.stack.AnsCoder(data)  # a stack: last group comes out first
            return [coder.decode(m, len(g)) for g, m in reversed(list(zip(groups, models())))][::-1]
    else:
        name = "constriction queue.RangeEncoder + Categorical"

        def enc() -> np.ndarray:
            coder = constriction.stream.queue.RangeEncoder()
            for g, m in zip(groups, models()):
                coder.encode(g, m)
            return coder.get_compressed()

        def dec(data: np.ndarray) -> list[np.ndarray]:
            coder = constriction.stream.queue.RangeDecoder(data)
            return [coder.decode(m, len(g)) for g, m in zip(groups, models())]

    t_enc, enc_times, data = _median_seconds(enc, cfg.repeats)
    t_dec, dec_times, out = _median_seconds(lambda: dec(data), cfg.repeats)
    for g, o in zip(groups, out):
        np.testing.assert_array_equal(o, g)
    return _row(name, cfg, t_enc, t_dec, 32 * len(data), enc_times, dec_times)


def _row(
    name: str, cfg: Config, t_enc: float, t_dec: float, bits: int, enc_t: list, dec_t: list
) -> dict:
    return {
        "coder": name,
        "encode_msym_s": cfg.n / t_enc / 1e6,
        "decode_msym_s": cfg.n / t_dec / 1e6,
        "bits_per_symbol": bits / cfg.n,
        "encode_seconds": enc_t,
        "decode_seconds": dec_t,
    }


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "constriction", "cvae-satcomp"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu,
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "compiler": sysconfig.get_config_var("CC"),
        **{f"{k.replace('-', '_')}_version": v for k, v in versions.items()},
    }


def run_benchmark(cfg: Config) -> dict:
    problem = make_problem(cfg)
    ours = bench_ours(problem, cfg)
    rows = [ours] + [bench_constriction(problem, cfg, kind) for kind in ("ans", "range")]
    for row in rows[1:]:
        row["ours_over_this_encode"] = ours["encode_msym_s"] / row["encode_msym_s"]
        row["ours_over_this_decode"] = ours["decode_msym_s"] / row["decode_msym_s"]
    return {
        "config": asdict(cfg),
        "ideal_bits_per_symbol": problem.ideal_bits / cfg.n,
        "results": rows,
        "machine": machine_info(),
        "command": shlex.join([sys.executable, *sys.argv]),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(payload, indent=2) + "\n").encode())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Config()
    parser.add_argument("--n", type=int, default=defaults.n, help="symbols per call")
    parser.add_argument("--tables", type=int, default=defaults.tables, help="table rows C")
    parser.add_argument("--width", type=int, default=defaults.width, help="CDF row length L")
    parser.add_argument("--precision", type=int, default=defaults.precision, choices=range(12, 17))
    parser.add_argument("--repeats", type=int, default=defaults.repeats, help="timed runs (>= 5)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON result path")
    args = parser.parse_args(argv)
    if args.repeats < 5:
        parser.error("--repeats: at least 5 for a meaningful median")
    if args.width < 3 or args.tables < 1 or args.n < 1:
        parser.error("--width must be >= 3, --tables and --n >= 1")
    cfg = Config(args.n, args.tables, args.width, args.precision, args.repeats, args.seed)
    report = run_benchmark(cfg)
    write_json(args.out, report)

    print(
        f"N={cfg.n} C={cfg.tables} L={cfg.width} precision={cfg.precision} "
        f"repeats={cfg.repeats}; ideal {report['ideal_bits_per_symbol']:.4f} bits/symbol; "
        f"cpu: {report['machine']['cpu_model']}"
    )
    header = ("coder", "enc Msym/s", "dec Msym/s", "bits/sym", "ours/this enc", "dec")
    print("{:48s} {:>11s} {:>11s} {:>9s} {:>14s} {:>6s}".format(*header))
    for row in report["results"]:
        ratio_e = row.get("ours_over_this_encode")
        ratio_d = row.get("ours_over_this_decode")
        ratios = f"{ratio_e:14.2f} {ratio_d:6.2f}" if ratio_e else ""
        print(f"{row['coder']:48s} {row['encode_msym_s']:11.1f} {row['decode_msym_s']:11.1f} "
              f"{row['bits_per_symbol']:9.4f} {ratios}")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
