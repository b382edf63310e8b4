"""Training data in pix2gestalt's format, and the dataset that reads it.

A dataset folder holds four sub-folders of same-named PNG files, as in the released pix2gestalt data:

=========================  ==================================================================================
``occlusion/NAME.png``     the occluded scene, ``(H, W, 3)`` RGB
``whole/NAME.png``         the whole object on white at its place and size in the scene frame, RGB
``whole_mask/NAME.png``    the whole (amodal) mask, 0 / 255
``visible_object_mask/``   the visible (modal) mask, 0 / 255
=========================  ==================================================================================

Users fill such a folder with their own pairs; :func:`write_synthetic_dataset` fills it from the project's synthetic
occluded scenes (:mod:`p2g3d.scenes`): random procedural objects seen from random cameras, each sample with its own
occluder hiding 20-60% of the object. Deterministic by seed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..cameras import intrinsics_from_fov, orbit_camera
from ..io import (
    check_output_folder,
    check_replaceable,
    load_image,
    load_mask,
    png_bytes,
    publish_folder,
    save_json,
    staging_folder,
    write_files_atomic,
)

FOLDERS = ("occlusion", "whole", "whole_mask", "visible_object_mask")


@dataclass(frozen=True, eq=False)
class GestaltSample:
    """One training pair: ``occluded`` and ``whole`` ``(H, W, 3)`` uint8; ``whole_mask``, ``visible_mask``
    ``(H, W)`` bool."""

    occluded: np.ndarray
    whole: np.ndarray
    whole_mask: np.ndarray
    visible_mask: np.ndarray


def synthetic_samples(
    seed: int,
    count: int,
    image_size: int = 64,
    samples_per_target: int = 4,
    occlusion_range: tuple[float, float] = (0.2, 0.6),
) -> Iterator[GestaltSample]:
    """``count`` samples from synthetic scenes: each target is seen from ``samples_per_target`` random cameras,
    each with its own occluder."""
    from ..scenes import contact_test, make_target, place_occluder  # the 3D stack loads on use

    rng = np.random.default_rng(seed)
    K = intrinsics_from_fov(40.0, image_size, image_size)
    produced = 0
    while produced < count:
        target = make_target(rng)
        touches = contact_test(target)
        for _ in range(samples_per_target):
            camera = orbit_camera(rng.uniform(-10, 50), rng.uniform(0, 360), rng.uniform(1.7, 2.5), K, image_size, image_size)
            placed = place_occluder(rng, target, [camera], occlusion_range, max_tries=100, touches=touches)
            if placed is not None:
                _, (scene,), (whole,) = placed
                yield GestaltSample(scene.rgb, whole.rgb, whole.mask(0), scene.mask(0))
                produced += 1
            if produced >= count:
                return


def write_dataset(
    samples, folder: str | os.PathLike, metadata: dict | None = None, *, overwrite: bool = False, total: int | None = None
) -> Path:
    """Write samples as ``NNNNNN.png`` in the four sub-folders, plus ``dataset.json`` (progress bar over ``total``).

    The dataset is written to ``.NAME.partial`` and moved into place when complete. An existing non-empty folder
    is replaced only with ``overwrite`` and only if it is an earlier dataset written here (``dataset.json`` and the
    four sub-folders, nothing else).
    """
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty (use --overwrite to replace an earlier dataset)")
    check_replaceable(folder, "dataset.json", {"dataset.json", *FOLDERS})
    check_output_folder(folder.parent)
    staging = staging_folder(folder)
    count = 0
    for index, sample in enumerate(tqdm(samples, total=total, desc="writing samples", unit="sample")):
        name = f"{index:06d}.png"
        images = (sample.occluded, sample.whole, sample.whole_mask, sample.visible_mask)
        write_files_atomic({staging / sub / name: png_bytes(image) for sub, image in zip(FOLDERS, images)})
        count += 1
    save_json(staging / "dataset.json", {"format": "pix2gestalt", "count": count, **(metadata or {})})
    return publish_folder(staging, folder)


def write_synthetic_dataset(
    folder: str | os.PathLike, count: int, seed: int = 0, image_size: int = 64, *, overwrite: bool = False
) -> Path:
    """Generate and write ``count`` synthetic samples (progress bar)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"image_size must be an int of at least 16 pixels, got {image_size!r}")
    metadata = {"source": "p2g3d synthetic scenes", "seed": seed, "image_size": image_size}
    return write_dataset(synthetic_samples(seed, count, image_size), folder, metadata, overwrite=overwrite, total=count)


class GestaltDataset:
    """A dataset folder (see the module docstring) as a sequence of :class:`GestaltSample`.

    Raises ValueError when a sub-folder is missing or the four folders do not hold the same file names.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        missing = [name for name in FOLDERS if not (self.folder / name).is_dir()]
        if missing:
            raise ValueError(f"{self.folder} is not a pix2gestalt dataset folder: missing {', '.join(missing)}/")
        names = [sorted(p.name for p in (self.folder / sub).glob("*.png")) for sub in FOLDERS]
        if any(n != names[0] for n in names[1:]):
            raise ValueError(f"{self.folder}: the sub-folders {FOLDERS} must hold the same file names")
        if not names[0]:
            raise ValueError(f"{self.folder} holds no samples")
        self.names = names[0]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> GestaltSample:
        name = self.names[index]
        return GestaltSample(
            occluded=load_image(self.folder / "occlusion" / name),
            whole=load_image(self.folder / "whole" / name),
            whole_mask=load_mask(self.folder / "whole_mask" / name),
            visible_mask=load_mask(self.folder / "visible_object_mask" / name),
        )
