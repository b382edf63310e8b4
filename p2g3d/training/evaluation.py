"""Amodal segmentation evaluation: mIoU as in the pix2gestalt paper (Table 1); and novel-view mask IoU of a
Zero-1-to-3 model (:func:`evaluate_novel_views`).

For every object the completer draws N samples. Reported:

* ``single``: the first sample's amodal mask;
* ``vote``: the per-pixel majority over the N samples (united with the visible mask), what ``AmodalCompleter``
  returns and what the paper's main numbers use;
* ``best_of_n``: the best of the N samples against the ground truth (the paper's "best of 3");
* baselines ``visible`` (the visible mask as the amodal mask) and ``convex_hull`` (its convex hull).

mIoU is the mean over objects of the IoU with the ground-truth amodal mask, in percent.

Data: a pix2gestalt dataset folder (:class:`p2g3d.training.data.GestaltDataset`, e.g. the synthetic held-out set), or
COCOA-style annotation files (COCO json whose annotations hold the amodal ``segmentation`` as polygons or RLE and
the visible ``inmodal_seg``, as in the COCOA / BSDS-A releases used by PCNet and the paper), decoded by pycocotools.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..io import decode_segmentation, load_image
from ..masks import mask_iou
from .data import GestaltDataset

METHODS = ("single", "vote", "best_of_n", "visible", "convex_hull")


@dataclass(frozen=True, eq=False)
class AmodalExample:
    """An image, one object's visible mask and its ground-truth amodal mask (``(H, W)`` bool); ``factors``: what the
    example shows, when its dataset says (see :mod:`p2g3d.training.composite`)."""

    image: np.ndarray
    visible_mask: np.ndarray
    amodal_mask: np.ndarray
    factors: dict | None = None


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool convex hull of the True pixels."""
    from skimage.morphology import convex_hull_image

    return convex_hull_image(mask) if mask.any() else mask.copy()


def examples_from_folder(folder: str | os.PathLike) -> Iterator[AmodalExample]:
    """Examples of a pix2gestalt dataset folder (occluded scene, visible mask, whole mask); the folder is checked
    at once, the samples are read one by one."""
    dataset = GestaltDataset(folder)
    return (AmodalExample(s.occluded, s.visible_mask, s.whole_mask, s.factors) for s in dataset)


def examples_from_cocoa(annotation_file: str | os.PathLike, image_root: str | os.PathLike) -> Iterator[AmodalExample]:
    """Examples of a COCOA-style annotation file: one per annotation with both ``segmentation`` (amodal) and
    ``inmodal_seg`` (visible). The file is read and checked at once; images are read one by one."""
    path = Path(annotation_file)
    if not path.is_file():
        raise FileNotFoundError(f"no such annotation file: {path}")
    try:
        data = json.loads(path.read_text())
        images = {image["id"]: image for image in data.get("images", [])}
        annotations = [a for a in data.get("annotations", []) if "inmodal_seg" in a and "segmentation" in a]
        infos = [images[a["image_id"]] for a in annotations]
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as error:
        raise ValueError(
            f"{path} is not a COCOA-style annotation file ({error.__class__.__name__}: {error})"
        ) from error
    if not annotations:
        raise ValueError(f"{path} holds no annotation with both 'segmentation' and 'inmodal_seg'")
    return (
        AmodalExample(
            load_image(Path(image_root) / info["file_name"]),
            decode_segmentation(annotation["inmodal_seg"], info["height"], info["width"]),
            decode_segmentation(annotation["segmentation"], info["height"], info["width"]),
        )
        for annotation, info in zip(annotations, infos)
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
        (result,) = completer(example.image, example.visible_mask, seed=seed + index, show_progress=False)
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
        raise ValueError("no example with a non-empty visible mask to evaluate")
    summary = {name: _summary(values) for name, values in scores.items()}
    result = {**summary.pop("all"), "samples": completer.settings.num_samples}
    if group_by is not None:
        result["groups"] = dict(sorted(summary.items()))
    return result


def _summary(scores: dict[str, list[float]]) -> dict:
    return {**{f"miou_{m}": 100.0 * float(np.mean(v)) for m, v in scores.items()}, "objects": len(scores["vote"])}


def evaluate_novel_views(
    pipe,
    dataset,
    *,
    targets_per_object: int = 3,
    num_inference_steps: int = 20,
    guidance_scale: float = 3.0,
    seed: int = 0,
    limit: int | None = None,
) -> dict:
    """Novel-view quality of a Zero-1-to-3 model on a multi-view dataset
    (:class:`~p2g3d.training.multiview.MultiViewDataset`).

    For each object, view 0 is the input and views ``1 .. targets_per_object`` are generated at the dataset's
    image size from their relative poses (seeded by object and view); the generated view's mask (gray <= 250) is
    compared with the true render's.
    Reported, as mean IoU in percent: ``generated`` and the baseline ``input_silhouette`` (the input view's mask
    taken as the target view's mask: what a model that ignores the pose would score).
    """
    import torch

    from ..masks import amodal_mask_from_whole
    from ..pipelines.image_processing import to_uint8
    from ..sampling import derive_seed
    from .multiview import relative_poses

    scores: dict[str, list[float]] = {"generated": [], "input_silhouette": []}
    count = len(dataset) if limit is None else min(limit, len(dataset))
    for index in tqdm(range(count), desc="novel views", unit="object"):
        views = dataset[index]
        targets = list(range(1, min(1 + targets_per_object, len(views.images))))
        poses = relative_poses(np.repeat(views.centers[:1], len(targets), 0), views.centers[targets])
        size = views.images.shape[1]
        generators = [torch.Generator().manual_seed(derive_seed(seed, index, t)) for t in targets]
        output = pipe(
            image=views.images[0],
            polar=poses[:, 0].tolist(),
            azimuth=poses[:, 1].tolist(),
            radius=poses[:, 2].tolist(),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generators,
            output_type="pt",
            height=size,
            width=size,
        )
        generated = amodal_mask_from_whole(to_uint8(output.images))
        truth = amodal_mask_from_whole(views.images[targets])
        source = amodal_mask_from_whole(views.images[0])
        for mask, true_mask in zip(generated, truth):
            scores["generated"].append(mask_iou(mask, true_mask))
            scores["input_silhouette"].append(mask_iou(source, true_mask))
    return {
        "objects": count,
        "views": len(scores["generated"]),
        **{f"miou_{m}": 100.0 * float(np.mean(v)) for m, v in scores.items()},
    }
