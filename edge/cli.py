"""``cvae-encode SCENE -o OUTDIR``: one raster in, one file of CCSDS space packets out."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

from cvae.edge.cliutil import Progress, VersionAction
from cvae.edge.io.files import write_atomic  # the project's one atomic writer (re-exported: an old public name)

__all__ = ["encode_main", "write_atomic"]


def budget_problem(enc, tile_bytes: int | None, scene_bytes: int | None) -> str | None:
    """A one-line description of the byte budget the encoded scene exceeds, or None when it fits."""
    if scene_bytes is not None and enc.nbytes > scene_bytes:
        return (f"--scene-bytes {scene_bytes} cannot be met: {enc.nbytes} bytes written at levels "
                f"{sorted(set(enc.levels))} (headers, metadata and masks need space too); raise the budget")
    if tile_bytes is not None and enc.tile_bytes and max(enc.tile_bytes) > tile_bytes:
        over = sum(b > tile_bytes for b in enc.tile_bytes)
        return (f"--tile-bytes {tile_bytes} cannot be met for {over} of {enc.tiles} tiles (largest "
                f"{max(enc.tile_bytes)} bytes, levels {sorted(set(enc.levels))}); raise the budget")
    return None


def _target(check, value, option: str):
    """``check(value, option)`` (quality.check_psnr / check_max_error: the daemon's checks), its TargetError as
    argparse's error, without the option's name (argparse names the option itself)."""
    from cvae.edge.quality import TargetError

    try:
        return check(value, option)
    except TargetError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix(f"{option}: ")) from None


def _max_error(text: str) -> tuple[int, ...]:
    """``--max-error``: ``E`` or ``E1,E2,...`` (whole digital numbers in 0 .. the v4 tile's limit)."""
    from cvae.edge.quality import check_max_error

    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole digital numbers, one or one per band, e.g. 0 or "
                                         "1,1,2,4") from None
    return _target(check_max_error, values, "--max-error")


def _psnr(text: str) -> float:
    """``--psnr``: a finite number of dB in the range the daemon accepts (quality.check_psnr)."""
    from cvae.edge.quality import check_psnr

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of dB, e.g. 45") from None
    return _target(check_psnr, value, "--psnr")


def encode_main(argv: Sequence[str] | None = None) -> int:
    from cvae.edge.bundle import Bundle
    from cvae.edge.codec.plan import MODE_SEARCHES
    from cvae.edge.encoder import DEFAULT_APID, EncodeOptions, encode_scene
    from cvae.edge.errors import CvaeError
    from cvae.edge.runtime import BACKENDS

    p = argparse.ArgumentParser(prog="cvae-encode", description=__doc__.splitlines()[0])
    p.add_argument("scene", nargs="*", help="GeoTIFF/JP2 scenes, or folders of them (*.tif, *.tiff, *.jp2)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("-o", "--out", help="output folder (created if missing)")
    p.add_argument("--bundle", help="model bundle folder (default: the shipped one)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--level", type=int, help="rate level, 0 = lowest rate")
    g.add_argument("--tile-bytes", type=int, help="byte budget per tile: the highest level that fits")
    g.add_argument("--scene-bytes", type=int, help="byte budget for the scene: levels allocated across tiles")
    g.add_argument("--max-error", type=_max_error,
                   help="error bound in digital numbers, one value or one per band (e.g. 0 = lossless, or 1,1,2,4): "
                        "every decoded sample within it of the original (tile format v9, no network)")
    g.add_argument("--psnr", type=_psnr, help="quality in dB: each tile at the cheapest rate level or error bound "
                                              "that reaches it (PSNR per band over valid pixels, peak = the band's "
                                              "range in the scene)")
    p.add_argument("--tile-size", type=int, default=None,
                   help="tile edge in pixels (multiple of 16); default: 512 on the levels that code latents only "
                        "(the lowest rates: fewer per-tile costs), 256 elsewhere")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                   help="tiles coded in parallel (default: the cores this process may use; the network then runs "
                        "one thread per tile); the packets are the same whatever the count")
    p.add_argument("--apid", type=lambda s: int(s, 0), default=DEFAULT_APID,
                   help=f"CCSDS APID (default 0x{DEFAULT_APID:X})")
    p.add_argument("--backend", default="auto", choices=BACKENDS)
    p.add_argument("--key", help="key file SPI:HEX: seal every packet with AES-256-GCM (docs/security.md)")
    p.add_argument("--max-scene-samples", type=int, default=None,
                   help="refuse scenes with more bands x height x width than this, from the header, before "
                        "reading (default 2,000,000,000; --scene-bytes, which reads whole scenes, stops at "
                        "400,000,000)")
    p.add_argument("--mode-search", choices=MODE_SEARCHES, default=None,
                   help="default: auto where both networks run on a GPU (TensorRT with cvae-export --target trt's two "
                        "engines, or ONNX Runtime on CUDA), residual on a CPU, "
                        "where they cost levels 2-3 about 4x their time for 0.1-0.2 point of BD-rate on multiband "
                        "Sentinel-2 and Landsat-5 scenes, nothing on most (benchmarks/results, network_budget.md). "
                        "auto codes the latent-only levels 0-1 as a coarse wavelet residual and the finest levels as "
                        "the residual alone, with no network, and tries the ladder's latent level on levels 2-3; "
                        "full tries every allowed latent level per tile (one synthesis each); ladder the ladder's "
                        "own everywhere (latents on levels 0-1); residual runs no network on any level")
    p.add_argument("--strict-budget", action="store_true",
                   help="fail (exit 3, nothing written) when --tile-bytes/--scene-bytes cannot be met even at level 0; "
                        "default: write the file and warn")
    p.add_argument("--version", action=VersionAction)  # a --bundle given before it: that model id
    a = p.parse_args(argv)
    try:
        bundle = Bundle.load(a.bundle)
        if not a.scene or not a.out:
            p.error("SCENE and -o OUTDIR are required")
        scenes = expand_scenes(a.scene)
        budgets = a.tile_bytes is not None or a.scene_bytes is not None or a.max_error is not None or \
            a.psnr is not None
        level = a.level if a.level is not None or budgets else bundle.levels // 2
        opts = EncodeOptions(level=level, tile_bytes=a.tile_bytes, scene_bytes=a.scene_bytes,
                             max_error=a.max_error, psnr=a.psnr, tile_size=a.tile_size, apid=a.apid,
                             threads=a.threads,
                             **({"max_samples": a.max_scene_samples} if a.max_scene_samples else {}))
        for flag, v in (("--tile-bytes", a.tile_bytes), ("--scene-bytes", a.scene_bytes)):
            if v is not None and v <= 0:
                raise ValueError(f"{flag} {v}: give a positive byte budget")
        if a.tile_size is not None and (a.tile_size <= 0 or a.tile_size % 16):
            raise ValueError(f"--tile-size {a.tile_size} is not a positive multiple of 16")
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        writer = None
        if a.key:
            from cvae.edge.cliutil import load_key, warn_on_stderr
            from cvae.edge.codec.packets import PacketWriter
            from cvae.edge.codec.security import Sealer

            writer = PacketWriter(opts.apid, sealer=Sealer(*load_key(a.key, warn_on_stderr("cvae-encode"))))
        if a.threads < 1:
            raise ValueError(f"--threads {a.threads}: give 1 or more")
        codec = bundle.codec(a.backend, mode_search=a.mode_search, threads=1 if a.threads > 1 else 0)
    except (CvaeError, ValueError, OSError) as e:
        print(f"cvae-encode: {e}", file=sys.stderr)
        return 2
    try:
        status, names = 0, set()
        for scene in scenes:
            try:
                name = Path(scene).stem
                if name in names:
                    raise ValueError(f"a second scene named {name!r} would overwrite {name}.pkt; rename one")
                names.add(name)
                target = out / f"{name}.pkt"
                result: dict = {}

                def encode_into(f, scene=scene, name=name, result=result):
                    # packets go to the temporary file as they are made: memory stays flat however big the output
                    enc = encode_scene(scene, bundle, codec, opts, writer=writer, sink=f.write,
                                       progress=None if a.quiet else Progress(f"cvae-encode {name}"))
                    result["enc"] = enc
                    unmet = budget_problem(enc, a.tile_bytes, a.scene_bytes)
                    if unmet and a.strict_budget:
                        raise _Unmet(unmet)  # the temporary file goes, the target is left as it was
                    result["unmet"] = unmet

                try:
                    write_atomic(target, encode_into)
                except _Unmet as e:
                    print(f"cvae-encode: {scene}: {e}; nothing written (drop --strict-budget to write it anyway)",
                          file=sys.stderr)
                    status = max(status, 3)
                    continue
                enc = result["enc"]
                if result["unmet"]:
                    print(f"cvae-encode: warning: {scene}: {result['unmet']}", file=sys.stderr)
            except (CvaeError, ValueError, OSError) as e:
                print(f"cvae-encode: {e}", file=sys.stderr)
                status = max(status, 2)
                continue
            quality = (f"max error {list(opts.max_error)}" if opts.max_error is not None
                       else f"levels {sorted(set(enc.levels))}")
            if opts.psnr is not None:
                quality = f"{opts.psnr} dB target: {enc.bounded} of {enc.tiles} tiles error-bounded (level 0), {quality}"
            if opts.max_error is None:  # the search in force: left out, it depends on where the networks run
                quality += f", mode search {codec.mode_search}"
            print(f"{target}: {enc.npackets} packets, {enc.nbytes} bytes, {enc.tiles} tiles, {quality}")
    finally:
        codec.close()  # network sessions, TensorRT contexts and CUDA memory
    return status


class _Unmet(Exception):
    """A budget --strict-budget refuses: raised inside the atomic write so that nothing is written."""


_SCENE_SUFFIXES = (".tif", ".tiff", ".jp2", ".gtif")


def expand_scenes(args: Sequence[str]) -> list[str]:
    """Scene files as given, folders replaced by the scenes they hold (sorted); a missing path is an error."""
    out = []
    for s in args:
        p = Path(s)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.is_file() and f.suffix.lower() in _SCENE_SUFFIXES)
            if not found:
                raise ValueError(f"{p} holds no scene (*.tif, *.tiff, *.jp2, *.gtif)")
            out += found
        elif p.exists():
            out.append(str(p))
        else:
            raise ValueError(f"{p} does not exist")
    return out


if __name__ == "__main__":
    sys.exit(encode_main())
