"""The DDIM schedule of the official pix2gestalt / Zero-1-to-3 sampler, on a stock diffusers ``DDIMScheduler``.

The official ``DDIMSampler`` (a fork of the latent-diffusion one) differs from diffusers' defaults in ways that
change the output:

* uniform discretisation ``c = 1000 // S``, timesteps ``range(0, 1000, c) + 1`` (more than ``S`` entries when
  ``1000 % S != 0``);
* the loop DROPS the largest of those timesteps (S=10 runs 9 UNet calls at 801, 701, ..., 1 from pure noise);
* each step goes from ``t`` to ``t - c``; the last step (t=1) uses ``alphas_cumprod[0]``, not 1.0, as alpha_prev;
* scaled-linear betas 0.00085..0.012, no sample clipping, epsilon prediction.

:class:`OfficialDDIMScheduler` is a ``DDIMScheduler`` whose ``set_timesteps`` sets that list; its ``step`` (the
stock one) then goes from ``t`` to ``t - 1000 // num_inference_steps`` exactly as the official loop. Converted
folders and :func:`official_ddim_scheduler` use it. A stock ``DDIMScheduler`` (or any other scheduler) swapped in
by the user keeps its own timesteps.
"""

from __future__ import annotations

import torch
from diffusers import DDIMScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin  # noqa: F401  (lets diffusers load this module's scheduler)

from ..errors import InputError

NUM_TRAIN_TIMESTEPS = 1000

OFFICIAL_SCHEDULER_CONFIG = {
    "num_train_timesteps": NUM_TRAIN_TIMESTEPS,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
}


class OfficialDDIMScheduler(DDIMScheduler):
    """``DDIMScheduler`` that visits the official sampler's timesteps (:func:`official_ddim_timesteps`).

    Everything else (noise schedule, ``step``) is the stock scheduler's; build it with the official config
    (:func:`official_ddim_scheduler`) or ``OfficialDDIMScheduler.from_config(pipe.scheduler.config)``.
    """

    def set_timesteps(self, num_inference_steps: int, device: torch.device | str | None = None) -> None:
        timesteps = official_ddim_timesteps(num_inference_steps, self.config.num_train_timesteps)
        super().set_timesteps(num_inference_steps, device=device)
        self.timesteps = torch.tensor(timesteps, dtype=torch.long, device=device)


def official_ddim_scheduler() -> OfficialDDIMScheduler:
    """An :class:`OfficialDDIMScheduler` with the official noise schedule and step rule."""
    return OfficialDDIMScheduler(**OFFICIAL_SCHEDULER_CONFIG)


def official_ddim_timesteps(num_inference_steps: int, num_train_timesteps: int = NUM_TRAIN_TIMESTEPS) -> list[int]:
    """Timesteps the official sampler feeds to the UNet, in execution order (descending).

    >>> official_ddim_timesteps(10)
    [801, 701, 601, 501, 401, 301, 201, 101, 1]
    """
    if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int):
        raise TypeError(f"num_inference_steps must be an int, got {type(num_inference_steps).__name__}")
    if not 2 <= num_inference_steps <= num_train_timesteps:
        raise InputError(
            f"num_inference_steps must be in [2, {num_train_timesteps}] (the official sampler drops its largest "
            f"timestep, so 1 step would run no UNet call), got {num_inference_steps}"
        )
    stride = num_train_timesteps // num_inference_steps
    uniform = [t + 1 for t in range(0, num_train_timesteps, stride)]
    return uniform[:-1][::-1]
