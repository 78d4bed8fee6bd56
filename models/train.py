"""``cvae-train --config FILE``: train the CVAE on a tree of rasters, resumably.

Runs on the CPU or CUDA (``torchrun --nproc_per_node=K -m cvae.models.train --config FILE`` for DDP).
Writes into ``out_dir``: ``checkpoint.pt`` (the one resumable state, overwritten atomically),
``log.jsonl`` (one JSON object per logged step and per validation), ``split.json`` (the scene split).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import yaml

from cvae.edge.io.files import write_atomic
from cvae.models.cvae import CVAE, CVAEConfig
from cvae.models.data import ComponentPatches, find_scenes, load_scene, read_pack, write_pack, write_split
from cvae.models.losses import distortion

__all__ = ["TrainConfig", "train", "main"]


@dataclass(frozen=True)
class TrainConfig:
    data_dir: str
    out_dir: str
    model: CVAEConfig = field(default_factory=CVAEConfig)
    exclude: tuple[str, ...] = ()           # glob patterns (relative to data_dir) kept out of training
    validation_scenes: tuple[str, ...] = () # scene files used for validation
    distortion: str = "mse"                 # or "ms-ssim" (lambdas on MS-SSIM's scale)
    patch: int = 128
    batch: int = 16
    lr: float = 4e-4
    lr_min: float = 1e-5
    entropy_lr_mult: float = 10.0            # the factorised densities and the level gains learn faster: the
    gain_lr_mult: float = 5.0                # rate term lags far behind the transforms at one shared rate
    warmup_steps: int = 500
    decay_fraction: float = 0.25            # last part of the run decays the learning rate linearly
    steps: int = 30000
    time_budget_min: float = 0.0            # > 0: also end (after the decay) when this much wall time is used
    log_every: int = 100
    validate_every: int = 2000
    checkpoint_every: int = 500
    seed: int = 0
    train_levels: tuple[int, ...] = ()      # levels trained, in turn (empty = every level)
    freeze_transforms: bool = False         # train only the level gains and densities (e.g. one level's new lambda)
    threads: int = 0                        # torch CPU threads, 0 = all cores
    workers: int = 1                        # data loader processes

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> "TrainConfig":
        raw = yaml.safe_load(Path(path).read_text()) or {}
        raw.update({k: v for k, v in overrides.items() if v is not None})
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; known keys are {sorted(known)}")
        model = raw.pop("model", {}) or {}
        mknown = {f.name for f in fields(CVAEConfig)}
        if set(model) - mknown:
            raise ValueError(f"{path}: model: unknown keys {sorted(set(model) - mknown)}; known: {sorted(mknown)}")
        if "lambdas" in model:
            model["lambdas"] = tuple(float(v) for v in model["lambdas"])
        for k in ("exclude", "validation_scenes", "train_levels"):
            if k in raw:
                raw[k] = tuple(raw[k])
        base = Path(path).parent
        for k in ("data_dir", "out_dir"):
            if k in raw and not os.path.isabs(raw[k]):
                raw[k] = str((base / raw[k]).resolve())
        if "validation_scenes" in raw:
            raw["validation_scenes"] = tuple(str((base / p).resolve()) if not os.path.isabs(p) else p
                                             for p in raw["validation_scenes"])
        cfg = cls(model=CVAEConfig(**model), **raw)
        if cfg.distortion not in ("mse", "ms-ssim"):
            raise ValueError(f"{path}: distortion: {cfg.distortion!r} is not 'mse' or 'ms-ssim'")
        if cfg.patch % 16:
            raise ValueError(f"{path}: patch: {cfg.patch} is not a multiple of 16 (the network's stride)")
        bad = [lv for lv in cfg.train_levels if not 0 <= lv < cfg.model.levels]
        if bad:
            raise ValueError(f"{path}: train_levels: {bad} do not exist; levels are 0..{cfg.model.levels - 1}")
        return cfg


def learning_rate(cfg: TrainConfig, step: int, elapsed_s: float) -> float:
    """Warm-up, constant, then linear decay over the last ``decay_fraction`` of the run, where the run's
    progress is the larger of its step fraction and its wall-time fraction."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = step / cfg.steps
    if cfg.time_budget_min > 0:
        progress = max(progress, elapsed_s / (60 * cfg.time_budget_min))
    start = 1 - cfg.decay_fraction
    if progress <= start:
        return cfg.lr
    t = min(1.0, (progress - start) / cfg.decay_fraction)
    return cfg.lr_min + (cfg.lr - cfg.lr_min) * (1 - t)


def rd_loss(model: torch.nn.Module, x: torch.Tensor, level: int, lam: float, kind: str = "mse"
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``R + lambda * D`` with R in bits per pixel and D = 255^2 * MSE on the normalised [0, 1] scale
    (or 1 - MS-SSIM); returns (loss, bpp, mse). ``model`` is the CVAE or its DDP wrapper."""
    r = model(x, level)
    bpp = -torch.log2(r.likelihoods).sum() / (x.shape[0] * x.shape[2] * x.shape[3])
    mse = torch.mean((r.x_hat - x) ** 2)
    return bpp + lam * distortion(kind, r.x_hat, x), bpp, mse


def _atomic_save(obj, path: Path) -> None:
    write_atomic(path, lambda f: torch.save(obj, f))


def train(cfg: TrainConfig) -> Path:
    """Train until ``cfg.steps`` (or the time budget); resumes from ``out_dir/checkpoint.pt``. Returns it."""
    ddp = "RANK" in os.environ and "WORLD_SIZE" in os.environ
    rank = 0
    if ddp:
        torch.distributed.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        rank = torch.distributed.get_rank()
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"

    val_names = [os.path.basename(p) for p in cfg.validation_scenes]
    if cfg.data_dir.endswith(".npz") and os.path.isfile(cfg.data_dir):
        scenes = read_pack(cfg.data_dir)  # written by --pack, with the exclusions already applied
    else:
        scenes = [load_scene(s) for s in find_scenes(cfg.data_dir, exclude=list(cfg.exclude))]
    if not scenes:
        raise SystemExit(f"data_dir: no readable rasters under {cfg.data_dir}; point it at a folder of GeoTIFFs")
    if rank == 0:
        write_split(out / "split.json", scenes, val_names, list(cfg.exclude))

    torch.manual_seed(cfg.seed)
    net = CVAE(cfg.model).to(device)
    groups = [
        {"params": [*net.g_a.parameters(), *net.g_s.parameters()], "mult": 1.0},
        {"params": list(net.bottlenecks.parameters()), "mult": cfg.entropy_lr_mult},
        {"params": [net.log_gain, net.log_inv_gain], "mult": cfg.gain_lr_mult},
    ]
    opt = torch.optim.Adam(groups, lr=cfg.lr)
    step = 0
    if ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=False)
        old, new = dict(state["model_config"]), asdict(cfg.model)
        old_l, new_l = tuple(old.pop("lambdas")), tuple(new.pop("lambdas"))
        if old != new or len(old_l) != len(new_l):
            raise SystemExit(f"{ckpt_path}: was trained with model {state['model_config']}, the config asks for "
                             f"{asdict(cfg.model)}; use another out_dir or restore the model section")
        if old_l != new_l and rank == 0:  # a loss weight, not architecture: the level gains adapt
            print(f"lambdas changed {old_l} -> {new_l}: continuing with the new trade-offs", file=sys.stderr)
        net.load_state_dict(state["model"])
        if cfg.freeze_transforms:  # fresh moments: an old momentum would keep moving the levels not trained
            if rank == 0:
                print("freeze_transforms: Adam moments restart", file=sys.stderr)
        elif len(state["optimizer"]["param_groups"]) == len(opt.param_groups):
            opt.load_state_dict(state["optimizer"])
        elif rank == 0:
            print("optimizer parameter groups changed: Adam moments restart", file=sys.stderr)
        step = state["step"]
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it onto the GPU
        if rank == 0:
            print(f"resumed from {ckpt_path} at step {step}", file=sys.stderr)
    if cfg.freeze_transforms:  # the analysis and synthesis stay as they are: other levels keep their curves
        for p in [*net.g_a.parameters(), *net.g_s.parameters()]:
            p.requires_grad_(False)
    # each step trains one level: the other levels' densities get no gradient that step
    model = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=True) if ddp else net

    data = ComponentPatches(scenes, cfg.patch, seed=cfg.seed + 1000 * rank, start_step=step)
    loader = torch.utils.data.DataLoader(data, batch_size=cfg.batch, num_workers=cfg.workers,
                                         persistent_workers=cfg.workers > 0, worker_init_fn=_one_thread_worker)
    validator = None
    if rank == 0 and cfg.validation_scenes:
        from cvae.models.validate import Validator
        validator = Validator(cfg.validation_scenes)
    log = open(out / "log.jsonl", "a") if rank == 0 else None
    try:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, disable=rank != 0, mininterval=5, file=sys.stderr)
    except ImportError:  # tqdm is in the train extra; training still runs without a bar
        bar = None
    t0 = time.time()
    acc = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}
    it = iter(loader)
    net.train()
    while step < cfg.steps:
        elapsed = time.time() - t0
        if cfg.time_budget_min > 0 and elapsed > 60 * cfg.time_budget_min:
            break
        lr = learning_rate(cfg, step, elapsed)
        for g in opt.param_groups:
            g["lr"] = lr * g["mult"]
        level = cfg.train_levels[step % len(cfg.train_levels)] if cfg.train_levels else step % cfg.model.levels
        x = next(it).to(device, non_blocking=True)
        loss, bpp, mse = rd_loss(model, x, level, cfg.model.lambdas[level], cfg.distortion)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], 1.0)
        opt.step()
        step += 1
        acc["loss"] += loss.item(); acc["bpp"] += bpp.item(); acc["mse"] += mse.item(); acc["n"] += 1
        if bar is not None:
            bar.update(1)
        if rank == 0 and step % cfg.log_every == 0:
            n = acc.pop("n")
            rec = {"step": step, "time": time.time(), "lr": lr, **{k: v / n for k, v in acc.items()}}
            log.write(json.dumps(rec) + "\n"); log.flush()
            acc = {"loss": 0.0, "bpp": 0.0, "mse": 0.0, "n": 0}
        if rank == 0 and (step % cfg.checkpoint_every == 0 or step == cfg.steps):
            _save(net, opt, cfg, step, ckpt_path)
        if validator is not None and step % cfg.validate_every == 0:
            net.eval()
            rec = validator.run(net, step)
            net.train()
            log.write(json.dumps(rec) + "\n"); log.flush()
            print(f"step {step}: validation {rec.get('summary')}", file=sys.stderr)
    if rank == 0:
        _save(net, opt, cfg, step, ckpt_path)
        if validator is not None:
            net.eval()
            rec = validator.run(net, step)
            log.write(json.dumps(rec) + "\n"); log.flush()
            print(f"step {step}: validation {rec.get('summary')}", file=sys.stderr)
        log.close()
    if ddp:
        torch.distributed.destroy_process_group()
    return ckpt_path


def _one_thread_worker(_: int) -> None:
    """Data loader processes run numpy on tiny matrices (the KLT of one crop): BLAS threads in each of many
    workers oversubscribe the cores (on a 16-core H100 machine, batch 64: 15 one-thread workers fed 77 it/s;
    earlier, 14 workers with threaded BLAS over two runs stalled them near 14 it/s each, cores at 100%)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    torch.set_num_threads(1)


def _save(net: CVAE, opt, cfg: TrainConfig, step: int, path: Path) -> None:
    _atomic_save({"model": net.state_dict(), "optimizer": opt.state_dict(), "step": step,
                  "model_config": asdict(cfg.model), "torch_rng": torch.get_rng_state(),
                  "train_config": {k: v for k, v in asdict(cfg).items() if k != "model"}}, path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cvae-train", description=__doc__.splitlines()[0])
    from cvae.edge.cliutil import VersionAction

    p.add_argument("--version", action=VersionAction, extra=("torch",))
    p.add_argument("--config", required=True, help="YAML training config (see configs/default.yaml)")
    p.add_argument("--steps", type=int, help="override: total steps")
    p.add_argument("--time-budget-min", type=float, help="override: wall-time budget in minutes")
    p.add_argument("--out-dir", help="override: output folder")
    p.add_argument("--data-dir", help="override: folder of rasters, or a scene pack (.npz) written by --pack")
    p.add_argument("--batch", type=int, help="override: batch size")
    p.add_argument("--workers", type=int, help="override: data loader processes")
    p.add_argument("--no-validation", action="store_true", help="skip validation (e.g. where the scenes are absent)")
    p.add_argument("--pack", metavar="OUT.npz", help="write the training scenes of the config into one file "
                   "(readable without rasterio, for a training machine without GDAL) and exit")
    p.add_argument("--pack-max-side", type=int, default=0, help="with --pack: keep at most this square of each scene")
    a = p.parse_args(argv)
    try:
        cfg = TrainConfig.from_yaml(a.config, steps=a.steps, time_budget_min=a.time_budget_min, out_dir=a.out_dir,
                                    data_dir=os.path.abspath(a.data_dir) if a.data_dir else None, batch=a.batch,
                                    workers=a.workers, validation_scenes=() if a.no_validation else None)
    except (OSError, ValueError, TypeError) as e:
        print(f"cvae-train: {e}", file=sys.stderr)
        return 2
    if a.pack:
        scenes = find_scenes(cfg.data_dir, exclude=list(cfg.exclude))
        if not scenes:
            print(f"cvae-train: data_dir: no readable rasters under {cfg.data_dir}", file=sys.stderr)
            return 2
        index = write_pack(scenes, a.pack, max_side=a.pack_max_side,
                           note=f"training scenes of {a.config}, exclusions applied")
        print(f"{a.pack}: {len(index['scenes'])} scenes, {os.path.getsize(a.pack) / 1e6:.1f} MB", file=sys.stderr)
        return 0
    train(cfg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
