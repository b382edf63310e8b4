"""Result and input types: frozen dataclasses of numpy arrays (read-only), never tensors.

:class:`AmodalObject` arrays are in the ORIGINAL image frame (pixel (row, col) of the input image);
:class:`MaskedView` arrays are in the pixel frame of its camera (:mod:`p2g3d.cameras`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import numpy as np

from .cameras import Camera
from .errors import InputError


@dataclass(frozen=True)
class AmodalObject:
    """One completed object.

    Attributes:
        label: the object's id: its index in the list of visible masks, or its value in the instance label map.
        whole_rgb: ``(H, W, 3)`` uint8, the synthesised whole object on white (the sample that agrees best with the
            consensus mask), resized back to the input frame.
        whole_rgba: ``(H, W, 4)`` uint8, ``whole_rgb`` with the amodal mask as alpha (255 object, 0 elsewhere).
        amodal_mask: ``(H, W)`` bool, the whole object: per-pixel majority vote of the sample masks, united with
            the visible mask.
        visible_mask: ``(H, W)`` bool, the visible (modal) mask that was given.
        occluded_mask: ``(H, W)`` bool, ``amodal_mask & ~visible_mask``: the hidden part.
        sample_images: ``(N, H, W, 3)`` uint8, every sample's whole object on white.
        sample_masks: ``(N, H, W)`` bool, every sample's amodal mask (before the vote).
        confidence: mean IoU of the sample masks with the consensus, in [0, 1]; 1 when all samples agree.
        best_sample: index of the sample shown in ``whole_rgb``.
    """

    label: int
    whole_rgb: np.ndarray
    whole_rgba: np.ndarray
    amodal_mask: np.ndarray
    visible_mask: np.ndarray
    occluded_mask: np.ndarray
    sample_images: np.ndarray
    sample_masks: np.ndarray
    confidence: float
    best_sample: int

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, np.ndarray):
                value.flags.writeable = False

    @property
    def amodal_box(self) -> tuple[int, int, int, int]:
        """Bounding box of the amodal mask, ``(x0, y0, x1, y1)`` in original image pixels, end-exclusive."""
        rows, cols = np.nonzero(self.amodal_mask)
        if rows.size == 0:
            return (0, 0, 0, 0)
        return (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)

    @property
    def occluded_fraction(self) -> float:
        """Share of the amodal mask that is hidden, in [0, 1]."""
        area = int(self.amodal_mask.sum())
        return 0.0 if area == 0 else float(self.occluded_mask.sum() / area)


@dataclass(frozen=True, eq=False)
class MaskedView:
    """One posed view of an object: what multi-view reconstruction backends take.

    Attributes:
        image: ``(H, W, 3)`` uint8 RGB.
        mask: ``(H, W)`` bool, the object.
        camera: the view's camera (p2g3d convention) for an ``W x H`` image.
    """

    image: np.ndarray
    mask: np.ndarray
    camera: Camera

    def __post_init__(self):
        if self.image.shape[:2] != self.mask.shape or self.mask.shape != (self.camera.height, self.camera.width):
            raise InputError(
                f"image {self.image.shape[:2]}, mask {self.mask.shape} and camera "
                f"({self.camera.height}, {self.camera.width}) must have the same size"
            )


def check_views(views: Sequence[MaskedView], minimum: int = 2, mask_name: str = "mask") -> None:
    """Raise ValueError unless there are at least ``minimum`` views, each a :class:`MaskedView` with a non-empty
    mask (``mask_name`` names it in the message, e.g. ``"visible mask"``)."""
    if len(views) < minimum:
        raise InputError(f"need at least {minimum} views, got {len(views)}")
    for index, view in enumerate(views):
        if not isinstance(view, MaskedView):
            raise TypeError(f"view {index} is a {type(view).__name__}, expected MaskedView")
        if not view.mask.any():
            raise InputError(f"view {index} has an empty {mask_name}")
