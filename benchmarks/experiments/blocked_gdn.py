"""GDN on ONNX Runtime's blocked layout (``cvae.edge.runtime.ort_blocked``): what it saves, and that it changes
nothing (issue 22, item 3: network levels as fast as OpenJPEG).

Two measurements, one core, the plain session and the rewritten one alternated run by run (``--repeats`` each):

- the analysis network alone on 256 x 256 and 512 x 512 crops of each scene's first band (scaled to [0, 1] as
  the codec scales components): median milliseconds per run, and whether the latents are identical;
- the whole encode (``encode_scene``, GeoTIFF to packets) at each ``--levels`` level with each session: median
  seconds, and whether the packets are identical.

    python benchmarks/experiments/blocked_gdn.py .dev/val/s2_t33nza_10m_b2348.tif .dev/val/l8_lc81210442015044_b234.tif
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, utc_now  # noqa: E402


def _transforms(bundle, blocked: bool):
    """OrtTransforms on one thread, with the rewritten encoder or (``blocked=False``) the plain session."""
    from cvae.edge.runtime import ort as ort_module
    from cvae.edge.runtime.ort import OrtTransforms

    t = OrtTransforms(bundle.path / "encoder.onnx", bundle.path / "decoder.onnx", providers=["CPUExecutionProvider"],
                      threads=1)
    if not blocked:
        real = ort_module.blocked_session
        ort_module.blocked_session = lambda *a, **k: None  # type: ignore[assignment]
        try:
            t._session("encoder")
        finally:
            ort_module.blocked_session = real  # type: ignore[assignment]
    else:
        t._session("encoder")
    return t


def _median_ms(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(1e3 * (time.perf_counter() - t0))
    return out


def run(scenes: list[Path], levels: list[int], repeats: int, log=print) -> dict:
    import rasterio

    from cvae.edge.bundle import Bundle
    from cvae.edge.encoder import EncodeOptions, encode_scene

    bundle = Bundle.load()
    sessions = {"plain": _transforms(bundle, False), "blocked": _transforms(bundle, True)}
    rewritten = type(sessions["blocked"]._sessions["encoder"]).__name__
    codecs = {k: bundle.codec(transforms=t, mode_search="auto") for k, t in sessions.items()}
    rows = []
    for path in scenes:
        with rasterio.open(path) as d:
            band = d.read(1, window=((0, min(512, d.height)), (0, min(512, d.width)))).astype(np.float32)
        lo, hi = float(band.min()), float(band.max())
        band = (band - lo) / max(hi - lo, 1e-6)
        for size in (256, 512):
            if band.shape[0] < size or band.shape[1] < size:
                continue
            x = np.ascontiguousarray(band[:size, :size])[None, None]
            ys = {k: t.analysis(x) for k, t in sessions.items()}
            t: dict[str, list[float]] = {"plain": [], "blocked": []}
            for _ in range(repeats):
                for k in t:
                    t[k] += _median_ms(lambda: sessions[k].analysis(x), 1)
            med = {k: statistics.median(v) for k, v in t.items()}
            rows.append({"scene": path.stem, "what": f"analysis {size} x {size}", "plain": med["plain"],
                         "blocked": med["blocked"], "unit": "ms", "identical": bool(np.array_equal(*ys.values()))})
            log(rows[-1])
        for level in levels:
            opts = EncodeOptions(level=level, scene_id=1, threads=1)
            packets = {k: b"".join(encode_scene(path, bundle, c, opts).packets) for k, c in codecs.items()}
            t = {"plain": [], "blocked": []}
            for _ in range(repeats):
                for k in t:
                    t[k] += _median_ms(lambda: encode_scene(path, bundle, codecs[k], opts), 1)
            med = {k: statistics.median(v) / 1e3 for k, v in t.items()}
            rows.append({"scene": path.stem, "what": f"encode, level {level}", "plain": med["plain"],
                         "blocked": med["blocked"], "unit": "s", "identical": packets["plain"] == packets["blocked"]})
            log(rows[-1])
    return {"time": utc_now(), "machine": machine_info(), "repeats": repeats, "session": rewritten, "rows": rows}


def markdown(rec: dict, command: str) -> str:
    lines = [f"# GDN on ONNX Runtime's blocked layout ({rec['time'][:10]})", "", f"`{command}`", "",
             f"One core; plain session and rewritten one alternated, median of {rec['repeats']} runs each. "
             "Identical: the latents (analysis) or the packets (encode) of both, byte for byte.", "",
             "| scene | what | plain | blocked | blocked / plain | identical |", "|---|---|---|---|---|---|"]
    for r in rec["rows"]:
        u = r["unit"]
        lines.append(f"| {r['scene']} | {r['what']} | {r['plain']:.3g} {u} | {r['blocked']:.3g} {u} | "
                     f"{r['blocked'] / r['plain']:.3f} | {'yes' if r['identical'] else '**no**'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "blocked_gdn", run, markdown,
                       options=(("--levels", {"type": int, "nargs": "+", "default": [0, 3]}),
                                ("--repeats", {"type": int, "default": 5})))


if __name__ == "__main__":
    sys.exit(main())
