"""The official DDIM timestep list and its equivalence with a stock DDIMScheduler."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler

from p2g3d.pipelines.official_ddim import (
    OFFICIAL_SCHEDULER_CONFIG,
    OfficialDDIMScheduler,
    official_ddim_scheduler,
    official_ddim_timesteps,
)


def test_known_lists():
    assert official_ddim_timesteps(10) == [801, 701, 601, 501, 401, 301, 201, 101, 1]
    assert official_ddim_timesteps(200)[:3] == [991, 986, 981] and len(official_ddim_timesteps(200)) == 199
    # 1000 % 3 != 0: range(0, 1000, 333) has 4 entries (1, 334, 667, 1000); the largest is dropped.
    assert official_ddim_timesteps(3) == [667, 334, 1]
    assert official_ddim_timesteps(7) == [853, 711, 569, 427, 285, 143, 1]


@pytest.mark.parametrize("steps", [0, 1, 1001])
def test_out_of_range(steps):
    with pytest.raises(ValueError, match="num_inference_steps"):
        official_ddim_timesteps(steps)


def test_type_checked():
    with pytest.raises(TypeError):
        official_ddim_timesteps(10.0)


@pytest.mark.parametrize("steps", [10, 50, 200])
def test_stock_ddim_minus_first_step_when_divisible(steps):
    """With 1000 % S == 0 the official list is diffusers' "leading" + offset 1 list without its first entry."""
    stock = DDIMScheduler(**OFFICIAL_SCHEDULER_CONFIG)
    stock.set_timesteps(steps)
    official = official_ddim_scheduler()
    official.set_timesteps(steps)
    assert stock.timesteps[1:].tolist() == official_ddim_timesteps(steps) == official.timesteps.tolist()


def test_official_scheduler_round_trips_through_config():
    """Opting in and out of the official schedule is a config round trip, as for any diffusers scheduler."""
    official = OfficialDDIMScheduler.from_config(DDIMScheduler(**OFFICIAL_SCHEDULER_CONFIG).config)
    official.set_timesteps(10)
    assert official.timesteps.tolist() == official_ddim_timesteps(10)
    stock = DDIMScheduler.from_config(official.config)
    stock.set_timesteps(10)
    assert stock.timesteps.tolist() == [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]


def test_step_uses_official_previous_alpha():
    scheduler = official_ddim_scheduler()
    scheduler.set_timesteps(10)
    sample, eps = torch.randn(1, 4, 2, 2), torch.randn(1, 4, 2, 2)
    out = scheduler.step(eps, 1, sample, eta=0.0).prev_sample
    a_t, a_prev = scheduler.alphas_cumprod[1], scheduler.alphas_cumprod[0]
    pred_x0 = (sample - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    torch.testing.assert_close(out, a_prev.sqrt() * pred_x0 + (1 - a_prev).sqrt() * eps)
    assert scheduler.alphas_cumprod[0] < 1.0
