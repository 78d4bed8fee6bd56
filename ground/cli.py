"""``cvae-decode PATH... -o OUTDIR``: packet files or folders in, one GeoTIFF per scene and a JSON report out."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from cvae.edge.io.files import replacing

__all__ = ["main", "write_geotiff", "parse_creation_options"]


def output_name(name: str, scene_id: int, used: set[str]) -> str:
    """A safe, bounded (<= 120 characters) GeoTIFF file name, unique within the run: two scenes of the same
    name (``dup.tif`` and ``dup.tiff``) get their scene id appended instead of overwriting each other."""
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:100].lstrip(".") or str(scene_id)
    candidate = f"{stem}.tif"
    if candidate in used:
        candidate = f"{stem}_{scene_id:08x}.tif"
    used.add(candidate)
    return candidate


def provenance_tags(scene, model_id: str) -> dict:
    """GeoTIFF metadata tags saying what made the file: tool version, model, levels per tile, losses."""
    import cvae

    levels: dict = {}
    for lv in scene.levels.values():
        levels[lv] = levels.get(lv, 0) + 1
    tags = {"CVAE_TOOL": f"cvae-decode {cvae.__version__}", "CVAE_MODEL_ID": model_id,
            "CVAE_LEVELS": ",".join(f"{lv}:{n}" for lv, n in sorted(levels.items())),
            "CVAE_TILES_OK": str(len(scene.tiles_ok)), "CVAE_TILES_LOST": str(len(scene.tiles_lost))}
    if scene.max_error is not None:  # error-bounded tiles: the bound per band, in digital numbers
        tags["CVAE_MAX_ERROR"] = ",".join(str(int(e)) for e in scene.max_error)
        tags["CVAE_BOUNDED_TILES"] = str(scene.bounded_tiles)
    return tags


def _restore_descriptive(dst, meta: dict) -> None:
    """Band descriptions, colour interpretation and tags from the metadata packet; malformed entries are skipped
    (the metadata is CRC-checked but could be crafted), never fatal."""
    from rasterio.enums import ColorInterp

    desc = meta.get("descriptions")
    if isinstance(desc, list) and len(desc) == dst.count:
        for i, d in enumerate(desc, 1):
            if isinstance(d, str) and d:
                dst.set_band_description(i, d[:1000])
    ci = meta.get("colorinterp")
    if isinstance(ci, list) and len(ci) == dst.count:
        try:
            dst.colorinterp = [ColorInterp[str(c)] for c in ci]
        except (KeyError, ValueError):
            pass
    tags = meta.get("tags")
    if isinstance(tags, dict):
        dst.update_tags(**{str(k)[:200]: str(v)[:2000] for k, v in list(tags.items())[:200]})


#: creation options the writer sets itself (the format's own choices); --co may override them
_GTIFF_DEFAULTS = {"compress": "deflate"}
_OVERVIEW_LEVELS = (2, 4, 8, 16, 32)


def parse_creation_options(items: Sequence[str] | None) -> dict:
    """``["KEY=VALUE", ...]`` -> {"key": "VALUE"} (GDAL creation options, as rasterio takes them)."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--co {item!r}: expected KEY=VALUE, e.g. --co COMPRESS=ZSTD")
        out[key.strip().lower()] = value.strip()
    return out


def write_geotiff(path: Path, scene, tags: dict | None = None, fmt: str = "GTiff", options: dict | None = None,
                  overviews: bool = False) -> None:
    """The decoded scene as ``fmt`` (``GTiff`` or ``COG``, a Cloud-Optimized GeoTIFF with its own overviews),
    with GDAL creation ``options``; ``overviews`` adds internal overviews to a GTiff. Written to a temp name,
    then renamed: a half-written output is never visible."""
    import rasterio
    import rasterio.shutil
    from rasterio.crs import CRS
    from rasterio.transform import Affine

    meta = scene.meta
    options = dict(options or {})
    profile = {"driver": "GTiff", "width": meta["width"], "height": meta["height"], "count": meta["bands"],
               "dtype": meta["dtype"], "nodata": meta.get("nodata"), **_GTIFF_DEFAULTS,
               "tiled": meta["width"] >= 256 and meta["height"] >= 256}
    if fmt == "GTiff":
        profile.update(options)
    if meta.get("crs"):
        profile["crs"] = CRS.from_user_input(meta["crs"])
    if meta.get("transform"):
        profile["transform"] = Affine(*meta["transform"])
    pixels = scene.pixels
    source = meta.get("source_dtype")
    if source and source != meta["dtype"]:  # coded as integers (lossless cast at the encoder): back to the input's
        pixels = pixels.astype(source)
        profile["dtype"] = source
    lost = bool(scene.tiles_lost)
    with replacing(path) as final, rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        # GDAL's COG driver only copies (tiles, overviews and layout are its own): a GTiff first, then the copy
        tmp = final if fmt != "COG" else final.with_name(final.name + ".gtiff")
        try:
            with rasterio.open(tmp, "w", **profile) as dst:
                dst.write(pixels)
                _restore_descriptive(dst, meta)
                if tags:
                    dst.update_tags(**tags)
                if lost:  # lost tiles are marked in the dataset mask (internal, so one file per scene)
                    dst.write_mask(scene.valid.astype("uint8") * 255)
                if overviews and fmt == "GTiff":
                    from rasterio.enums import Resampling

                    levels = [f for f in _OVERVIEW_LEVELS if min(meta["width"], meta["height"]) // f >= 64]
                    if levels:
                        dst.build_overviews(levels, Resampling.average)
            if fmt == "COG":
                rasterio.shutil.copy(tmp, final, driver="COG", **{"compress": "deflate", **options})
        finally:
            if tmp != final:
                tmp.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    from cvae.edge.bundle import Bundle
    from cvae.edge.errors import CvaeError
    from cvae.ground.decoder import decode_streams
    from rasterio._err import CPLE_BaseError  # GDAL's own errors, e.g. a creation option it refuses
    from rasterio.errors import RasterioError

    p = argparse.ArgumentParser(prog="cvae-decode", description=__doc__.splitlines()[0])
    p.add_argument("paths", nargs="+", help="packet files or folders holding them")
    p.add_argument("-o", "--out", required=True, help="output folder for GeoTIFFs and report.json")
    p.add_argument("--bundle", help="model bundle folder (default: the shipped one)")
    p.add_argument("--backend", default="auto", choices=["auto", "onnxruntime"])
    from cvae.edge.cli import VersionAction

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
            from cvae.edge.codec.security import Opener, load_key_file

            from cvae.edge.codec.security import key_file_exposure

            opener = Opener(dict(load_key_file(k) for k in a.key))
            for k in a.key:
                exposure = key_file_exposure(k)
                if exposure:
                    print(f"cvae-decode: warning: {exposure}", file=sys.stderr)
        streams = [f.read_bytes() for f in files]
        from cvae.edge.cli import Progress

        progress = None if a.quiet else (lambda name: Progress(f"cvae-decode {name}"))
        scenes, report = decode_streams(streams, bundle, bundle.codec(a.backend), opener, progress=progress)
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        import cvae

        entries = {(e["apid"], e["scene_id"]): e for e in report["scenes"]}
        used: set[str] = set()
        for s in scenes:
            name = output_name(str(s.meta.get("name") or s.scene_id), s.scene_id, used)
            write_geotiff(out / name, s, provenance_tags(s, bundle.model_id[:16]), fmt=a.of, options=options,
                          overviews=a.overviews)
            entries[(s.apid, s.scene_id)]["output"] = str(out / name)
        report["inputs"] = [str(f) for f in files]
        report["tool_version"] = cvae.__version__
        report["model_id"] = bundle.model_id
        (out / "report.json").write_text(json.dumps(report, indent=1))
    except (CvaeError, OSError, RasterioError, CPLE_BaseError) as e:
        print(f"cvae-decode: {e}", file=sys.stderr)
        return 2
    for s in report["scenes"]:
        print(json.dumps(s))
    hint = nothing_decodable_hint(report.get("stats", {}), bool(a.key))
    if scenes and hint:  # some scenes decoded, but packets were left aside: say so
        print(f"cvae-decode: warning: {hint}", file=sys.stderr)
    if not scenes:
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
