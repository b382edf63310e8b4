"""Batch inputs: the readers of the layouts ``p2g3d batch`` accepts, and the loading of one item.

* a JSONL manifest: one object per line, ``{"image": "a.jpg", "masks": ["a_cup.png", ...], "id": "optional"}``,
  paths relative to the manifest;
* an annotation file (``.json``) in any layout of :mod:`p2g3d.evaluation.readers` (COCO-A / BSDS-A amodalAPI,
  KINS, COCOA-cls or plain COCO; the reader evaluation uses) with its image folder: one item per image, one object
  per annotation or region, its visible mask (the amodal one where the file says the object is in full view);
  a malformed segmentation fails its item alone;
* a folder of images ``NAME.png|jpg|jpeg`` with their visible masks ``NAME_mask*.png`` beside them.

Item ids (the output sub-folders, and the item ids of the seed rule) are the image file stems (a manifest's ``id``
where given), made unique and file-name safe.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...evaluation.readers import read_annotation_file
from ...io import decode_segmentation, load_image, load_mask, object_masks

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class BatchItem:
    """One image and the visible masks of its objects.

    Attributes:
        item_id: stable, file-name-safe id (the output sub-folder).
        image: image file.
        masks: visible masks: mask files, or COCO segmentations (polygons / RLE) when ``size`` is given.
        labels: one id per object (COCO annotation ids, else 0, 1, ...).
        size: ``(height, width)`` of the COCO image, for decoding its segmentations.
        image_info: what the COCO output records of the image (``id``, ``file_name``).
    """

    item_id: str
    image: Path
    masks: tuple
    labels: tuple[int, ...]
    size: tuple[int, int] | None = None
    image_info: tuple[tuple[str, object], ...] = ()

    def to_json(self) -> str:
        """This item as JSON (rows of the Ray engine carry items this way)."""
        fields = dataclasses.asdict(self)
        return json.dumps(
            {**fields, "image": str(self.image), "masks": [m if self.size else str(m) for m in self.masks]}
        )

    @classmethod
    def from_json(cls, text: str) -> BatchItem:
        """The item :meth:`to_json` wrote."""
        fields = json.loads(text)
        size = tuple(fields["size"]) if fields["size"] else None
        masks = tuple(fields["masks"]) if size else tuple(Path(m) for m in fields["masks"])
        return cls(
            fields["item_id"],
            Path(fields["image"]),
            masks,
            tuple(fields["labels"]),
            size,
            tuple((key, value) for key, value in fields["image_info"]),
        )


def read_items(source: str | os.PathLike, images: str | os.PathLike | None = None) -> list[BatchItem]:
    """The items of a JSONL manifest, a COCO-style annotation file (with ``images``) or a folder (module docstring).
    Ids are made unique and file-name safe."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"no such folder or file: {source}")
    if source.is_dir():
        items = _folder_items(source)
    elif source.suffix == ".jsonl":
        items = _manifest_items(source)
    elif source.suffix == ".json":
        if images is None:
            raise InputError(f"{source} is an annotation file: give its image folder with --images")
        if not Path(images).is_dir():
            raise FileNotFoundError(f"--images {images} is not a folder")
        items = _coco_items(source, Path(images))
    else:
        raise InputError(f"{source}: expected a folder, a .jsonl manifest or a COCO-style .json annotation file")
    if not any(item.masks for item in items):
        raise InputError(f"{source} holds no object to complete (no image with a visible mask)")
    seen: set[str] = set()
    unique = []
    for index, item in enumerate(items):
        item_id = _UNSAFE.sub("_", item.item_id).strip("._") or f"item_{index}"
        if item_id in seen:
            item_id = f"{item_id}_{index}"
        seen.add(item_id)
        unique.append(dataclasses.replace(item, item_id=item_id))
    return unique


def _folder_items(folder: Path) -> list[BatchItem]:
    items = []
    for image in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and "_mask" not in p.stem):
        masks = tuple(sorted(folder.glob(f"{image.stem}_mask*.png")))
        items.append(BatchItem(image.stem, image, masks, tuple(range(len(masks)))))
    return items


def _manifest_items(manifest: Path) -> list[BatchItem]:
    if not manifest.is_file():
        raise FileNotFoundError(f"no such manifest: {manifest}")
    items = []
    for number, line in enumerate(manifest.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            image, masks = manifest.parent / entry["image"], tuple(manifest.parent / m for m in entry["masks"])
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise InputError(
                f'{manifest} line {number}: expected {{"image": ..., "masks": [...]}} ({error})'
            ) from error
        items.append(BatchItem(str(entry.get("id", Path(entry["image"]).stem)), image, masks, tuple(range(len(masks)))))
    return items


def _coco_items(annotation_file: Path, images: Path) -> list[BatchItem]:
    items = []
    for image in read_annotation_file(annotation_file, skip_malformed=False).images:
        items.append(
            BatchItem(
                image.stem,
                images / image.file_name,
                tuple(obj.amodal if obj.visible is None else obj.visible for obj in image.objects),
                tuple(obj.label for obj in image.objects),
                (image.height, image.width),
                (("id", image.image_id), ("file_name", image.file_name)),
            )
        )
    return items


def load_item(item: BatchItem) -> tuple[np.ndarray, list[np.ndarray]]:
    """The item's ``(H, W, 3)`` image and ``(H, W)`` bool visible masks, checked (ValueError / OSError if bad)."""
    image = load_image(item.image)
    if not item.masks:
        raise InputError(f"{item.image} has no visible mask")
    if item.size is None:
        masks = [load_mask(path) for path in item.masks]
    else:
        if image.shape[:2] != item.size:
            raise InputError(
                f"{item.image} is {image.shape[0]}x{image.shape[1]}, "
                f"but its annotations say {item.size[0]}x{item.size[1]}"
            )
        masks = [decode_segmentation(segmentation, *item.size) for segmentation in item.masks]
    object_masks(masks, *image.shape[:2])  # sizes, emptiness, binary values
    return image, masks
