import json

import numpy as np
import pytest
import torch

from cvae.edge.codec import rangecoder
from cvae.models.cvae import CVAE, CVAEConfig
from cvae.models.entropy import EntropyBottleneck
from cvae.models.freeze import freeze_model, tables_from_bottleneck
from cvae.models.layers import GDN
from cvae.models.train import TrainConfig, learning_rate, rd_loss


@pytest.mark.parametrize("act", ["leaky_relu", "gdn"])
def test_forward_shapes(act):
    net = CVAE(CVAEConfig(n=8, m=12, act=act, lambdas=(0.01, 0.02, 0.04, 0.08)))
    x = torch.rand(2, 1, 64, 48)
    r = net(x, 1)
    assert r.x_hat.shape == x.shape
    assert r.likelihoods.shape == (2, 12, 4, 3)
    assert torch.all(r.likelihoods > 0) and torch.all(r.likelihoods <= 1)


def test_gdn_inverse_undoes_gdn_at_init():
    g, ig = GDN(4), GDN(4, inverse=True)
    x = torch.randn(1, 4, 8, 8) * 0.1
    # at init gamma is 0.1 I and beta 1: IGDN(GDN(x)) = x up to the second-order terms of small x
    torch.testing.assert_close(ig(g(x)), x, rtol=0.02, atol=1e-3)


def test_bottleneck_likelihoods_sum_to_one_over_integers():
    eb = EntropyBottleneck(3)
    k = torch.arange(-300, 301, dtype=torch.float32).reshape(1, 1, -1, 1).repeat(1, 3, 1, 1)
    total = eb.likelihood(k).sum(dim=2)
    torch.testing.assert_close(total, torch.ones_like(total), rtol=0, atol=1e-4)  # tail mass beyond +-300


def test_frozen_tables_are_valid_cdfs_and_code_bits_near_the_estimate():
    torch.manual_seed(0)
    net = CVAE(CVAEConfig(n=8, m=6, lambdas=(0.01, 0.04, 0.1, 0.2)))
    tables, gain, inv_gain = freeze_model(net)
    assert len(tables) == 4 and gain.shape == (4, 6)
    for t in tables:
        for c in range(t.channels):
            row = t.cdf[c, :t.cdf_length[c]]
            assert row[0] == 0 and row[-1] == 1 << 16 and np.all(np.diff(row) >= 1)
    # symbols drawn from the density itself code close to their entropy
    eb, t = net.bottlenecks[0], tables[0]
    pmf, offset = eb.pmf_table()
    rng = np.random.default_rng(0)
    idx = np.repeat(np.arange(6, dtype=np.int32), 5000)
    sym = np.concatenate([offset[c] + rng.choice(pmf.shape[1], 5000, p=pmf[c] / pmf[c].sum()) for c in range(6)])
    sym = sym.astype(np.int32)
    data = rangecoder.encode(sym, idx, t.cdf, t.cdf_length, t.offset, t.precision)
    np.testing.assert_array_equal(rangecoder.decode(data, idx, t.cdf, t.cdf_length, t.offset, t.precision), sym)
    est = t.estimated_bits(sym, idx)
    assert 8 * len(data) <= 1.02 * est + 64  # coder overhead: 2% plus the flush


def test_training_reduces_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    net = CVAE(CVAEConfig(n=16, m=16, lambdas=(0.01, 0.05)))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.rand(4, 1, 32, 32) * 0.3
    first = rd_loss(net, x, 1, 0.05)[0].item()
    for _ in range(40):
        loss = rd_loss(net, x, 1, 0.05)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert rd_loss(net, x, 1, 0.05)[0].item() < 0.7 * first


def test_learning_rate_warms_up_holds_and_decays():
    cfg = TrainConfig(data_dir=".", out_dir=".", steps=1000, warmup_steps=100, lr=1e-3, lr_min=1e-5,
                      decay_fraction=0.2)
    assert learning_rate(cfg, 0, 0) == pytest.approx(1e-5)
    assert learning_rate(cfg, 500, 0) == 1e-3
    assert learning_rate(cfg, 900, 0) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert learning_rate(cfg, 1000, 0) == pytest.approx(1e-5)
    timed = TrainConfig(data_dir=".", out_dir=".", steps=10**9, warmup_steps=0, time_budget_min=10, decay_fraction=0.2)
    assert learning_rate(timed, 5, 600) == pytest.approx(timed.lr_min)  # wall-time budget spent: fully decayed


def test_config_errors_name_the_key(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("data_dir: .\nout_dir: o\npatch: 100\n")
    with pytest.raises(ValueError, match="patch: 100 is not a multiple of 16"):
        TrainConfig.from_yaml(p)
    p.write_text("data_dir: .\nout_dir: o\nbatchsize: 3\n")
    with pytest.raises(ValueError, match="batchsize"):
        TrainConfig.from_yaml(p)
