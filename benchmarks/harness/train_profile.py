"""Where a training step's time goes: data sampling, forward, backward, optimiser (medians over steps).

    python benchmarks/harness/train_profile.py [--config configs/default.yaml] [--steps 30]

Also reports how many batches per second the data pipeline alone delivers, to show whether the loader
(one worker process) can keep up with the network on this machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "common"))  # bench_common, run as a script
from bench_common import DEFAULT_OUT  # noqa: E402


def main(argv=None) -> int:
    from cvae.models.cvae import CVAE
    from cvae.models.data import ComponentPatches, find_scenes, load_scene
    from cvae.models.train import TrainConfig, rd_loss

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "default.yaml"))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--out", default=str(DEFAULT_OUT / "train_profile.json"))
    a = p.parse_args(argv)
    cfg = TrainConfig.from_yaml(a.config)
    torch.set_num_threads(cfg.threads or os.cpu_count())
    t0 = time.perf_counter()
    scenes = [load_scene(s) for s in find_scenes(cfg.data_dir, exclude=list(cfg.exclude))]
    load_s = time.perf_counter() - t0
    data = ComponentPatches(scenes, cfg.patch, seed=0)
    rng = np.random.default_rng(0)
    net = CVAE(cfg.model)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    times = {"data": [], "forward": [], "backward": [], "optimizer": []}
    for step in range(a.steps):
        t = time.perf_counter()
        x = torch.from_numpy(np.stack([data.sample(rng) for _ in range(cfg.batch)]))
        t1 = time.perf_counter()
        loss = rd_loss(net, x, step % cfg.model.levels, cfg.model.lambdas[step % cfg.model.levels])[0]
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if step >= 3:  # warm-up steps excluded
            for k, dt in zip(times, (t1 - t, t2 - t1, t3 - t2, t4 - t3)):
                times[k].append(dt)
    med = {k: float(np.median(v)) for k, v in times.items()}
    total = sum(med.values())
    result = {"command": " ".join(["benchmarks/harness/train_profile.py", *(argv or sys.argv[1:])]),
              "machine": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__,
              "batch": cfg.batch, "patch": cfg.patch, "scene_load_s": load_s,
              "median_s": med, "share": {k: v / total for k, v in med.items()},
              "steps_per_s_without_loader_overlap": 1 / total,
              "data_batches_per_s_one_process": 1 / med["data"]}
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
