"""The examples amodal evaluation scores, from a pix2gestalt dataset folder or a benchmark annotation file.

Both sources become :class:`EvalItem` s (one image and its objects, JSON-ready, so the batch engines can carry them),
and :func:`load_examples` turns an item into :class:`AmodalExample` s: the masks decoded, fully hidden objects skipped
or given their amodal box (``empty_visible``), counted either way. :class:`FolderExamples` and
:class:`AnnotationExamples` iterate over them for the in-process path (:func:`~.amodal.evaluate_amodal`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..datasets import GestaltDataset
from ..errors import InputError
from ..io import decode_segmentation, load_image, load_mask
from .readers import read_annotation_file

EMPTY_VISIBLE_RULES = ("skip", "amodal-box")


@dataclass(frozen=True, eq=False)
class AmodalExample:
    """An image, one object's visible mask and its ground-truth amodal mask (``(H, W)`` bool); ``item_id`` and
    ``object_index`` place it in the seed rule; ``factors``: what the example shows, when its dataset says (see
    :mod:`p2g3d.training.composite`); ``category``: its category name, when the file says; ``image_path``: the
    image file, when there is one (reports show it)."""

    image: np.ndarray
    visible_mask: np.ndarray
    amodal_mask: np.ndarray
    item_id: str | int = 0
    object_index: int = 0
    factors: dict | None = None
    category: str | None = None
    image_path: str | None = None


@dataclass(frozen=True)
class EvalObject:
    """One object to evaluate: its number in the seed rule, its masks (a COCO segmentation, a mask file path, or
    None for "the amodal mask" as visible), its category and factors."""

    index: int
    visible: object
    amodal: object
    category: str | None = None
    factors: dict | None = None


@dataclass(frozen=True)
class EvalItem:
    """One image and its objects to evaluate (the image's file stem is its item id in the seed rule); ``height`` and
    ``width`` decode its COCO segmentations (0 for mask files)."""

    item_id: str
    image: str
    height: int
    width: int
    objects: tuple[EvalObject, ...]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> EvalItem:
        fields = json.loads(text)
        return cls(**{**fields, "objects": tuple(EvalObject(**o) for o in fields["objects"])})


def items_from_annotations(file, image_root: str | os.PathLike, *, things_only: bool = False):
    """The :class:`EvalItem` of each image of a read annotation file (:class:`~p2g3d.evaluation.readers
    .AnnotationFile`) and the ``{reason: count}`` of objects left out (no ground truth, stuff)."""
    skipped: Counter = Counter(file.skipped)
    items = []
    for image in file.images:
        objects = []
        for index, obj in enumerate(image.objects):
            if obj.amodal is None:
                skipped["no amodal ground truth"] += 1
            elif things_only and obj.is_stuff:
                skipped["stuff region"] += 1
            else:
                objects.append(EvalObject(index, obj.visible, obj.amodal, obj.category))
        if objects:
            path = str(Path(image_root) / image.file_name)
            items.append(EvalItem(image.stem, path, image.height, image.width, tuple(objects)))
    return items, dict(skipped)


def items_from_folder(folder: str | os.PathLike) -> list[EvalItem]:
    """One :class:`EvalItem` per sample of a pix2gestalt dataset folder (its occluded scene, visible and whole
    masks, factors)."""
    dataset = GestaltDataset(folder)
    root, items = dataset.folder, []
    for name, factors in zip(dataset.names, dataset.factors):
        obj = EvalObject(0, str(root / "visible_object_mask" / name), str(root / "whole_mask" / name), None, factors)
        items.append(EvalItem(Path(name).stem, str(root / "occlusion" / name), 0, 0, (obj,)))
    return items


def box_mask(mask: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool filling the bounding box of ``mask``'s True pixels."""
    rows, cols = np.nonzero(mask)
    box = np.zeros_like(mask, dtype=bool)
    if len(rows):
        box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    return box


def load_examples(item: EvalItem, empty_visible: str = "skip") -> tuple[list[AmodalExample], Counter, Counter]:
    """The item's examples (masks decoded, the ``empty_visible`` rule applied; the image read once) and the
    ``{reason: count}`` of objects skipped and ``{rule: count}`` of visible masks replaced."""
    skipped, replaced = Counter(), Counter()
    image, examples = None, []
    for obj in item.objects:
        try:
            amodal = _mask(obj.amodal, item)
            visible = amodal if obj.visible is None else _mask(obj.visible, item)
        except InputError:
            skipped["undecodable segmentation"] += 1
            continue
        if not visible.any():
            if empty_visible == "skip":
                skipped["empty visible mask"] += 1
                continue
            visible = box_mask(amodal)
            replaced[empty_visible] += 1
        image = load_image(item.image) if image is None else image
        examples.append(
            AmodalExample(image, visible, amodal, item.item_id, obj.index, obj.factors, obj.category, item.image)
        )
    return examples, skipped, replaced


def _mask(mask, item: EvalItem) -> np.ndarray:
    return load_mask(mask) if isinstance(mask, str) else decode_segmentation(mask, item.height, item.width)


class ItemExamples:
    """The examples of some :class:`EvalItem` s, item by item (:func:`load_examples`); ``skipped`` and ``replaced``
    count what was left out or changed, filled as they are read."""

    def __init__(self, items: list[EvalItem], skipped: dict | None = None, empty_visible: str = "skip"):
        if empty_visible not in EMPTY_VISIBLE_RULES:
            raise InputError(f"empty_visible must be one of {', '.join(EMPTY_VISIBLE_RULES)}, got {empty_visible!r}")
        self.items, self.empty_visible = items, empty_visible
        self.skipped: Counter = Counter(skipped or {})
        self.replaced: Counter = Counter()

    def __len__(self) -> int:
        return sum(len(item.objects) for item in self.items)

    def __iter__(self) -> Iterator[AmodalExample]:
        for item in self.items:
            examples, skipped, replaced = load_examples(item, self.empty_visible)
            self.skipped.update(skipped)
            self.replaced.update(replaced)
            yield from examples


class FolderExamples(ItemExamples):
    """The examples of a pix2gestalt dataset folder (occluded scene, visible mask, whole mask; item id: the sample's
    name), with their factors; the folder is checked at once, the samples are read one by one."""

    def __init__(self, folder: str | os.PathLike):
        super().__init__(items_from_folder(folder))


class AnnotationExamples(ItemExamples):
    """The examples of an annotation file (:mod:`.readers`: amodalAPI, KINS, COCOA-cls), one per object with both
    masks; item id: the image's file stem, object index: the object's position in its image. The file is read and
    checked at once; images are read one by one, once each.

    Args:
        annotation_file, image_root: the file and the folder its file names are relative to.
        layout: one of :data:`~.readers.LAYOUTS`, or None to detect it.
        empty_visible: what to do with an object whose visible mask is empty (fully hidden): ``"skip"`` it, or use
            its ``"amodal-box"`` (the bounding box of the amodal mask, as PCNet's evaluation locates such objects)
            as the visible mask.
        things_only: leave out the regions the file marks as stuff (amodalAPI ``isStuff``).
    """

    def __init__(
        self,
        annotation_file: str | os.PathLike,
        image_root: str | os.PathLike,
        *,
        layout: str | None = None,
        empty_visible: str = "skip",
        things_only: bool = False,
    ):
        file = read_annotation_file(annotation_file, layout)
        items, skipped = items_from_annotations(file, image_root, things_only=things_only)
        if not items:
            raise InputError(f"{annotation_file} holds no object with an amodal ground truth")
        super().__init__(items, skipped, empty_visible)
        self.layout = file.layout
