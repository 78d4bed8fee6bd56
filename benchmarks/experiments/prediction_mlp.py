"""A learned, nonlinear correction of tile format v9's lossless prediction: what it would save (issue 25, round 5).

The issue asks for "weights fitted on the training data and shipped in the bundle". What such weights could do is
measured here with a small network (16 inputs, two hidden layers of 32, ReLU) that reads v9's causal neighbourhood
and returns a correction of v9's prediction. The correction is rounded, so the new residuals are
integers.

Its inputs, each divided by the local scale s = 1 + the mean |v9 residual| at W, N, NW, NE, WW (W, N weighted 2):
- v9's residuals at W, N, NW, NE, WW, NN;
- the neighbours' values minus v9's prediction at W, N, NW, NE, WW, NN;
- the previous band's residuals here, at W and at N;
- log2 s / 8.

It is trained by L1 on v9's residual / s: 6,000 samples from every mode-0 band of every tile of the `--train`
scenes (none of them a validation scene). It is then applied to the validation scenes.

The new residuals are costed by `prediction_ceiling.py`'s estimator, against the same estimate of v9's own residuals.
This is a ceiling in one respect: the decoder would need the network bit-exact (integer arithmetic), which this
float32 model is not.

    python benchmarks/experiments/prediction_mlp.py .dev/val/*.tif \
        --train ../shared/data/scenes/l8_lc81070352015122_b234.tif ../shared/data/scenes/s2_ben_36_85_b2348.tif ...

Writes ``prediction_mlp.json`` and ``prediction_mlp.md``.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import machine_info, scenes_main, sibling, utc_now  # noqa: E402

pc = sibling("prediction_ceiling")
SAMPLES_PER_BAND, EPOCHS, SEED = 6000, 40, 0


def bands(codec, mod, path: Path):
    """v9's residuals, predictions, values, mask and the previous band's residuals, per band coded in mode 0."""
    tiles, _ = sibling("predictor_modes")._tiles(path)
    for _, p, r, m, modes in pc.dumped(codec, mod, tiles):
        e = (r - p).astype(np.float64)
        for b in range(len(modes)):
            yield (e[b], p[b].astype(np.float64), r[b].astype(np.float64), m[b], e[b - 1] if b > 0 else None,
                   int(modes[b]))


def features(e, p, r, eb) -> tuple[np.ndarray, np.ndarray]:
    sh, a = pc._shift, np.abs(e)
    s = 1 + (2 * sh(a, 0, 1) + 2 * sh(a, 1, 0) + sh(a, 1, 1) + sh(a, 1, -1) + sh(a, 0, 2)) / 7
    around = ((0, 1), (1, 0), (1, 1), (1, -1), (0, 2), (2, 0))
    fs = [sh(e, dy, dx) for dy, dx in around] + [sh(r, dy, dx) - p for dy, dx in around]
    fs += [np.zeros_like(e)] * 3 if eb is None else [eb, sh(eb, 0, 1), sh(eb, 1, 0)]
    return np.stack([np.clip(f / s, -30, 30) for f in fs] + [np.log2(s) / 8], -1).astype(np.float32), s


def train(codec, mod, scenes: list[Path], log=print):
    import torch

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    rng = np.random.default_rng(SEED)
    xs, ys = [], []
    for path in scenes:
        for e, p, r, m, eb, mode in bands(codec, mod, path):
            if mode or m.sum() < 200:
                continue
            x, s = features(e, p, r, eb)
            idx = rng.choice(np.flatnonzero(m.ravel()), min(int(m.sum()), SAMPLES_PER_BAND), replace=False)
            xs.append(x.reshape(-1, x.shape[-1])[idx])
            ys.append(np.clip((e / s).ravel()[idx], -30, 30).astype(np.float32))
    x, y = torch.tensor(np.concatenate(xs)), torch.tensor(np.concatenate(ys))
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 32), torch.nn.ReLU(), torch.nn.Linear(32, 32),
                              torch.nn.ReLU(), torch.nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    t0 = time.perf_counter()
    for _ in range(EPOCHS):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 4096):
            j = perm[i:i + 4096]
            loss = (net(x[j]).squeeze(1) - y[j]).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        fit = float((net(x).squeeze(1) - y).abs().mean())
    info = {"samples": len(x), "l1_v9": float(y.abs().mean()), "l1_corrected": fit,
            "seconds": time.perf_counter() - t0}
    log(f"trained on {len(x)} samples: L1 of residual / s {info['l1_v9']:.4f} -> {fit:.4f}")
    return net, info


def run(scenes: list[Path], train_scenes: list[Path], log=print) -> dict:
    import torch
    from cvae.edge.bundle import Bundle

    codec = Bundle.load(None).codec()
    with tempfile.TemporaryDirectory() as tmp:
        mod = pc.build("v9", {}, Path(tmp))
        net, info = train(codec, mod, [Path(p) for p in train_scenes], log)
        rows = []
        for path in scenes:
            own = new = 0.0
            for e, p, r, m, eb, mode in bands(codec, mod, path):
                c0 = pc.estimate_bits(e[None].astype(np.int64), m[None])
                own += c0
                if mode or m.sum() < 200:
                    new += c0
                    continue
                x, s = features(e, p, r, eb)
                with torch.no_grad():
                    corr = net(torch.tensor(x.reshape(-1, x.shape[-1]))).numpy().reshape(e.shape)
                new += pc.estimate_bits((e - np.rint(corr * s))[None].astype(np.int64), m[None])
            rows.append({"scene": path.stem, "v9_estimate_bits": own, "corrected_estimate_bits": new})
            log(f"{path.stem}: corrected / v9 {new / own:.4f}")
    return {"date": utc_now(), "machine": machine_info(), "train": [str(p) for p in train_scenes], "training": info,
            "rows": rows}


def markdown(rec: dict, command: str) -> str:
    t = rec["training"]
    ratios = [r["corrected_estimate_bits"] / r["v9_estimate_bits"] for r in rec["rows"]]
    lines = [f"# A learned correction of the lossless prediction (issue 25, {rec['date'][:10]})", "", "```bash",
             command, "```", "", __doc__.split("\n\n", 1)[1].split("\n\n    python")[0].strip(), "",
             f"Trained on {t['samples']:,} samples of {len(rec['train'])} scenes ({t['seconds']:.0f} s, one thread): "
             f"mean |residual| / s from {t['l1_v9']:.4f} to {t['l1_corrected']:.4f} on them.", "",
             "| scene | estimated bits, corrected / v9 |", "|---|---|"]
    lines += [f"| {r['scene']} | {x:.4f} |" for r, x in zip(rec["rows"], ratios)]
    lines.append(f"| **median** | **{np.median(ratios):.4f}** |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return scenes_main(argv, __doc__, __file__, "prediction_mlp", run, markdown,
                       [("--train", {"nargs": "+", "required": True})])


if __name__ == "__main__":
    sys.exit(main())
