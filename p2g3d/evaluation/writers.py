"""A pix2gestalt dataset folder written as a benchmark annotation file (:mod:`.readers` layouts), so that the same
held-out objects can be evaluated through each reader.

Images are the folder's ``occlusion/NAME.png`` (file names relative to the dataset folder). ``cocoa-cls`` stores the
masks as RLE, exactly; ``amodalapi`` and ``kins`` store polygons, as the real files do, traced along the mask
outlines (scikit-image, subpixel), so their masks differ from the originals at the edges (the amodalAPI
``visible_mask`` stays RLE).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..datasets import GestaltDataset
from ..errors import InputError
from ..io import encode_rle, save_json
from .readers import LAYOUTS


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """The outlines of ``mask``'s parts as COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` (pixel corners), each of at
    least 3 points."""
    from skimage.measure import find_contours

    padded = np.pad(mask.astype(np.float32), 1)
    polygons = []
    for contour in find_contours(padded, 0.5):
        if len(contour) < 3:
            continue
        xy = np.stack([contour[:, 1] - 0.5, contour[:, 0] - 0.5], axis=1)  # (row, col) -> pixel-corner (x, y)
        polygons.append(np.round(xy, 2).ravel().tolist())
    return polygons


def write_annotation_file(dataset_folder: str | os.PathLike, layout: str, path: str | os.PathLike) -> Path:
    """Write the samples of a pix2gestalt dataset folder as an annotation file in ``layout``; returns ``path``."""
    if layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    dataset = GestaltDataset(dataset_folder)
    images, annotations = [], []
    for index, (name, sample) in enumerate(zip(dataset.names, dataset)):
        height, width = sample.visible_mask.shape
        images.append({"id": index, "file_name": f"occlusion/{name}", "height": height, "width": width})
        amodal, visible = sample.whole_mask, sample.visible_mask
        factors = sample.factors or {}
        category = str(factors.get("shape", "object"))
        if layout == "cocoa-cls":
            annotations.append(
                {
                    "id": index,
                    "image_id": index,
                    "category_id": category,
                    "segmentation": encode_rle(amodal),
                    "inmodal_seg": encode_rle(visible),
                }
            )
        elif layout == "kins":
            annotations.append(
                {
                    "id": index,
                    "image_id": index,
                    "category_id": category,
                    "a_segm": mask_polygons(amodal),
                    "i_segm": mask_polygons(visible),
                }
            )
        else:
            region = {
                "id": index,
                "segmentation": max(mask_polygons(amodal), key=len, default=[]),
                "name": category,
                "isStuff": 0,
                "order": 1,
            }
            if (visible != amodal).any():
                region["visible_mask"] = encode_rle(visible)
            annotations.append({"id": index, "image_id": index, "regions": [region]})
    return save_json(path, {"images": images, "annotations": annotations})
