"""Sampler choice for the diffusion stages: the faithful official DDIM (the default of converted models) or one of
diffusers' solvers, built from the model's own scheduler config (the trained noise schedule, epsilon prediction).

=================  ================================================================================================
name               sampler
=================  ================================================================================================
``official-ddim``  :class:`~p2g3d.pipelines.official_ddim.OfficialDDIMScheduler`: the official timesteps and step
``ddim-trailing``  diffusers' ``DDIMScheduler`` with "trailing" timesteps (the last step reaches t = 999)
``dpmpp-2m``       ``DPMSolverMultistepScheduler``, DPM-Solver++ (2M), the usual few-step choice for eps models
``unipc``          ``UniPCMultistepScheduler`` (bh2)
``euler``          ``EulerDiscreteScheduler`` (sigma-space Euler)
``lcm``            ``LCMScheduler``: the sampler of consistency-distilled students (``p2g3d distill``), which save it
=================  ================================================================================================

A model folder's own scheduler (``scheduler/`` beside the weights) is used when none is named, so a model saved with
a sampler samples with it: converted models with the official DDIM, distilled students with ``LCMScheduler``.

Classifier-free guidance is the pipeline's (the guided eps goes to the solver's step), so every sampler applies it
the same way; ``eta`` reaches only the samplers that take it (the DDIM ones).
"""

from __future__ import annotations

from .errors import InputError

SCHEDULERS = ("official-ddim", "ddim-trailing", "dpmpp-2m", "unipc", "euler", "lcm")


def make_scheduler(name: str, config):
    """The scheduler ``name`` (module table) for a model whose scheduler config is ``config``."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerDiscreteScheduler,
        LCMScheduler,
        UniPCMultistepScheduler,
    )

    from .pipelines.official_ddim import OfficialDDIMScheduler

    if name == "official-ddim":
        return OfficialDDIMScheduler.from_config(config)
    if name == "ddim-trailing":
        return DDIMScheduler.from_config(config, timestep_spacing="trailing")
    if name == "dpmpp-2m":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2)
    if name == "unipc":
        return UniPCMultistepScheduler.from_config(config)
    if name == "euler":
        return EulerDiscreteScheduler.from_config(config)
    if name == "lcm":
        return LCMScheduler.from_config(config)
    raise InputError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {name!r}")


def with_scheduler(pipeline, name: str | None):
    """``pipeline`` itself when ``name`` is None, else a pipeline sharing its modules with the scheduler ``name``
    (the given pipeline is left as it is)."""
    if name is None:
        return pipeline
    scheduler = make_scheduler(name, pipeline.scheduler.config)
    swapped = type(pipeline)(
        **{**pipeline.components, "scheduler": scheduler}, sampling_defaults=pipeline.sampling_defaults
    )
    return swapped.to(pipeline.device)


def check_step_count(scheduler, num_inference_steps: int) -> None:
    """Refuse a step count ``scheduler`` cannot run: the official DDIM needs 2 or more (at 1 it would run no UNet
    call); the others, a distilled student's ``LCMScheduler`` included, take 1."""
    from .pipelines.official_ddim import OfficialDDIMScheduler, official_ddim_timesteps

    if isinstance(scheduler, OfficialDDIMScheduler):
        official_ddim_timesteps(num_inference_steps, scheduler.config.num_train_timesteps)
