"""Seeds, seeded noise, batching and the sampling settings, shared by every sampling stage (amodal completion,
novel views, jobs).

Every (item, sample) pair gets its own generator seeded from ``(seed, item, sample)``, so a result does not depend
on the batch it ran in, and jobs derive the seed of each scene and view from the run's seed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from .framing import FRAMINGS
from .masks import MASK_RULES
from .validation import check_number

T = TypeVar("T")


def derive_seed(seed: int, *keys: int) -> int:
    """Independent, reproducible 63-bit seed for ``keys`` (e.g. object and sample index) under the base ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0 or any(key < 0 for key in keys):
        raise ValueError(f"seed and keys must be non-negative, got seed={seed}, keys={keys}")
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def batched(items: Sequence[T], batch_size: int) -> list[Sequence[T]]:
    """``items`` cut into consecutive batches of at most ``batch_size``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return [items[start : start + batch_size] for start in range(0, len(items), batch_size)]


def seeded_noise(pipeline, seeds: Sequence[int]):
    """One CPU generator per seed (from :func:`derive_seed` of the item and sample) and the starting noise
    ``(len(seeds), C, h, w)`` float32 drawn from them, for ``pipeline``'s default working size: a sample's noise
    does not depend on the batch it runs in."""
    import torch

    side = pipeline.default_size // pipeline.vae_scale_factor
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    shape = (pipeline.unet.config.out_channels, side, side)
    return generators, torch.stack([torch.randn(shape, generator=g) for g in generators])


@dataclass(frozen=True)
class SamplingSettings:
    """Settings every diffusion stage shares. The command line is generated from these fields (``flag`` and
    ``help`` in each field's metadata), so a default lives here and nowhere else."""

    num_inference_steps: int = field(default=50, metadata={"flag": "--steps", "help": "DDIM steps"})
    guidance_scale: float = field(
        default=2.0, metadata={"flag": "--guidance", "help": "classifier-free guidance scale"}
    )
    eta: float = field(default=1.0, metadata={"flag": "--eta", "help": "DDIM eta (1 official, 0 deterministic)"})
    batch_size: int = field(default=8, metadata={"flag": "--batch-size", "help": "(item, sample) pairs per model call"})

    def __post_init__(self):
        check_number(self, "num_inference_steps", integer=True, low=2, high=1000)
        check_number(self, "batch_size", integer=True, low=1)
        check_number(self, "guidance_scale")
        check_number(self, "eta", low=0)


@dataclass(frozen=True)
class CompletionSettings(SamplingSettings):
    """Settings of :class:`AmodalCompleter` (the ``p2g3d complete`` options are generated from these fields).

    Attributes:
        num_samples: samples per object, voted per pixel (the paper votes over several).
        num_inference_steps: requested DDIM steps (official default 200; 50 is close and 4x faster).
        guidance_scale: classifier-free guidance (official 2.0).
        eta: DDIM eta (official 1.0).
        framing: ``"squash"`` (official, whole image resized to the square) or ``"pad"`` (aspect kept).
        mask_rule: ``"rgb"`` (correct RGB->gray, default) or ``"official"`` (the official channel-swapped gray).
        batch_size: (object, sample) pairs per pipeline call; lower it when memory is short.
        keep_detached: keep the parts of a sample's mask not connected to the visible mask (the official read keeps
            every pixel; by default only the object attached to its visible part is kept).
    """

    num_samples: int = field(default=4, metadata={"flag": "--samples", "help": "samples per object, voted per pixel"})
    framing: str = field(
        default="squash", metadata={"flag": "--framing", "choices": FRAMINGS, "help": "squash is official"}
    )
    mask_rule: str = field(
        default="rgb", metadata={"flag": "--mask-rule", "choices": MASK_RULES, "help": "gray rule for masks"}
    )
    keep_detached: bool = field(
        default=False, metadata={"flag": "--keep-detached", "help": "keep mask parts not connected to the visible mask"}
    )

    def __post_init__(self):
        super().__post_init__()
        check_number(self, "num_samples", integer=True, low=1)
        if self.framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, got {self.framing!r}")
        if self.mask_rule not in MASK_RULES:
            raise ValueError(f"mask_rule must be one of {MASK_RULES}, got {self.mask_rule!r}")
