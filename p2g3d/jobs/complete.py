"""``p2g3d complete``: amodal completion of the objects of one image, written as a folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..settings import CompletionSettings, ModelSettings, RuntimeSettings, nested, option
from .stages import load_completer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompleteJob:
    """Settings of :func:`run_complete` (the ``p2g3d complete`` options)."""

    image: Path = option(None, "image", "scene image (8-bit PNG / JPEG)", type=Path)
    masks: list[Path] = option([], "--mask", "visible mask (repeatable)", type=Path, action="append", required=True)
    output: Path = option(None, "--output", "output folder", type=Path, required=True)
    model: ModelSettings = nested(ModelSettings)
    completion: CompletionSettings = nested(CompletionSettings)
    runtime: RuntimeSettings = nested(RuntimeSettings)


def run_complete(job: CompleteJob) -> dict:
    """Complete every object of ``job.image`` (item id: the image's file stem, :mod:`p2g3d.sampling`) and write
    ``object_NN_*.png`` and ``summary.json`` to ``job.output``; returns the summary."""
    from ..io import check_output_folder, load_image, load_mask, object_masks
    from .completion_files import write_completion

    image = load_image(job.image)
    masks = [load_mask(path) for path in job.masks]
    object_masks(masks, *image.shape[:2])  # every mask is checked before the model loads
    check_output_folder(job.output, min_free_bytes=4 * image.nbytes * len(masks))
    completer = load_completer(job.model, job.completion, job.runtime)
    item = Path(job.image).stem
    results = completer(image, masks, seed=job.runtime.seed, item=item)
    summary = {
        "image": str(job.image),
        "model": job.model.identity,
        "seed": job.runtime.seed,
        "item": item,
        "settings": vars(job.completion),
    }
    objects = write_completion(job.output, image, results, [str(path) for path in job.masks], summary)
    logger.info("wrote %d object(s) to %s", len(results), job.output)
    return {"output": str(job.output), "objects": len(objects)}
