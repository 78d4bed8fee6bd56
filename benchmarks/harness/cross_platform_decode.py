"""Packets made on one machine decode identically on another (x86-64 -> emulated aarch64, the Jetson's CPU).

``make``: encode scenes at some levels (and, with ``--max-errors``, error bounds: tile format v4) into packet files and record, per scene and level, the SHA-256 of every
tile's parsed integers (scale indexes and symbols: what the entropy decoder derives from the stream) and of the
decoded pixels. ``check``: decode the same files here and compare; writes a JSON report and exits 1 on any
difference. Run ``check`` under ``../shared/tools/aarch64-chroot.sh``::

    python benchmarks/harness/cross_platform_decode.py make --scenes A.tif B.tif --levels 2 8 --dir .dev/xplat
    ../shared/tools/aarch64-chroot.sh . '/opt/venv/bin/pip install -q --no-build-isolation --no-deps . &&
        /opt/venv/bin/python benchmarks/harness/cross_platform_decode.py check --dir .dev/xplat'
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path


def _digests(paths: list[Path]) -> dict:
    import numpy as np

    from cvae.edge.bundle import Bundle
    from cvae.ground.decoder import decode_streams

    bundle = Bundle.load()
    codec = bundle.codec("onnxruntime", mode_search="auto")
    out = {}
    for p in paths:
        data = p.read_bytes()
        scenes, _ = decode_streams([data], bundle, codec)
        pix = hashlib.sha256()
        for s in scenes:
            pix.update(np.ascontiguousarray(s.pixels).tobytes())
        out[p.name] = {"pixels_sha256": pix.hexdigest()}
        if p.stem.split("_")[-1].startswith("E"):  # error-bounded (tile format v4): no network, the samples are it
            out[p.name]["integers_sha256"] = out[p.name]["pixels_sha256"]
            continue
        try:  # the integers every tile parses to (tile formats v2 and v3)
            tiles = hashlib.sha256()
            for body, side in _tile_bodies(data):
                idx, values = codec.parse_integers(body, side)
                tiles.update(idx.tobytes() + values.tobytes())
            out[p.name]["integers_sha256"] = tiles.hexdigest()
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            out[p.name]["integers_error"] = str(e)
    return out


def _tile_bodies(data: bytes) -> list[tuple[bytes, object]]:
    """Every tile's bytes with its scene's side information (format v6 tiles may refer to it)."""
    from cvae.ground.decoder import collect

    stats: dict = {}
    bodies = []
    for parts in collect([data], stats).values():
        side = parts.meta.side() if parts.meta else None
        for key in sorted(parts.segments):
            bodies.append((parts.body(key), side))
    return bodies


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=["make", "check"])
    p.add_argument("--dir", type=Path, required=True)
    p.add_argument("--scenes", nargs="*", default=[])
    p.add_argument("--levels", nargs="*", type=int, default=[2, 8])
    p.add_argument("--max-errors", nargs="*", type=int, default=[], help="also error-bounded files (tile format v4)")
    a = p.parse_args(argv)
    if a.mode == "make":
        from cvae.edge.bundle import Bundle
        from cvae.edge.encoder import EncodeOptions, encode_scene

        bundle = Bundle.load()
        codec = bundle.codec("onnxruntime", mode_search="auto")
        a.dir.mkdir(parents=True, exist_ok=True)
        files = []
        for scene in a.scenes:
            for lv in a.levels:
                enc = encode_scene(scene, bundle, codec, EncodeOptions(level=lv))
                f = a.dir / f"{Path(scene).stem}_L{lv}.pkt"
                f.write_bytes(b"".join(enc.packets))
                files.append(f)
            for e in a.max_errors:
                enc = encode_scene(scene, bundle, codec, EncodeOptions(max_error=(e,)))
                f = a.dir / f"{Path(scene).stem}_E{e}.pkt"
                f.write_bytes(b"".join(enc.packets))
                files.append(f)
        ref = {"machine": platform.machine(), "bundle": bundle.model_id[:12], "files": _digests(files)}
        (a.dir / "expected.json").write_text(json.dumps(ref, indent=1))
        print(json.dumps(ref, indent=1))
        return 0
    ref = json.loads((a.dir / "expected.json").read_text())
    got = _digests([a.dir / n for n in ref["files"]])
    same = {n: got[n] == ref["files"][n] for n in ref["files"]}
    report = {"made_on": ref["machine"], "checked_on": platform.machine(), "bundle": ref["bundle"],
              "identical": same, "all_identical": all(same.values()), "checked": got}
    (a.dir / f"check_{platform.machine()}.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0 if report["all_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
