"""Seeds, seeded noise and batching, shared by every sampling stage (amodal completion, novel views) and job.

The one seed rule: sample ``j`` of object ``i`` of item ``item_id`` starts from the noise of
``derive_seed(seed, item_key(item_id), i, j)`` (:func:`sample_seed`), whatever the command, the batch it runs in,
the packing or the engine. ``seed`` is the run's base seed (``--seed``); the item id names the image:

* ``complete``, ``image-to-3d``: the image's file stem; ``batch``: the item id (a folder's or a COCO file's image
  file stem, a manifest's ``id``); ``eval-amodal``: the sample's name (dataset folder) or the image's file stem
  (annotation file), so every command completes the same object of the same image file alike;
* the 3D benchmarks: ``scene_S_view_V`` for view V of scene S; the Python API: ``item=`` (default 0).

``i`` is the object's position among the image's visible masks (label maps: increasing label). Stages after the
completion that draw noise per object (image-to-3D backends) use :func:`object_seed`, ``derive_seed(seed,
item_key(item_id), i)``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from .errors import InputError

T = TypeVar("T")


def derive_seed(seed: int, *keys: int) -> int:
    """Independent, reproducible 63-bit seed for ``keys`` (e.g. object and sample index) under the base ``seed``."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0 or any(key < 0 for key in keys):
        raise InputError(f"seed and keys must be non-negative, got seed={seed}, keys={keys}")
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1, dtype=np.uint64)[0] >> 1)


def item_key(item_id: str | int) -> int:
    """The integer that stands for an item in the seed rule: a non-negative int as it is, a string by its CRC-32
    (stable across processes, machines and Python versions)."""
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int, np.integer)):
        raise TypeError(f"an item id must be a str or an int, got {type(item_id).__name__}")
    if isinstance(item_id, str):
        return zlib.crc32(item_id.encode())
    if item_id < 0:
        raise InputError(f"an integer item id must be non-negative, got {item_id}")
    return int(item_id)


def sample_seed(seed: int, item_id: str | int, object_index: int, sample_index: int) -> int:
    """The seed of sample ``sample_index`` of object ``object_index`` of item ``item_id`` (module docstring)."""
    return derive_seed(seed, item_key(item_id), object_index, sample_index)


def object_seed(seed: int, item_id: str | int, object_index: int) -> int:
    """The seed of a per-object stage after completion (e.g. an image-to-3D backend) for that object."""
    return derive_seed(seed, item_key(item_id), object_index)


def batched(items: Sequence[T], batch_size: int) -> list[Sequence[T]]:
    """``items`` cut into consecutive batches of at most ``batch_size``."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
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
