"""Peak memory of ``cvae-decode`` over a ground pass: N copies of one scene (each its own scene id, as N
acquisitions would arrive), decoded in one run; peak RSS of the decoding process and its wall time per N.

    python benchmarks/harness/ground_memory.py [--scene ../shared/data/scenes/l8_lc81210442015044_b234.tif] \
        [--counts 1 4 16 64] [--level 8]

The ground decodes scene by scene and tile by tile (ground/decoder.py, ground/geotiff.py), so the peak should not
grow with N. Writes results/ground_memory.md and .json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT, ROOT, machine_info, utc_now  # noqa: E402

DEFAULT_SCENE = ROOT.parent / "shared" / "data" / "scenes" / "l8_lc81210442015044_b234.tif"
_CHILD = """
import resource, sys, time
from cvae.ground.cli import main
t = time.perf_counter()
rc = main(sys.argv[1:])
print("RESULT", rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def run(scene: Path, counts: list[int], level: int, work: Path) -> list[dict]:
    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import DEFAULT_APID, EncodeOptions, encode_scene

    bundle = Bundle.load(None)
    codec = bundle.codec(mode_search="auto")
    from cvae.edge.codec import packets as pk

    base = encode_scene(scene, bundle, codec, EncodeOptions(level=level, scene_id=1)).packets

    writer = pk.PacketWriter(DEFAULT_APID)
    files = []
    for sid in range(1, max(counts) + 1):  # the same tiles under N scene ids (re-framed, CRC-valid)
        out = []
        for raw in base:
            for p in pk.parse_stream(raw):
                out += writer.packets(pk.SecondaryHeader(**{**p.header.__dict__, "scene_id": sid,
                                                            "kind": p.header.base_kind}), p.data)
        f = work / f"{sid:04d}.pkt"
        f.write_bytes(b"".join(out))
        files.append(f)
    rows = []
    for n in counts:
        out = work / f"out{n}"
        proc = subprocess.run([sys.executable, "-c", _CHILD, *map(str, files[:n]), "-o", str(out), "-q"],
                              capture_output=True, text=True)
        line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("RESULT"))
        _, rc, secs, kb = line.split()
        import rasterio

        with rasterio.open(scene) as ds:
            samples = ds.count * ds.width * ds.height
        rows.append({"scenes": n, "rc": int(rc), "seconds": float(secs), "peak_rss_mb": int(kb) / 1024,
                     "samples": n * samples, "outputs": len(list(out.glob("*.tif")))})
        print(f"{n:4d} scenes  {int(kb) / 1024:7.0f} MB peak RSS  {float(secs):6.1f} s", file=sys.stderr)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scene", default=str(DEFAULT_SCENE))
    p.add_argument("--counts", type=int, nargs="+", default=[1, 4, 16, 64])
    p.add_argument("--level", type=int, default=8)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(Path(a.scene), sorted(a.counts), a.level, Path(tmp))
    command = "python benchmarks/harness/ground_memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
    result = {"command": command, "date": utc_now(), "scene": Path(a.scene).name, "level": a.level,
              "machine": machine_info(), "rows": rows}
    out = Path(a.out)
    (out / "ground_memory.json").write_text(json.dumps(result, indent=1))
    lines = [f"# cvae-decode peak memory over a pass ({result['date']})", "", f"`{command}`", "",
             f"Scene {result['scene']} at level {a.level}, N copies under their own scene ids, one run each.", "",
             "| scenes | samples | peak RSS MB | seconds | GeoTIFFs |", "|---|---|---|---|---|"]
    lines += [f"| {r['scenes']} | {r['samples']:,} | {r['peak_rss_mb']:.0f} | {r['seconds']:.1f} | {r['outputs']} |"
              for r in rows]
    (out / "ground_memory.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
