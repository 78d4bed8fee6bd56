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


def test_scene_pack_round_trips_exactly_and_trains(shared_data, tmp_path):
    """--pack writes the config's training scenes into one file that needs no rasterio; the trainer reads
    it as data_dir and the pixels, masks and ranges come back bit for bit."""
    from cvae.models.data import find_scenes, load_scene, read_pack

    src = shared_data / "train" / "rstoolbox-landsat5"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {src}\nout_dir: {tmp_path / 'run'}\n"
                   "model: {n: 8, m: 8, lambdas: [0.01, 0.02, 0.04, 0.08]}\n"
                   "patch: 32\nbatch: 2\nsteps: 2\nworkers: 0\nthreads: 1\nvalidate_every: 1000\n")
    pack = tmp_path / "train.npz"
    assert main(["--config", str(cfg), "--pack", str(pack)]) == 0
    want = [load_scene(s) for s in find_scenes(src)]
    got = read_pack(pack)
    assert [s.name for s in got] == [s.name for s in want]
    for a, b in zip(got, want):
        assert a.pixels.dtype == np.float32 and np.array_equal(a.pixels, b.pixels)
        assert np.array_equal(a.valid, b.valid)
        assert np.array_equal(a.lo, b.lo) and np.array_equal(a.hi, b.hi)
    assert main(["--config", str(cfg), "--data-dir", str(pack), "--no-validation"]) == 0
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 2

    assert main(["--config", str(cfg), "--pack", str(tmp_path / "c.npz"), "--pack-max-side", "40"]) == 0
    for a, b in zip(read_pack(tmp_path / "c.npz"), want):
        assert np.array_equal(a.pixels, b.pixels[:, :40, :40])
        assert np.array_equal(a.lo, b.lo)  # the ranges stay the whole scene's


def test_a_file_that_is_not_a_pack_is_refused_with_the_fix(tmp_path):
    from cvae.models.data import read_pack

    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="--pack"):
        read_pack(bad)


def test_one_level_can_be_retrained_without_touching_the_others(shared_data, tmp_path):
    """freeze_transforms + train_levels: a new lambda for one level moves only that level's gains and
    density; the transforms and every other level stay bit for bit, so their rate-distortion curves hold."""
    cfg = tmp_path / "c.yaml"
    base = (f"data_dir: {shared_data / 'train' / 'rstoolbox-landsat5'}\nout_dir: {tmp_path / 'run'}\n"
            "patch: 32\nbatch: 2\nworkers: 0\nthreads: 1\nvalidate_every: 1000\n")
    cfg.write_text(base + "steps: 4\nmodel: {n: 8, m: 8, lambdas: [0.01, 0.02, 0.04, 0.08]}\n")
    assert main(["--config", str(cfg)]) == 0
    before = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    cfg.write_text(base + "steps: 24\nmodel: {n: 8, m: 8, lambdas: [0.01, 0.02, 0.04, 0.3]}\n"
                   "train_levels: [3]\nfreeze_transforms: true\n")
    assert main(["--config", str(cfg)]) == 0
    after = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"]
    for k, v in before.items():
        if k.startswith(("g_a.", "g_s.", "bottlenecks.0.", "bottlenecks.1.", "bottlenecks.2.")):
            assert torch.equal(v, after[k]), k
    for k in ("log_gain", "log_inv_gain"):
        assert torch.equal(before[k][:3], after[k][:3])
    # level 3 learns (its inverse gain only once its latents round to non-zero, which this tiny net's may not)
    assert not torch.equal(before["log_gain"][3], after["log_gain"][3])
    assert any(not torch.equal(v, after[k]) for k, v in before.items() if k.startswith("bottlenecks.3."))


def test_train_levels_must_exist(shared_data, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data_dir: {shared_data}\nout_dir: {tmp_path}\nmodel: {{lambdas: [0.1, 0.2]}}\n"
                   "train_levels: [2]\n")
    assert main(["--config", str(cfg)]) == 2
