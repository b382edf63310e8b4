"""Annotation files of amodal benchmarks, read once for evaluation and for ``p2g3d batch``.

Three layouts, detected from the file (or named explicitly); masks are decoded by pycocotools
(:func:`p2g3d.io.decode_segmentation`), as the benchmarks' own code does:

* ``amodalapi``: COCO-A and BSDS-A (Zhu et al. 2017, the amodalAPI release: ``COCO_amodal_val2014.json``,
  ``BSDS_amodal_test.json``): ``images`` plus ``annotations``, one annotation per image with a ``regions`` list; a
  region's ``segmentation`` is the AMODAL mask as one polygon; ``visible_mask`` (RLE) is present only when the
  region is occluded, otherwise the visible mask is the amodal one; ``invisible_mask``, ``order`` (depth order),
  ``area``, ``occlude_rate``, ``isStuff`` and ``name`` (the category) come with it.
* ``kins``: KINS (``a_segm`` amodal and ``i_segm`` visible polygons per annotation, ``category_id``).
* ``cocoa-cls``: COCOA-cls / D2SA and files ``p2g3d batch`` writes: ``segmentation`` (amodal) and ``inmodal_seg``
  (visible), RLE or polygons, ``category_id``. A file holding only ``segmentation`` is read as visible masks
  (``p2g3d batch`` input; no ground truth).

Images keep the file's order, and so do each image's objects: an object's position among its image's objects is its
number in the seed rule (:mod:`p2g3d.sampling`). A region whose polygon is malformed (fewer than 3 points) is
skipped and counted, never a crash.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

AMODAL_FIELD = "segmentation"
VISIBLE_FIELD = "inmodal_seg"
LAYOUTS = ("amodalapi", "kins", "cocoa-cls")


@dataclass(frozen=True)
class AnnotatedObject:
    """One object of an annotation file: its segmentations as the file holds them (decode with
    :func:`p2g3d.io.decode_segmentation`; ``visible`` None means "the amodal mask", ``amodal`` None means "no
    ground truth"), its label (the file's annotation or region id), category and stuff flag when the file says."""

    visible: object
    amodal: object
    label: int
    category: str | None = None
    is_stuff: bool = False
    occlude_rate: float | None = None


@dataclass(frozen=True)
class AnnotatedImage:
    """One image of an annotation file and its objects, in the file's order."""

    image_id: object
    file_name: str
    height: int
    width: int
    objects: tuple[AnnotatedObject, ...]

    @property
    def stem(self) -> str:
        """The image's file stem: its item id in the seed rule."""
        return Path(self.file_name).stem


@dataclass(frozen=True)
class AnnotationFile:
    """What :func:`read_annotation_file` read: the layout, the images with their objects, and the objects skipped
    (``{reason: count}``)."""

    layout: str
    images: tuple[AnnotatedImage, ...]
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def object_count(self) -> int:
        return sum(len(image.objects) for image in self.images)


def detect_layout(data: dict) -> str:
    """The layout of a parsed annotation file (module docstring); InputError listing the layouts when none fits."""
    annotations = data.get("annotations") if isinstance(data, dict) else None
    if isinstance(annotations, list) and not annotations:
        return "cocoa-cls"  # no annotation at all: a file without objects, in the plainest layout
    if isinstance(annotations, list) and isinstance(annotations[0], dict):
        first = annotations[0]
        if "regions" in first:
            return "amodalapi"
        if "a_segm" in first or "i_segm" in first:
            return "kins"
        if AMODAL_FIELD in first or VISIBLE_FIELD in first:
            return "cocoa-cls"
    raise InputError(
        "the annotation file fits none of the layouts: amodalapi (COCO-A / BSDS-A: annotations with 'regions'), "
        "kins (annotations with 'a_segm' and 'i_segm'), cocoa-cls (annotations with 'segmentation' and "
        "'inmodal_seg')"
    )


def _is_polygon(segmentation) -> bool:
    """A flat polygon ``[x0, y0, x1, y1, ...]`` of at least 3 points."""
    return (
        isinstance(segmentation, list)
        and len(segmentation) >= 6
        and all(isinstance(v, (int, float)) for v in segmentation)
    )


def _polygons(segmentation):
    """A polygon list ``[[...], ...]`` with at least one polygon of 3 points, or an RLE dict; None if malformed."""
    if isinstance(segmentation, dict):
        return segmentation if "counts" in segmentation else None
    if isinstance(segmentation, list) and segmentation and _is_polygon(segmentation):
        return [segmentation]  # amodalAPI regions hold one flat polygon
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if _is_polygon(p)]
        return polygons or None
    return None


def _amodalapi_objects(annotation: dict, skipped: Counter | None) -> list[AnnotatedObject]:
    objects = []
    for number, region in enumerate(annotation.get("regions", [])):
        amodal = _polygons(region.get("segmentation"))
        if amodal is None and skipped is not None:
            skipped["malformed amodal polygon"] += 1
            continue
        visible = region.get("visible_mask")  # only for occluded regions
        objects.append(
            AnnotatedObject(
                visible=visible,
                amodal=region.get("segmentation") if amodal is None else amodal,
                label=int(region.get("id", number)),
                category=region.get("name"),
                is_stuff=bool(region.get("isStuff", 0)),
                occlude_rate=region.get("occlude_rate"),
            )
        )
    return objects


def _kins_object(annotation: dict, number: int, skipped: Counter | None) -> AnnotatedObject | None:
    amodal, visible = _polygons(annotation.get("a_segm")), _polygons(annotation.get("i_segm"))
    if amodal is None or visible is None:
        if skipped is not None:
            skipped["malformed polygon"] += 1
            return None
        amodal, visible = amodal or annotation.get("a_segm"), visible or annotation.get("i_segm")
    category = annotation.get("category_id")
    return AnnotatedObject(
        visible, amodal, int(annotation.get("id", number)), None if category is None else str(category)
    )


def _cocoa_object(annotation: dict, number: int, skipped: Counter | None) -> AnnotatedObject | None:
    has_visible = VISIBLE_FIELD in annotation
    amodal = _polygons(annotation.get(AMODAL_FIELD)) if AMODAL_FIELD in annotation else None
    visible = _polygons(annotation[VISIBLE_FIELD]) if has_visible else amodal
    if visible is None or (has_visible and AMODAL_FIELD in annotation and amodal is None):
        if skipped is not None:
            skipped["malformed or empty segmentation"] += 1
            return None
        amodal = amodal or annotation.get(AMODAL_FIELD)
        visible = visible or (annotation[VISIBLE_FIELD] if has_visible else amodal)
    category = annotation.get("category_id")
    return AnnotatedObject(
        visible,
        amodal if has_visible else None,  # a file of visible masks only carries no ground truth
        int(annotation.get("id", number)),
        None if category is None else str(category),
    )


def read_annotation_file(
    path: str | os.PathLike, layout: str | None = None, *, skip_malformed: bool = True
) -> AnnotationFile:
    """The images and objects of an annotation file in one of :data:`LAYOUTS` (detected when ``layout`` is None);
    InputError if the file is none of them. Objects with malformed segmentations are skipped and counted (evaluation),
    or with ``skip_malformed=False`` kept as they are, so that decoding them fails for their item alone (batch)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such annotation file: {path}")
    if layout is not None and layout not in LAYOUTS:
        raise InputError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{path} is not a JSON annotation file ({error})") from error
    try:
        layout = layout or detect_layout(data)
        by_image: dict = {image["id"]: [] for image in data["images"]}
        skipped: Counter | None = Counter() if skip_malformed else None
        for number, annotation in enumerate(data["annotations"]):
            if layout == "amodalapi":
                by_image[annotation["image_id"]] += _amodalapi_objects(annotation, skipped)
                continue
            read = _kins_object if layout == "kins" else _cocoa_object
            found = read(annotation, number, skipped)
            if found is not None:
                by_image[annotation["image_id"]].append(found)
        images = tuple(
            AnnotatedImage(
                image["id"], image["file_name"], int(image["height"]), int(image["width"]), tuple(by_image[image["id"]])
            )
            for image in data["images"]
        )
    except InputError as error:
        raise InputError(f"{path}: {error}") from error
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise InputError(
            f"{path} is not a {layout} annotation file (expected 'images' with id, file_name, height, width and "
            f"'annotations' with image_id; {error.__class__.__name__}: {error})"
        ) from error
    return AnnotationFile(layout, images, dict(skipped or {}))
