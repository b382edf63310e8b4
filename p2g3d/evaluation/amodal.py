"""Amodal segmentation evaluation: mIoU as in the pix2gestalt paper (Table 1), with baselines.

For every object the completer draws N samples. Reported:

* ``single``: the first sample's amodal mask;
* ``vote``: the per-pixel majority over the N samples (united with the visible mask), what ``AmodalCompleter``
  returns and what the paper's main numbers use;
* ``best_of_n``: the best of the N samples against the ground truth (the paper's "best of 3");
* baselines ``visible`` (the visible mask as the amodal mask) and ``convex_hull`` (its convex hull).

mIoU is the mean over objects of the IoU with the ground-truth amodal mask, in percent. Each object is completed
under the seed rule (:mod:`p2g3d.sampling`) with its example's ``item_id`` and ``object_index``, so it gets what
``p2g3d complete`` / ``p2g3d batch`` give the same object of the same image file.

Data: a pix2gestalt dataset folder (:class:`p2g3d.datasets.GestaltDataset`, e.g. the synthetic held-out set), or a
COCO-style annotation file (:mod:`.readers`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..datasets import GestaltDataset
from ..errors import InputError
from ..io import decode_segmentation, load_image
from ..masks import mask_iou
from .readers import AMODAL_FIELD, VISIBLE_FIELD, read_annotation_file

METHODS = ("single", "vote", "best_of_n", "visible", "convex_hull")


@dataclass(frozen=True, eq=False)
class AmodalExample:
    """An image, one object's visible mask and its ground-truth amodal mask (``(H, W)`` bool); ``item_id`` and
    ``object_index`` place it in the seed rule; ``factors``: what the example shows, when its dataset says (see
    :mod:`p2g3d.training.composite`)."""

    image: np.ndarray
    visible_mask: np.ndarray
    amodal_mask: np.ndarray
    item_id: str | int = 0
    object_index: int = 0
    factors: dict | None = None


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool convex hull of the True pixels."""
    from skimage.morphology import convex_hull_image

    return convex_hull_image(mask) if mask.any() else mask.copy()


def examples_from_folder(folder: str | os.PathLike) -> Iterator[AmodalExample]:
    """Examples of a pix2gestalt dataset folder (occluded scene, visible mask, whole mask; item id: the sample's
    name); the folder is checked at once, the samples are read one by one."""
    dataset = GestaltDataset(folder)
    return (
        AmodalExample(s.occluded, s.visible_mask, s.whole_mask, Path(name).stem, 0, s.factors)
        for name, s in zip(dataset.names, dataset)
    )


def examples_from_cocoa(annotation_file: str | os.PathLike, image_root: str | os.PathLike) -> Iterator[AmodalExample]:
    """Examples of a COCO-style annotation file: one per annotation with both ``segmentation`` (amodal) and
    ``inmodal_seg`` (visible); item id: the image's file stem, object index: the annotation's position in its
    image. The file is read and checked at once; images are read one by one."""
    images = read_annotation_file(annotation_file)
    selected = [
        (image, index, annotation)
        for image in images
        for index, annotation in enumerate(image.annotations)
        if VISIBLE_FIELD in annotation and AMODAL_FIELD in annotation
    ]
    if not selected:
        raise InputError(f"{annotation_file} holds no annotation with both {AMODAL_FIELD!r} and {VISIBLE_FIELD!r}")
    return (
        AmodalExample(
            load_image(Path(image_root) / image.file_name),
            decode_segmentation(annotation[VISIBLE_FIELD], image.height, image.width),
            decode_segmentation(annotation[AMODAL_FIELD], image.height, image.width),
            image.stem,
            index,
        )
        for image, index, annotation in selected
    )


def evaluate_amodal(
    completer, examples, *, seed: int = 0, limit: int | None = None, group_by: str | None = None
) -> dict:
    """mIoU (percent) of each method over the examples; ``completer.settings.num_samples`` samples per object.

    ``group_by``: also report each value of this factor on its own under ``"groups"`` (e.g. ``"held_out"`` for the
    out-of-distribution set, ``"shape"``); examples without the factor count as ``"unknown"``.
    """
    scores: dict[str, dict[str, list[float]]] = {}
    for index, example in enumerate(tqdm(examples, desc="amodal evaluation", unit="object")):
        if limit is not None and index >= limit:
            break
        if not example.visible_mask.any():
            continue
        (result,) = completer(
            example.image,
            example.visible_mask,
            seed=seed,
            item=example.item_id,
            object_ids=[example.object_index],
            show_progress=False,
        )
        truth = example.amodal_mask
        sample_ious = [mask_iou(mask | example.visible_mask, truth) for mask in result.sample_masks]
        row = {
            "single": sample_ious[0],
            "vote": mask_iou(result.amodal_mask, truth),
            "best_of_n": max(sample_ious),
            "visible": mask_iou(example.visible_mask, truth),
            "convex_hull": mask_iou(convex_hull(example.visible_mask), truth),
        }
        groups = ["all"]
        if group_by is not None:
            groups.append(str((example.factors or {}).get(group_by, "unknown")))
        for group in groups:
            for method, value in row.items():
                scores.setdefault(group, {m: [] for m in METHODS})[method].append(value)
    if "all" not in scores:
        raise InputError("no example with a non-empty visible mask to evaluate")
    summary = {name: _summary(values) for name, values in scores.items()}
    result = {**summary.pop("all"), "samples": completer.settings.num_samples}
    if group_by is not None:
        result["groups"] = dict(sorted(summary.items()))
    return result


def _summary(scores: dict[str, list[float]]) -> dict:
    return {**{f"miou_{m}": 100.0 * float(np.mean(v)) for m, v in scores.items()}, "objects": len(scores["vote"])}
