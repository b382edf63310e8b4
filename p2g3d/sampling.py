"""Seeds, seeded noise, batching and the sampling settings, shared by every sampling stage (amodal completion, novel views, jobs).

Every (item, sample) pair gets its own generator seeded from ``(seed, item, sample)``, so a result does not depend
on the batch it ran in, and jobs derive the seed of each scene and view from the run's seed the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

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


def seeded_noise(pipeline, pairs: Sequence[tuple[int, int]], seed: int):
    """One CPU generator per ``(item, sample)`` pair, seeded by :func:`derive_seed`, and the starting noise
    ``(len(pairs), C, h, w)`` float32 drawn from them, for ``pipeline``'s default working size."""
    import torch

    side = pipeline.default_size // pipeline.vae_scale_factor
    generators = [torch.Generator("cpu").manual_seed(derive_seed(seed, i, j)) for i, j in pairs]
    shape = (pipeline.unet.config.out_channels, side, side)
    return generators, torch.stack([torch.randn(shape, generator=g) for g in generators])


@dataclass(frozen=True)
class SamplingSettings:
    """Settings every diffusion stage shares. The command line is generated from these fields (``flag`` and
    ``help`` in each field's metadata), so a default lives here and nowhere else."""

    num_inference_steps: int = field(default=50, metadata={"flag": "--steps", "help": "DDIM steps"})
    guidance_scale: float = field(default=2.0, metadata={"flag": "--guidance", "help": "classifier-free guidance scale"})
    eta: float = field(default=1.0, metadata={"flag": "--eta", "help": "DDIM eta (1 official, 0 deterministic)"})
    batch_size: int = field(default=8, metadata={"flag": "--batch-size", "help": "(item, sample) pairs per model call"})

    def __post_init__(self):
        for name in ("num_inference_steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        for name in ("guidance_scale", "eta"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.eta < 0:
            raise ValueError(f"eta must be >= 0, got {self.eta}")
