"""cvae-train on real rasters: runs, checkpoints, resumes where it stopped, logs JSON lines."""
import json

import numpy as np
import pytest
import torch

from cvae.models.train import main


def test_train_then_resume(shared_data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data_dir: {shared_data / 'train' / 'rstoolbox-landsat5'}\nout_dir: {tmp_path / 'run'}\n"
        "model: {n: 8, m: 8, lambdas: [0.01, 0.02, 0.04, 0.08]}\n"
        "patch: 32\nbatch: 2\nsteps: 6\nlog_every: 2\ncheckpoint_every: 3\nvalidate_every: 1000\n"
        "warmup_steps: 2\nworkers: 0\nthreads: 1\n"
    )
    assert main(["--config", str(cfg)]) == 0
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 6
    assert main(["--config", str(cfg), "--steps", "10"]) == 0
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 10
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10]
    split = json.loads((tmp_path / "run" / "split.json").read_text())
    assert split["train_scenes"]


def test_resume_refuses_a_different_architecture(shared_data, tmp_path):
    cfg = tmp_path / "c.yaml"
    base = (f"data_dir: {shared_data / 'train' / 'rstoolbox-landsat5'}\nout_dir: {tmp_path / 'run'}\n"
            "patch: 32\nbatch: 2\nsteps: 2\nworkers: 0\nthreads: 1\nvalidate_every: 1000\n")
    cfg.write_text(base + "model: {n: 8, m: 8, lambdas: [0.01, 0.02, 0.04, 0.08]}\n")
    assert main(["--config", str(cfg)]) == 0
    cfg.write_text(base + "model: {n: 8, m: 8, lambdas: [0.02, 0.04, 0.08, 0.16]}\n")
    assert main(["--config", str(cfg), "--steps", "4"]) == 0  # new trade-offs, same architecture: resumes
    cfg.write_text(base + "model: {n: 8, m: 16, lambdas: [0.01, 0.02, 0.04, 0.08]}\n")
    with pytest.raises(SystemExit, match="out_dir"):
        main(["--config", str(cfg), "--steps", "6"])


@pytest.mark.slow
def test_torchrun_ddp_on_cpu(shared_data, tmp_path):
    """Two processes with the gloo backend: the DDP path trains and writes one checkpoint."""
    import subprocess
    import sys

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"data_dir: {shared_data / 'train' / 'rstoolbox-landsat5'}\nout_dir: {tmp_path / 'run'}\n"
        "model: {n: 8, m: 8, lambdas: [0.01, 0.02, 0.04, 0.08]}\n"
        "patch: 32\nbatch: 2\nsteps: 4\nlog_every: 2\ncheckpoint_every: 2\nvalidate_every: 1000\n"
        "workers: 0\nthreads: 1\n"
    )
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                        "-m", "cvae.models.train", "--config", str(cfg)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert state["step"] == 4
