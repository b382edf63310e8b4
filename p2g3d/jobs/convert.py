"""``p2g3d convert``: an official pix2gestalt / Zero-1-to-3 checkpoint -> a diffusers folder (safetensors)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..settings import DTYPES, UNET_WEIGHTS, option
from ..validation import check_choice

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ConvertJob:
    """Settings of :func:`run_convert` (the ``p2g3d convert`` options)."""

    checkpoint: Path = option(
        None,
        "checkpoint",
        "official Lightning .ckpt: pix2gestalt (epoch=000005.ckpt) or Zero-1-to-3 (105000.ckpt, zero123-xl.ckpt)",
        type=Path,
    )
    output_dir: Path = option(None, "output_dir", "folder to write (diffusers layout, safetensors)", type=Path)
    config: Path | None = option(None, "--config", "official yaml (default: the packaged one)", type=Path)
    dtype: str = option("fp32", "--dtype", "weights dtype", choices=DTYPES)
    overwrite: bool = option(False, "--overwrite", "replace a non-empty output folder")
    unet_weights: str = option(
        "ema",
        "--unet-weights",
        "EMA (default, what official inference uses) or raw, for checkpoints saved without EMA",
        choices=UNET_WEIGHTS,
    )

    def __post_init__(self):
        check_choice(self, "dtype", DTYPES)
        check_choice(self, "unet_weights", UNET_WEIGHTS)


def run_convert(job: ConvertJob) -> dict:
    """Convert ``job.checkpoint`` into ``job.output_dir``; returns where it went."""
    from ..convert import convert_checkpoint

    output = convert_checkpoint(
        job.checkpoint, job.output_dir, job.config, job.dtype, job.overwrite, unet_weights=job.unet_weights
    )
    logger.info("wrote %s", output)
    return {"output": str(output)}
