"""Rate-distortion of a ladder variant in-process, BD-rate against the scorer's JPEG 2000 curves.

Encodes each scene at every level of the bundle (or of ``--ladder``, a JSON ``{"lat": [...], "step": [...]}``
over the bundle's networks and tables; residual levels reuse the index-table row of the nearest step), decodes
it with the ground decoder, computes PSNR as ``../shared/tools/rd_vs_jpeg2000.py`` does and the BD-rate with
its function against the strongest JPEG 2000 curve of a scorer ``rd.json`` of the same scenes. Faster than the
scorer for trying ladders; the figures that count come from the scorer itself.

    python benchmarks/tools/ladder_eval.py --rd benchmarks/results/782c7ed21f22/scorer_validation_rd.json \
        --ladder '{"lat": [0,1,1,2,3,3,3,3,3,3,3,3], "step": [0,0,0.2,0.14,0.1,0.07,0.05,0.035,0.025,0.0175,0.0125,0.009]}' \
        .dev/val/l8_elkton_b1234567.tif .dev/val/s2_ben_87_48_b2348.tif
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import sibling  # noqa: E402

_bd_rate, scene_bd = sibling("ablation_scorer")._bd_rate, sibling("ablation_scorer").scene_bd


def make_codec(bundle, lat, step, mode_search: str = "full"):
    from cvae.edge.codec import adaptive as am
    from cvae.edge.codec.tables import EntropyTables
    from cvae.edge.codec.tile import Ladder, TileCodec

    base = bundle.codec(mode_search="auto")
    ladder = Ladder(latent=np.array(lat, np.int32), step=np.array(step, np.float32))
    ad, it = base.adaptive, base.adaptive.index_tables
    lm = base.latent_levels * base.gain.shape[1]
    old = base.ladder.step[base.ladder.step > 0]
    rows = np.array(list(range(lm)) + [lm + int(np.argmin(np.abs(np.log(old / s)))) for s in ladder.step[ladder.step > 0]])
    tables = EntropyTables(cdf=it.cdf[rows], cdf_length=it.cdf_length[rows], offset=it.offset[rows], precision=it.precision)
    return TileCodec(base.tables, base.gain, base.inv_gain, base.transforms, base.model_id, base.skip_variance,
                     adaptive=am.AdaptiveModel(bank=ad.bank, scales=ad.scales, index_tables=tables), ladder=ladder,
                     mode_search=mode_search)


def _valid(a, nodata):
    if nodata is not None:
        return a != nodata
    if a.dtype == np.uint16 and (a == 0).mean() > 0.01:
        return a != 0
    return np.ones(a.shape, bool)


def curve(scene: str, bundle, codec) -> list[tuple[float, float]]:
    import rasterio

    from cvae.edge.encoder import EncodeOptions, encode_scene
    from cvae.ground.decoder import decode_streams
    from cvae.metrics import psnr_bands

    with rasterio.open(scene) as ds:
        orig, nodata = ds.read(), ds.nodata
    masks = [_valid(orig[k], nodata) for k in range(orig.shape[0])]
    pts = []
    for level in range(codec.levels):
        data = b"".join(encode_scene(scene, bundle, codec, EncodeOptions(level=level, scene_id=1)).packets)
        rec = decode_streams([data], bundle, codec)[0][0].pixels
        pts.append((len(data) * 8 / orig.size, psnr_bands(orig, rec, np.stack(masks))))  # a mask per band
    return pts


def report(scenes, rd_path: Path, bundle, codec, label: str = "BD-rate") -> None:
    """Print each scene's BD-rate against the strongest JPEG 2000 of ``rd_path`` and its points."""
    rd, bd_rate = json.loads(Path(rd_path).read_text()), _bd_rate()
    for scene in scenes:
        name = Path(scene).stem
        r = dict(rd[name], ours=curve(scene, bundle, codec))
        print(f"{name}: {label} {scene_bd(bd_rate, r, None):+.1f}%  " +
              " ".join(f"{q:.1f}dB@{b:.3f}" for b, q in r["ours"]), flush=True)


def main(argv=None) -> int:
    from cvae.edge.bundle import Bundle

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenes", nargs="+")
    p.add_argument("--rd", required=True, type=Path, help="a scorer rd.json holding these scenes' JPEG 2000 curves")
    p.add_argument("--ladder", default=None)
    p.add_argument("--bundle", default=None)
    a = p.parse_args(argv)
    bundle = Bundle.load(a.bundle)
    spec = json.loads(a.ladder) if a.ladder else None
    codec = make_codec(bundle, spec["lat"], spec["step"]) if spec else bundle.codec(mode_search="auto")
    report(a.scenes, a.rd, bundle, codec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
