"""``cvae-bench``: rate-distortion and speed of the codec against standard codecs, measured in one run.

    python benchmarks/bench.py rd --data DIR [--bundle DIR] [--levels all|0,2,4] [--out benchmarks/results/BUNDLE]
    python benchmarks/bench.py speed --data DIR [--repeats 5] [--level 3] [--backends all|onnxruntime,torch,tensorrt]
    python benchmarks/bench.py bounded --data DIR [--bounds 0,1,2,4,8] [--repeats 3]

**rd** (``harness/bench_rd.py``) codes every GeoTIFF under DIR at every rate level of the bundle and decodes it back on
the ground path, against JPEG 2000, JPEG XL, AVIF and WebP: PSNR, MSE, SSIM, MS-SSIM, spectral angle, BD-rates
against JPEG 2000 and the seed paper's 0.91 bpp table. Writes ``NAME.json``, ``NAME.md`` (with where we lose and
where we win, written from the numbers) and ``NAME_plots/*.png``.

**speed** (``harness/bench_speed.py``) times each stage of the encoder on real scenes per backend, the network's MACs
against a numpy matrix product, our range coder against constriction and our whole encode against OpenJPEG at
the same rate. Writes ``NAME.json`` and ``NAME.md``.

**bounded** (``harness/bounded_bench.py``) codes every GeoTIFF under DIR to each error bound E (``--max-error``; 0 =
lossless), every decode checked against its bound, against CCSDS 123.0-B-2 and JPEG-LS at the same E and JPEG 2000 and
JPEG XL lossless at E = 0: bits per sample and encode throughput (whole encode, one thread each; peers that cannot
run on the board are skipped with the reason). Writes ``NAME.json``, ``NAME.md`` and ``NAME_summary.txt``.

Shared helpers (machine info, scene listing, result files) are in ``common/bench_common.py``. This script stays at
the top of ``benchmarks/``: ``cvae-bench`` (``cvae/bench_entry.py``) runs it from there. Results go to
``benchmarks/results/<bundle id>/`` (the shipped bundle's unless ``--out`` says otherwise).
"""
from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT, find_scenes, machine_info, sibling, write_results  # noqa: E402

__all__ = ["build_parser", "main"]


def _command(argv: Sequence[str] | None) -> str:
    """The command line as run, for the record."""
    return shlex.join(["python", "benchmarks/bench.py", *(sys.argv[1:] if argv is None else argv)])


def _version() -> str:
    """Package version, the default bundle's model id and the runtime versions."""
    from cvae.edge.bundle import Bundle

    info = machine_info()["versions"]
    b = Bundle.load(verify=False)
    return (f"cvae-bench {info.get('cvae-satcomp')} model {b.model_id[:16]} onnxruntime {info.get('onnxruntime')} "
            f"imagecodecs {info.get('imagecodecs')}")


def build_parser() -> argparse.ArgumentParser:
    """``--version`` and the ``rd``, ``speed`` and ``bounded`` subcommands (speed's defaults are ``SpeedConfig``'s)."""
    p = argparse.ArgumentParser(prog="cvae-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="store_true", help="print versions and the default model id")
    sub = p.add_subparsers(dest="cmd")
    rd = sub.add_parser("rd", help="rate-distortion against JPEG 2000, JPEG XL, AVIF, WebP")
    sp = sub.add_parser("speed", help="time per encoder stage, per backend")
    bd = sub.add_parser("bounded", help="error-bounded and lossless coding against CCSDS 123.0-B-2, JPEG-LS, "
                                        "JPEG 2000 and JPEG XL")
    for s, default_name in ((rd, "rd"), (sp, "speed"), (bd, "bounded")):
        s.add_argument("--data", required=True, help="a folder of GeoTIFFs (searched recursively) or one file")
        s.add_argument("--bundle", help="model bundle folder (default: the shipped one)")
        s.add_argument("--out", default=str(DEFAULT_OUT), help="results folder")
        s.add_argument("--name", default=default_name, help="result file stem")
        s.add_argument("--limit", type=int, help="only the first N scenes (sorted by path)")
    rd.add_argument("--levels", default="all", help="'all' or comma-separated levels, e.g. 0,2,4")
    defaults = sibling("bench_speed").SpeedConfig(data="")
    sp.add_argument("--repeats", type=int, default=defaults.repeats, help="timed runs per scene (median)")
    sp.add_argument("--level", type=int, default=defaults.level, help="rate level")
    sp.add_argument("--tile-size", type=int, default=defaults.tile_size)
    sp.add_argument("--backends", default="all", help="all, or a comma list of onnxruntime,torch,tensorrt")
    sp.add_argument("--checkpoint", default=defaults.checkpoint, help="torch backend weights")
    sp.add_argument("--mode-search", choices=["auto", "full", "ladder", "residual"], default="auto",
                    help="residual levels: the encoder's mode search (TileCodec.searched_modes), the same on every "
                         "backend so they compare (cvae-encode's default is auto on a GPU, residual on a CPU)")
    sp.add_argument("--coder-n", type=int, default=defaults.coder_n, help="symbols for the range coder comparison")
    sp.add_argument("--matmul-n", type=int, default=defaults.matmul_n, help="matrix size for the GFLOP/s reference")
    sp.add_argument("--tegrastats", default=defaults.tegrastats, help=argparse.SUPPRESS)
    bd.add_argument("--bounds", help="comma-separated E, e.g. 0 or 0,1,2 (default: 0,1,2,4,8, and 16,32 on data of "
                                     "more than 8 bits)")
    bd.add_argument("--repeats", type=int, default=3, help="timed encodes per scene and E (median)")
    bd.add_argument("--rate-levels", type=int, default=3, help="top rate levels set beside the bounds (0: none)")
    return p


def _bounds(text: str | None) -> tuple[int, ...] | None:
    """``--bounds``' E values; a clear error for anything else."""
    if text is None:
        return None
    try:
        bounds = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise SystemExit(f"--bounds {text!r}: give comma-separated whole numbers of digital numbers, "
                         "e.g. 0,1,2") from None
    if any(e < 0 for e in bounds):
        raise SystemExit(f"--bounds {text!r}: an error bound is 0 (lossless) or more")
    return bounds


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run ``bench_rd.run_rd``, ``bench_speed.run_speed`` or ``bounded_bench.run``, write NAME.json and
    NAME.md (bounded: NAME_summary.txt too)."""
    bench_rd, bench_speed = sibling("bench_rd"), sibling("bench_speed")
    p = build_parser()
    a = p.parse_args(argv)
    if a.version:
        print(_version())
        return 0
    if a.cmd is None:
        p.error("give a subcommand: rd, speed or bounded")
    if a.limit is not None and a.limit < 1:
        p.error("--limit must be >= 1")
    if a.cmd == "rd":
        cfg = bench_rd.RdConfig(data=a.data, bundle=a.bundle, levels=a.levels, out=a.out, name=a.name,
                                limit=a.limit)
        rec = bench_rd.run_rd(cfg, _command(argv))
        md = bench_rd.rd_markdown(rec)
    elif a.cmd == "bounded":
        if a.repeats < 1 or a.rate_levels < 0:
            p.error("--repeats must be >= 1 and --rate-levels >= 0")
        bounded_bench = sibling("bounded_bench")
        rec = bounded_bench.run(find_scenes(a.data, a.limit), a.repeats, a.rate_levels, bounds=_bounds(a.bounds),
                                bundle_dir=a.bundle)
        rec["command"] = _command(argv)
        md = bounded_bench.markdown(rec, rec["command"])
        Path(a.out).mkdir(parents=True, exist_ok=True)
        (Path(a.out) / f"{a.name}_summary.txt").write_text(bounded_bench.summary(rec))
    else:
        if a.repeats < 1:
            p.error("--repeats must be >= 1 (5 or more for a meaningful median)")
        cfg = bench_speed.SpeedConfig(data=a.data, bundle=a.bundle, level=a.level, repeats=a.repeats,
                                      tile_size=a.tile_size, backends=a.backends, checkpoint=a.checkpoint,
                                      coder_n=a.coder_n, matmul_n=a.matmul_n, out=a.out, name=a.name,
                                      limit=a.limit, tegrastats=a.tegrastats, mode_search=a.mode_search)
        rec = bench_speed.run_speed(cfg, _command(argv))
        md = bench_speed.speed_markdown(rec)
    path = write_results(Path(a.out), a.name, rec, md)
    print(md)
    print(f"wrote {path} and {path.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
