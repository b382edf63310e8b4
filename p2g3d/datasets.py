"""Datasets in pix2gestalt's folder format (training pairs, held-out evaluation sets): the writer and the reader.

A dataset folder holds four sub-folders of same-named PNG files, as in the released pix2gestalt data:

=========================  ==================================================================================
``occlusion/NAME.png``     the occluded scene, ``(H, W, 3)`` RGB
``whole/NAME.png``         the whole object on white at its place and size in the scene frame, RGB
``whole_mask/NAME.png``    the whole (amodal) mask, 0 / 255
``visible_object_mask/``   the visible (modal) mask, 0 / 255
=========================  ==================================================================================

plus ``dataset.json`` (count, source and, when known, each sample's ``factors``: what it shows). Users fill such a
folder with their own pairs; :func:`p2g3d.training.composite.write_synthetic_dataset` fills it with composited
synthetic samples.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .errors import InputError
from .io import (
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
    ``(H, W)`` bool; ``factors``: what the sample shows (shape, background, ...), when known."""

    occluded: np.ndarray
    whole: np.ndarray
    whole_mask: np.ndarray
    visible_mask: np.ndarray
    factors: dict | None = None


def write_dataset(
    samples,
    folder: str | os.PathLike,
    metadata: dict | None = None,
    *,
    overwrite: bool = False,
    total: int | None = None,
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
    factors = []
    for index, sample in enumerate(tqdm(samples, total=total, desc="writing samples", unit="sample")):
        name = f"{index:06d}.png"
        images = (sample.occluded, sample.whole, sample.whole_mask, sample.visible_mask)
        write_files_atomic({staging / sub / name: png_bytes(image) for sub, image in zip(FOLDERS, images)})
        factors.append(sample.factors)
    described = {"factors": factors} if any(f is not None for f in factors) else {}
    save_json(
        staging / "dataset.json", {"format": "pix2gestalt", "count": len(factors), **(metadata or {}), **described}
    )
    return publish_folder(staging, folder)


def described_factors(folder: Path, count: int) -> list:
    """The per-item ``factors`` list of ``folder/dataset.json`` when it describes ``count`` items, else Nones."""
    description = folder / "dataset.json"
    factors = json.loads(description.read_text()).get("factors") if description.is_file() else None
    return factors if isinstance(factors, list) and len(factors) == count else [None] * count


class GestaltDataset:
    """A dataset folder (see the module docstring) as a sequence of :class:`GestaltSample`.

    Raises ValueError when a sub-folder is missing or the four folders do not hold the same file names.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        missing = [name for name in FOLDERS if not (self.folder / name).is_dir()]
        if missing:
            raise InputError(f"{self.folder} is not a pix2gestalt dataset folder: missing {', '.join(missing)}/")
        names = [sorted(p.name for p in (self.folder / sub).glob("*.png")) for sub in FOLDERS]
        if any(n != names[0] for n in names[1:]):
            raise InputError(f"{self.folder}: the sub-folders {FOLDERS} must hold the same file names")
        if not names[0]:
            raise InputError(f"{self.folder} holds no samples")
        self.names = names[0]
        self.factors = described_factors(self.folder, len(self.names))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def factor_names(self) -> list[str]:
        """The factors ``dataset.json`` describes for its samples (e.g. ``shape``, ``held_out``), sorted."""
        return sorted({key for factors in self.factors if factors for key in factors})

    def __getitem__(self, index: int) -> GestaltSample:
        name = self.names[index]
        return GestaltSample(
            occluded=load_image(self.folder / "occlusion" / name),
            whole=load_image(self.folder / "whole" / name),
            whole_mask=load_mask(self.folder / "whole_mask" / name),
            visible_mask=load_mask(self.folder / "visible_object_mask" / name),
            factors=self.factors[index],
        )
