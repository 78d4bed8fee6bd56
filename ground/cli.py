"""``cvae-decode PATH... -o OUTDIR``: packet files or folders in, one GeoTIFF per scene and a JSON report out."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from cvae.ground.geotiff import provenance_tags, write_geotiff

__all__ = ["main", "write_geotiff", "provenance_tags", "parse_creation_options", "open_streams", "decode_to_files"]


def output_name(name: str, scene_id: int, used: set[str]) -> str:
    """A safe, bounded (<= 120 characters) GeoTIFF file name, unique within the run: two scenes of the same
    name (``dup.tif`` and ``dup.tiff``) get their scene id appended instead of overwriting each other."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:100].lstrip(".") or str(scene_id)
    candidate = f"{stem}.tif"
    if candidate in used:
        candidate = f"{stem}_{scene_id:08x}.tif"
    used.add(candidate)
    return candidate


def parse_creation_options(items: Sequence[str] | None) -> dict:
    """``["KEY=VALUE", ...]`` -> {"key": "VALUE"} (GDAL creation options, as rasterio takes them)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--co {item!r}: expected KEY=VALUE, e.g. --co COMPRESS=ZSTD")
        out[key.strip().lower()] = value.strip()
    return out


def open_streams(files: Sequence[Path]) -> list:
    """The packet files as the decoder reads them (:class:`cvae.ground.decoder.PacketFile`): each read whole
    once to be indexed, then a packet at a time when its tile is decoded, so a pass costs its index, not its
    size."""
    from cvae.ground.decoder import PacketFile

    return [PacketFile(f) for f in files]


def decode_to_files(streams: Sequence, bundle, codec, out: Path, opener=None, fmt: str = "GTiff",
                    options: dict | None = None, overviews: bool = False, progress=None) -> dict:
    """Every scene in ``streams`` decoded into its own GeoTIFF in ``out``, one scene at a time and each tile by
    tile (memory: the packet index and one tile); returns the report (each decoded scene's entry has its
    ``output``). A scene that fails, on crafted metadata or anything else, costs only itself: its entry says why,
    one stderr line names it, no file is left for it, and the run goes on."""
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    from cvae.edge.errors import CodecError
    from cvae.ground.decoder import SceneSummary, collect, decode_tiles, scene_name, scene_problem, scene_report
    from cvae.ground.geotiff import GeoTiffWriter

    stats: dict = {}
    scenes = collect(streams, stats, opener)
    report: dict = {"stats": stats, "scenes": []}
    used: set[str] = set()
    for (apid, sid), parts in sorted(scenes.items()):
        entry: dict = {"scene_id": sid, "apid": apid}
        name = scene_name(parts)
        label = f"scene {str(name)[:80] if name is not None else '?'} (APID {apid}, id {sid})"
        problem = scene_problem(parts, bundle)
        if problem:
            report["scenes"].append({**entry, **({"name": str(name)[:200]} if name is not None else {}),
                                     "error": problem, "tiles_received": len(parts.segments)})
            if parts.meta is not None or parts.refused is not None:  # no metadata at all: a channel loss
                print(f"cvae-decode: {label} not decoded: {problem}", file=sys.stderr)
            continue
        meta = parts.meta
        assert meta is not None  # scene_problem: a scene without metadata is not decoded
        path = out / output_name(str(meta.name or sid), sid, used)
        summary = SceneSummary()
        try:
            with GeoTiffWriter(path, meta, fmt, options, overviews) as dst:
                tick = progress(meta.name or sid) if progress else None
                for tile in decode_tiles(parts, codec, summary, tick):
                    dst.write(tile)
                    if summary.lost:
                        dst.mark_lost()
                if summary.lost:
                    dst.mark_lost()
                dst.finish(provenance_tags(summary, bundle.model_id[:16]))
        except (CodecError, ValueError, OverflowError, MemoryError, OSError, RasterioError, CPLE_BaseError) as e:
            reason = f"decoding failed: {type(e).__name__}: {str(e)[:200]}"
            report["scenes"].append({**entry, "name": str(meta.name)[:200], "error": reason})
            print(f"cvae-decode: {label} not decoded: {reason}", file=sys.stderr)
            continue
        report["scenes"].append({**entry, **scene_report(parts, summary, bundle), "output": str(path)})
    return report


def main(argv: Sequence[str] | None = None) -> int:
    from cvae.edge.bundle import Bundle
    from cvae.edge.errors import CvaeError
    from rasterio._err import CPLE_BaseError  # GDAL's own errors, e.g. a creation option it refuses
    from rasterio.errors import RasterioError

    p = argparse.ArgumentParser(prog="cvae-decode", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="packet files or folders holding them")
    p.add_argument("-o", "--out", required=True, help="output folder for GeoTIFFs and report.json")
    p.add_argument("--bundle", help="model bundle folder (default: the shipped one)")
    from cvae.edge.runtime import BACKENDS

    # the ground decodes on ONNX Runtime (a TensorRT engine holds the encoder only)
    p.add_argument("--backend", default="auto", choices=[b for b in BACKENDS if b != "tensorrt"])
    from cvae.edge.cliutil import VersionAction

    p.add_argument("--version", action=VersionAction)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--of", default="GTiff", choices=["GTiff", "COG"],
                   help="output format: GTiff (tiled, DEFLATE) or COG (Cloud-Optimized GeoTIFF, with overviews)")
    p.add_argument("--co", action="append", metavar="KEY=VALUE",
                   help="GDAL creation option for the output (repeat), e.g. --co COMPRESS=ZSTD --co PREDICTOR=2")
    p.add_argument("--overviews", action="store_true", help="GTiff: add internal overviews (COG always has them)")
    p.add_argument("--key", action="append", help="key file SPI:HEX (repeat for several SPIs); with a key only "
                                                  "authenticated packets are accepted")
    a = p.parse_args(argv)
    try:
        options = parse_creation_options(a.co)
    except ValueError as e:
        print(f"cvae-decode: {e}", file=sys.stderr)
        return 2
    files: list[Path] = []
    for s in a.paths:
        path = Path(s)
        if path.is_dir():
            files += sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))
        elif path.is_file():
            files.append(path)
        else:
            print(f"cvae-decode: {path} does not exist", file=sys.stderr)
            return 2
    try:
        bundle = Bundle.load(a.bundle)
        opener = None
        if a.key:
            from cvae.edge.cliutil import load_key, warn_on_stderr
            from cvae.edge.codec.security import Opener

            opener = Opener(dict(load_key(k, warn_on_stderr("cvae-decode")) for k in a.key))
        streams = open_streams(files)
        from cvae.edge.cliutil import Progress

        progress = None if a.quiet else (lambda name: Progress(f"cvae-decode {name}"))
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        import cvae

        codec = bundle.codec(a.backend)
        try:
            report = decode_to_files(streams, bundle, codec, out, opener, fmt=a.of, options=options,
                                     overviews=a.overviews, progress=progress)
        finally:
            codec.close()
        report["inputs"] = [str(f) for f in files]
        report["tool_version"] = cvae.__version__
        report["model_id"] = bundle.model_id
        (out / "report.json").write_text(json.dumps(report, indent=1))
    except (CvaeError, OSError, RasterioError, CPLE_BaseError) as e:
        print(f"cvae-decode: {e}", file=sys.stderr)
        return 2
    for s in report["scenes"]:
        print(json.dumps(s))
    decoded = [s for s in report["scenes"] if "output" in s]
    hint = nothing_decodable_hint(report.get("stats", {}), bool(a.key))
    if decoded and hint:  # some scenes decoded, but packets were left aside: say so
        print(f"cvae-decode: warning: {hint}", file=sys.stderr)
    if not decoded:
        print(f"cvae-decode: {nothing_decoded_reason(report, files, bool(a.key))}", file=sys.stderr)
        return 1
    return 0


def nothing_decodable_hint(stats: dict, with_key: bool) -> str | None:
    """Why no scene came out, from the collection counters, or None when they do not tell."""
    if stats.get("secured_without_key"):
        return (f"{stats['secured_without_key']} packets are sealed (AES-GCM) and no key was given; "
                "pass --key SPI:KEYFILE")
    if stats.get("authentication_failures"):
        return (f"{stats['authentication_failures']} sealed packets failed authentication: wrong key, or "
                "damaged packets; pass the key they were sealed with")
    if with_key and stats.get("clear_refused"):
        return (f"{stats['clear_refused']} packets are not sealed and a key was given, so they are refused; "
                "decode without --key to accept plaintext packets")
    return None


def nothing_decoded_reason(report: dict, files: list, with_key: bool) -> str:
    """One line naming why no GeoTIFF was written, and the fix."""
    stats = report.get("stats", {})
    if not files:
        return "no packet files found in the given paths; point it at .pkt files or folders holding them"
    hint = nothing_decodable_hint(stats, with_key)
    if hint:
        return hint
    if not stats.get("packets"):
        return (f"no CCSDS packet found in {len(files)} file(s); these are not cvae-encode/cvae-edge packet "
                "files (a GeoTIFF is encoded with cvae-encode first)")
    errors = [s.get("error") for s in report.get("scenes", []) if s.get("error")]
    if errors:
        return f"no scene decoded: {errors[0]}"
    return "no scene decoded: no scene had both metadata and tiles; see report.json"


if __name__ == "__main__":
    sys.exit(main())
