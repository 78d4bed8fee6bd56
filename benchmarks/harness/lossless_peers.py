"""Peers for the lossless and error-bounded (near-lossless) tile kind: CCSDS 123.0-B-2, JPEG-LS, JPEG 2000, JPEG XL.

Every peer has the same call::

    nbytes, decoded, encode_seconds = PEER(pixels, max_error)
    # pixels: native integer ndarray [C, H, W] (uint8, uint16 or int16); max_error: E >= 0 (0 = lossless)
    # nbytes: exact size of everything the ground needs (codestreams + side info such as offsets)
    # decoded: same shape and dtype as pixels; the caller asserts |pixels - decoded| <= E

=================  ===================================================================================
``ccsds123``       our C implementation of CCSDS 123.0-B-2 (benchmarks/peers/ccsds123, see its README):
                   P=3, full prediction, wide neighbour-oriented local sums, Omega=19, v_min=-1,
                   v_max=3, t_inc=2^6, absolute error limit E, sample-adaptive coder (K=5, U_max=18).
                   D = bit depth of the data (bits needed for the scene's min/max), signed for int16.
``jpegls``         CharLS per band, NEAR=E; int16 bands shifted by their minimum (4 bytes side info each).
``jpeg2000_lossless``  OpenJPEG reversible 5/3, E=0 only; the smaller of one codestream per band and one
                   multi-component codestream (RCT on for exactly 3 bands, off otherwise).
``jpegxl_lossless`` libjxl lossless (modular), effort 7 (libjxl's default), E=0 only; the smaller of one
                   grayscale stream per band and one multi-channel stream; bitspersample = data bit depth.
                   libjxl's lossy modes promise no maximum error, so there is no near-lossless JPEG XL entry.
``jpegxl_lossless_e9``  the same at effort 9: 3-6x slower, and not always smaller (larger on 7 of the 8
                   validation scenes, 2-4% smaller on resampled stacks: results/782c7ed21f22/bounded_jxl.md).
=================  ===================================================================================

Nodata: the peers code every sample, nodata included, and the pixels are left as they are; the CLI reports
bits per sample over all samples and, beside it, the fraction of valid samples (from the dataset mask).

CLI::

    python benchmarks/harness/lossless_peers.py SCENE.tif... --errors 0,1,2,4,8 --out results/lossless_peers.json

prints bits per sample and encode MSamples/s (median of ``--repeats`` runs, default 3) per peer and E, checks
every decode against its bound in the same run (exit status 3 and a message on the first violation) and writes
JSON (and a Markdown table beside it).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["CCSDS123_BINARY", "PEERS", "PeerBoundError", "PeerResult", "PeerUnavailableError", "ccsds123",
           "check_bound", "data_depth", "jpeg2000_lossless", "jpegls", "jpegxl_lossless", "jpegxl_lossless_e9", "main",
           "measure"]

HERE = Path(__file__).resolve().parent
CCSDS123_BINARY = HERE.parent / "peers" / "ccsds123" / "build" / "ccsds123"


class PeerResult(NamedTuple):
    nbytes: int
    decoded: np.ndarray
    encode_seconds: float


class PeerUnavailableError(RuntimeError):
    """A peer cannot run here (binary not built) or does not support the request (E > 0 for a lossless codec)."""


class PeerBoundError(AssertionError):
    """A peer's decode broke its own error bound: the benchmark is invalid."""


def data_depth(pixels: np.ndarray) -> int:
    """Bits needed for the data's range: unsigned -> bit length of the max (>= 2); signed -> two's complement."""
    lo, hi = int(pixels.min()), int(pixels.max())
    if pixels.dtype.kind == "i":
        return max(2, max(hi.bit_length(), (-lo - 1).bit_length() if lo < 0 else 0) + 1)
    return max(2, hi.bit_length())


def _check_input(pixels: np.ndarray, max_error: int) -> None:
    if pixels.ndim != 3 or pixels.dtype not in (np.uint8, np.uint16, np.int16):
        raise ValueError(f"pixels must be uint8/uint16/int16 [C, H, W], got {pixels.dtype}{list(pixels.shape)}")
    if max_error < 0:
        raise ValueError(f"max_error={max_error} must be >= 0")


def _lossless_only(name: str, max_error: int) -> None:
    if max_error != 0:
        raise PeerUnavailableError(f"{name} is lossless only (E=0); got E={max_error}")


def _to_unsigned(band: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(band as uint8/uint16, offset added, side-info bytes): int16 shifted by its minimum (4 bytes to send)."""
    if band.dtype.kind == "u":
        return band, 0, 0
    lo = int(band.min())
    shifted = band.astype(np.int32) - lo
    if int(shifted.max()) > 65535:
        raise ValueError("int16 band spans more than 16 bits after shifting")
    return shifted.astype(np.uint16), -lo, 4


# ---------------------------------------------------------------- CCSDS 123.0-B-2 (subprocess)

def ccsds123(pixels: np.ndarray, max_error: int, *, depth: int | None = None,
             binary: Path = CCSDS123_BINARY) -> PeerResult:
    """CCSDS 123.0-B-2 through the vendored C program; ``depth`` D defaults to :func:`data_depth`.

    encode_seconds is the wall time of the encoder process (start-up and reading/writing its files included).
    """
    _check_input(pixels, max_error)
    if not Path(binary).is_file():
        raise PeerUnavailableError(f"{binary} not built: run benchmarks/peers/ccsds123/build.sh")
    c, h, w = pixels.shape
    d = data_depth(pixels) if depth is None else depth
    signed = int(pixels.dtype.kind == "i")
    with tempfile.TemporaryDirectory(prefix="ccsds123_") as tmp:
        raw, enc, dec = (os.path.join(tmp, n) for n in ("in.raw", "out.c123", "dec.raw"))
        np.ascontiguousarray(pixels, dtype="<i4").tofile(raw)
        t0 = time.perf_counter()
        _run([str(binary), "enc", raw, enc, str(c), str(h), str(w), str(d), str(signed), str(max_error)])
        seconds = time.perf_counter() - t0
        _run([str(binary), "dec", enc, dec])
        nbytes = os.path.getsize(enc)
        decoded = np.fromfile(dec, dtype="<i4").reshape(c, h, w).astype(pixels.dtype)
    return PeerResult(nbytes, decoded, seconds)


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {proc.stderr.strip()}")


# ---------------------------------------------------------------- imagecodecs peers

def _imagecodecs():
    try:
        import imagecodecs
    except ImportError as e:
        raise PeerUnavailableError("the JPEG-LS/2000/XL peers need imagecodecs (pip install '.[bench]')") from e
    return imagecodecs


def jpegls(pixels: np.ndarray, max_error: int) -> PeerResult:
    """JPEG-LS (CharLS), one stream per band, NEAR = max_error."""
    _check_input(pixels, max_error)
    ic = _imagecodecs()
    nbytes, seconds, out = 0, 0.0, np.empty_like(pixels)
    for i, band in enumerate(pixels):
        u, offset, side = _to_unsigned(np.ascontiguousarray(band))
        t0 = time.perf_counter()
        stream = ic.jpegls_encode(u, level=max_error)
        seconds += time.perf_counter() - t0
        nbytes += len(stream) + side
        out[i] = (ic.jpegls_decode(stream).astype(np.int32) - offset).astype(pixels.dtype)
    return PeerResult(nbytes, out, seconds)


def jpeg2000_lossless(pixels: np.ndarray, max_error: int = 0) -> PeerResult:
    """JPEG 2000 reversible 5/3 (OpenJPEG): the smaller of per-band streams and one multi-component stream.

    encode_seconds is that of the variant kept.
    """
    _check_input(pixels, max_error)
    _lossless_only("jpeg2000_lossless", max_error)
    ic = _imagecodecs()

    def per_band() -> PeerResult:
        nbytes, seconds, out = 0, 0.0, np.empty_like(pixels)
        for i, band in enumerate(pixels):
            band = np.ascontiguousarray(band)
            t0 = time.perf_counter()
            stream = ic.jpeg2k_encode(band, level=0, reversible=True, numthreads=1)
            seconds += time.perf_counter() - t0
            nbytes += len(stream)
            out[i] = ic.jpeg2k_decode(stream)
        return PeerResult(nbytes, out, seconds)

    def multi() -> PeerResult:
        hwc = np.ascontiguousarray(np.moveaxis(pixels, 0, -1))
        t0 = time.perf_counter()
        stream = ic.jpeg2k_encode(hwc, level=0, reversible=True, mct=pixels.shape[0] == 3, numthreads=1)
        seconds = time.perf_counter() - t0
        return PeerResult(len(stream), np.moveaxis(ic.jpeg2k_decode(stream), -1, 0), seconds)

    variants = [per_band()] + ([multi()] if pixels.shape[0] > 1 else [])
    return min(variants, key=lambda r: r.nbytes)


def jpegxl_lossless(pixels: np.ndarray, max_error: int = 0, *, effort: int = 7) -> PeerResult:
    """JPEG XL lossless (libjxl, ``effort`` 1-9, 7 = libjxl's default): the smaller of per-band grayscale streams
    and one multi-channel stream; int16 shifted to uint16 by the global minimum (4 bytes side info).

    encode_seconds is that of the variant kept.
    """
    _check_input(pixels, max_error)
    _lossless_only("jpegxl_lossless", max_error)
    ic = _imagecodecs()
    offset, side = 0, 0
    data = pixels
    if pixels.dtype.kind == "i":
        lo = int(pixels.min())
        data, offset, side = (pixels.astype(np.int32) - lo).astype(np.uint16), -lo, 4
    bits = data_depth(data)

    def back(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.int32) - offset).astype(pixels.dtype)

    def per_band() -> PeerResult:
        nbytes, seconds, out = side, 0.0, np.empty_like(pixels)
        for i, band in enumerate(data):
            band = np.ascontiguousarray(band)
            t0 = time.perf_counter()
            stream = ic.jpegxl_encode(band, lossless=True, effort=effort, bitspersample=bits, numthreads=1)
            seconds += time.perf_counter() - t0
            nbytes += len(stream)
            out[i] = back(ic.jpegxl_decode(stream))
        return PeerResult(nbytes, out, seconds)

    def multi() -> PeerResult:
        hwc = np.ascontiguousarray(np.moveaxis(data, 0, -1))
        t0 = time.perf_counter()
        stream = ic.jpegxl_encode(hwc, lossless=True, effort=effort, bitspersample=bits, numthreads=1)
        seconds = time.perf_counter() - t0
        return PeerResult(len(stream) + side, back(np.moveaxis(ic.jpegxl_decode(stream), -1, 0)), seconds)

    variants = [per_band()] + ([multi()] if pixels.shape[0] > 1 else [])
    return min(variants, key=lambda r: r.nbytes)


def jpegxl_lossless_e9(pixels: np.ndarray, max_error: int = 0) -> PeerResult:
    """:func:`jpegxl_lossless` at effort 9."""
    return jpegxl_lossless(pixels, max_error, effort=9)


PEERS: dict[str, Callable[[np.ndarray, int], PeerResult]] = {
    "ccsds123": ccsds123, "jpegls": jpegls, "jpeg2000_lossless": jpeg2000_lossless,
    "jpegxl_lossless": jpegxl_lossless, "jpegxl_lossless_e9": jpegxl_lossless_e9,
}
LOSSLESS_ONLY = {"jpeg2000_lossless", "jpegxl_lossless", "jpegxl_lossless_e9"}


def check_bound(name: str, pixels: np.ndarray, decoded: np.ndarray, max_error: int) -> int:
    """Raise PeerBoundError unless decoded has pixels' shape and |pixels - decoded| <= max_error; returns max error."""
    if decoded.shape != pixels.shape:
        raise PeerBoundError(f"{name}: decoded shape {decoded.shape} != {pixels.shape}")
    err = int(np.abs(decoded.astype(np.int64) - pixels.astype(np.int64)).max(initial=0))
    if err > max_error:
        raise PeerBoundError(f"{name}: max |error| {err} > E={max_error}")
    return err


def measure(name: str, pixels: np.ndarray, max_error: int, repeats: int = 3) -> dict:
    """Run one peer ``repeats`` times: bytes (must be identical each run), bound check, median encode time."""
    peer = PEERS[name]
    sizes, times, max_err = set(), [], 0
    for _ in range(repeats):
        r = peer(pixels, max_error)
        max_err = check_bound(name, pixels, r.decoded, max_error)
        sizes.add(r.nbytes)
        times.append(r.encode_seconds)
    if len(sizes) != 1:
        raise RuntimeError(f"{name}: sizes differ between runs: {sorted(sizes)}")
    nbytes = sizes.pop()
    seconds = statistics.median(times)
    return {"nbytes": nbytes, "bits_per_sample": 8 * nbytes / pixels.size, "max_abs_error": max_err,
            "encode_seconds_median": seconds, "encode_msamples_per_s": pixels.size / seconds / 1e6,
            "repeats": repeats}


# ---------------------------------------------------------------- CLI

def _read_scene(path: Path) -> tuple[np.ndarray, float]:
    """(pixels [C,H,W] native dtype, valid fraction from the dataset mask)."""
    import rasterio

    with rasterio.open(path) as src:
        pixels = src.read()
        valid = float((src.dataset_mask() > 0).mean())
    return peer_pixels(pixels, path), valid


def peer_pixels(pixels: np.ndarray, path: Path | str = "pixels") -> np.ndarray:
    """Float samples as the integers the encoder codes (cvae.edge.io.raster.as_integers), signed ones as the int16
    the peers take; ValueError for what no 16-bit peer can code exactly (fractions, a signed range beyond int16)."""
    from cvae.edge.io.raster import as_integers

    if pixels.dtype.kind != "f":
        return pixels
    pixels = as_integers(pixels)
    if pixels.dtype.kind == "f":
        raise ValueError(f"{path}: float pixels that are not integers below 65536 in magnitude")
    if pixels.dtype == np.int32:
        if pixels.min() < -32768 or pixels.max() > 32767:
            raise ValueError(f"{path}: signed samples {pixels.min()}..{pixels.max()} beyond int16, the widest "
                             "signed type the peers take")
        pixels = pixels.astype(np.int16)
    return pixels


def run(scenes: Sequence[Path], errors: Sequence[int], peers: Sequence[str], repeats: int,
        log: Callable[[str], None] = print) -> dict:
    """Measure every peer at every E on every scene; raise PeerBoundError on any violation."""
    records = []
    for path in scenes:
        pixels, valid = _read_scene(Path(path))
        scene = {"scene": Path(path).name, "path": str(path), "shape": list(pixels.shape),
                 "dtype": str(pixels.dtype), "data_depth": data_depth(pixels), "valid_fraction": valid,
                 "results": []}
        for name in peers:
            for e in errors:
                if name in LOSSLESS_ONLY and e != 0:
                    continue
                try:
                    m = measure(name, pixels, e, repeats)
                except PeerUnavailableError as exc:
                    log(f"  skip {name}: {exc}")
                    break
                scene["results"].append({"peer": name, "max_error": e, **m})
                log(f"  {scene['scene']:<36} {name:<18} E={e:<3} {m['bits_per_sample']:7.3f} bps"
                    f"  {m['encode_msamples_per_s']:7.2f} MS/s  max|err|={m['max_abs_error']}")
        records.append(scene)
    return {"errors": list(errors), "peers": list(peers), "repeats": repeats, "scenes": records}


def markdown(record: dict) -> str:
    """One table per scene: rows = peers, columns = E; cells 'bps (MS/s)'."""
    errors = record["errors"]
    lines = ["# Lossless and error-bounded peers", "",
             "Bits per sample over all samples (nodata included: peers code every sample), and encode speed in "
             f"MSamples/s (median of {record['repeats']} runs, one CPU thread) in brackets. E = maximum absolute "
             "error per sample; every decode was checked against it in the same run. "
             "JPEG 2000 and JPEG XL: lossless only.", ""]
    for s in record["scenes"]:
        c, h, w = s["shape"]
        lines += [f"## {s['scene']}: {c}x{h}x{w} {s['dtype']}, data depth {s['data_depth']} bits, "
                  f"valid {100 * s['valid_fraction']:.1f}%", "",
                  "| peer | " + " | ".join(f"E={e}" for e in errors) + " |",
                  "|---|" + "---:|" * len(errors)]
        for name in record["peers"]:
            cells = []
            for e in errors:
                r = next((r for r in s["results"] if r["peer"] == name and r["max_error"] == e), None)
                cells.append("" if r is None else f"{r['bits_per_sample']:.3f} ({r['encode_msamples_per_s']:.1f})")
            if any(cells):
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", nargs="+", type=Path)
    p.add_argument("--errors", default="0,1,2,4,8", help="comma-separated maximum absolute errors E")
    p.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated subset of {','.join(PEERS)}")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, help="JSON path; a Markdown table is written beside it (.md)")
    args = p.parse_args(argv)
    errors = [int(e) for e in args.errors.split(",")]
    peers = args.peers.split(",")
    unknown = [n for n in peers if n not in PEERS]
    if unknown:
        p.error(f"--peers: unknown {unknown}; choose from {list(PEERS)}")
    try:
        record = run(args.scenes, errors, peers, args.repeats)
    except PeerBoundError as e:
        print(f"ERROR: error bound violated: {e}", file=sys.stderr)
        return 3
    sys.path.insert(0, str(HERE.parent / "common"))
    import bench_common

    record = {"benchmark": "lossless_peers", "created": bench_common.utc_now(),
              "machine": bench_common.machine_info(), **record}
    md = markdown(record)
    print(md)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        bench_common.sibling("coder_speed").write_json(args.out, bench_common.clean(record))
        args.out.with_suffix(".md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
