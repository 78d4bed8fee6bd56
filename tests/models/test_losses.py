import numpy as np
import pytest
import torch

from cvae.metrics import ms_ssim_band
from cvae.models.cvae import CVAE, CVAEConfig
from cvae.models.losses import distortion, ms_ssim
from cvae.models.train import rd_loss


def test_ms_ssim_of_identical_images_is_one_and_drops_with_noise():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 128, 128)
    torch.testing.assert_close(ms_ssim(x, x), torch.ones(2), rtol=0, atol=1e-5)
    assert torch.all(ms_ssim(x + 0.1 * torch.randn_like(x), x) < 0.99)


def test_ms_ssim_agrees_with_the_numpy_metric():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 128)).cumsum(0).cumsum(1)
    x = (x - x.min()) / np.ptp(x)
    y = x + rng.normal(size=x.shape) * 0.03
    t = float(ms_ssim(torch.tensor(y[None, None]), torch.tensor(x[None, None])))
    # same definition; torch uses 'valid' filtering and average pooling, numpy reflect-padded filtering
    assert t == pytest.approx(ms_ssim_band(x, y, 1.0), abs=0.02)


def test_ms_ssim_loss_trains():
    torch.manual_seed(0)
    net = CVAE(CVAEConfig(n=8, m=8, lambdas=(1.0, 4.0)))
    x = torch.rand(2, 1, 64, 64) * 0.3
    loss, bpp, mse = rd_loss(net, x, 1, 10.0, "ms-ssim")
    loss.backward()
    assert all(p.grad is not None for p in net.g_s.parameters())
    with pytest.raises(ValueError, match="distortion"):
        distortion("psnr", x, x)
