"""``p2g3d make-data``: synthetic occluded-object pairs in pix2gestalt's folder format."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..settings import option
from ..training.composite import FACTOR_SETS, write_synthetic_dataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MakeDataJob:
    """Settings of :func:`run_make_data` (the ``p2g3d make-data`` options), checked by
    :func:`~p2g3d.training.composite.write_synthetic_dataset` before anything is written."""

    output: Path = option(None, "output", "dataset folder to write", type=Path)
    count: int = option(1000, "--count", "samples")
    seed: int = option(0, "--seed", "seed of the generator")
    image_size: int = option(64, "--image-size", "image side in pixels")
    factors: str = option(
        "train",
        "--factors",
        "'train': training factors only; 'held-out': each sample shows one factor left out of training",
        choices=FACTOR_SETS,
    )
    overwrite: bool = option(False, "--overwrite", "replace an earlier dataset in the output folder")


def run_make_data(job: MakeDataJob) -> dict:
    """Write ``job.count`` samples to ``job.output``."""
    folder = write_synthetic_dataset(
        job.output, job.count, seed=job.seed, image_size=job.image_size, factors=job.factors, overwrite=job.overwrite
    )
    logger.info("wrote %d samples to %s", job.count, folder)
    return {"output": str(folder), "samples": job.count}
