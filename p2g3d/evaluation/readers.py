"""Annotation files of amodal benchmarks, read once for evaluation and for ``p2g3d batch``.

COCO-style files (the COCOA-cls / D2SA layout): ``images`` (``id``, ``file_name``, ``height``, ``width``) and
``annotations`` (``id``, ``image_id``), where an annotation's ``segmentation`` is the AMODAL mask and
``inmodal_seg`` the VISIBLE one, each as polygons or RLE (decoded by pycocotools,
:func:`p2g3d.io.decode_segmentation`). Images keep the file's order, and so do each image's annotations: an
object's position among its image's annotations is its number in the seed rule (:mod:`p2g3d.sampling`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

AMODAL_FIELD = "segmentation"
VISIBLE_FIELD = "inmodal_seg"


@dataclass(frozen=True)
class AnnotatedImage:
    """One image of an annotation file and its annotations (the file's dicts, in the file's order)."""

    image_id: object
    file_name: str
    height: int
    width: int
    annotations: tuple[dict, ...]

    @property
    def stem(self) -> str:
        """The image's file stem: its item id in the seed rule."""
        return Path(self.file_name).stem


def visible_segmentation(annotation: dict):
    """The visible mask of an annotation: ``inmodal_seg``, or ``segmentation`` where there is none (files that
    annotate only what is seen)."""
    return annotation.get(VISIBLE_FIELD, annotation.get(AMODAL_FIELD))


def read_annotation_file(path: str | os.PathLike) -> list[AnnotatedImage]:
    """The images of a COCO-style annotation file with their annotations; InputError if the file is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such annotation file: {path}")
    try:
        data = json.loads(path.read_text())
        annotations: dict = {image["id"]: [] for image in data["images"]}
        for annotation in data["annotations"]:
            annotations[annotation["image_id"]].append(annotation)
        return [
            AnnotatedImage(
                image["id"],
                image["file_name"],
                int(image["height"]),
                int(image["width"]),
                tuple(annotations[image["id"]]),
            )
            for image in data["images"]
        ]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as error:
        raise InputError(
            f"{path} is not a COCO-style annotation file (expected 'images' with id, file_name, height, width and "
            f"'annotations' with image_id; {error.__class__.__name__}: {error})"
        ) from error
