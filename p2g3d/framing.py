"""Framing: original image <-> the model's square working frame, and back. Pure functions on numpy arrays.

Two framings:

* ``"squash"`` (official): the whole image is resized to ``size x size``, ignoring its aspect ratio. The model saw
  exactly this during training (SA-1B scenes squashed to 256 x 256), but thin objects get distorted when the image
  is far from square.
* ``"pad"``: the image is padded to a square (white for images, 0 for masks) centred on the image, then resized.
  Shapes keep their proportions; the padding costs resolution and shows the model white borders it did not see in
  training.

Going back, the model output is resized to the framed square and cropped, so ``unframe(frame(x))`` has the
original ``(H, W)``; padding regions are discarded. The ``*_on_device`` variants do the same for batches of torch
tensors on their device (kornia's resize; used on GPUs, where moving full-size results through PIL would cost more
than the resize).

Object framing (:func:`frame_on_white`): ONE object cut to its box and centred on a white square, its long side at
``object_fraction`` of the square (Zero-1-to-3's training framing, 200 of 256 pixels, by default), with the
:class:`ObjectFraming` that maps source pixels to the square and a camera of the square back to the source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import PIL.Image

from .cameras import Camera
from .errors import InputError
from .io import as_cutout

FRAMINGS = ("squash", "pad")
OBJECT_FRACTION = 200 / 256  # Zero-1-to-3's framing: the object's long side at 200 of 256 pixels


@dataclass(frozen=True)
class Frame:
    """How an ``(height, width)`` image maps onto the ``size x size`` working square.

    ``box`` is the image's place inside the padded square before resizing: ``(left, top, right, bottom)`` in pixels
    of that square, whose side is ``square``; for ``"squash"`` the square is the image itself (box = whole image).
    """

    height: int
    width: int
    size: int
    framing: str
    square: tuple[int, int]
    box: tuple[int, int, int, int]


def make_frame(height: int, width: int, size: int, framing: str = "squash") -> Frame:
    """Plan the framing of an ``(height, width)`` image onto a ``size x size`` square."""
    if framing not in FRAMINGS:
        raise InputError(f"framing must be one of {FRAMINGS}, got {framing!r}")
    if framing == "squash":
        return Frame(height, width, size, framing, (height, width), (0, 0, width, height))
    side = max(height, width)
    left, top = (side - width) // 2, (side - height) // 2
    return Frame(height, width, size, framing, (side, side), (left, top, left + width, top + height))


def frame_image(image: np.ndarray, frame: Frame) -> np.ndarray:
    """``(H, W, 3)`` uint8 -> ``(size, size, 3)`` uint8 (bicubic, white padding)."""
    return _frame(image, frame, fill=255, resample=PIL.Image.Resampling.BICUBIC)


def frame_mask(mask: np.ndarray, frame: Frame) -> np.ndarray:
    """``(H, W)`` bool -> ``(size, size)`` bool (nearest neighbour, empty padding)."""
    return _frame(mask.astype(np.uint8) * 255, frame, fill=0, resample=PIL.Image.Resampling.NEAREST) > 127


def unframe_image(image: np.ndarray, frame: Frame) -> np.ndarray:
    """``(size, size, 3)`` uint8 working-frame image -> ``(H, W, 3)`` uint8 in the original frame (bicubic)."""
    return _unframe(image, frame, PIL.Image.Resampling.BICUBIC)


def unframe_mask(mask: np.ndarray, frame: Frame) -> np.ndarray:
    """``(size, size)`` bool working-frame mask -> ``(H, W)`` bool in the original frame (bilinear, then > 0.5)."""
    return _unframe(mask.astype(np.uint8) * 255, frame, PIL.Image.Resampling.BILINEAR) > 127


def unframe_images_on_device(images, frame: Frame):
    """``(N, 3, size, size)`` uint8 tensor -> ``(N, 3, H, W)`` uint8 tensor on its device (bicubic, antialiased)."""
    import torch
    from kornia.geometry.transform import resize

    resized = resize(images.float(), frame.square, interpolation="bicubic", align_corners=False, antialias=True)
    left, top, right, bottom = frame.box
    return resized[..., top:bottom, left:right].round().clamp(0, 255).to(torch.uint8)


def unframe_masks_on_device(masks, frame: Frame):
    """``(N, size, size)`` bool tensor -> ``(N, H, W)`` bool tensor on the same device (bilinear, then > 0.5)."""
    from kornia.geometry.transform import resize

    resized = resize(
        masks[:, None].float(), frame.square, interpolation="bilinear", align_corners=False, antialias=True
    )
    left, top, right, bottom = frame.box
    return resized[:, 0, top:bottom, left:right] > 0.5


def _frame(array: np.ndarray, frame: Frame, fill: int, resample) -> np.ndarray:
    if array.shape[:2] != (frame.height, frame.width):
        raise InputError(f"expected an image of {frame.height}x{frame.width}, got {array.shape[:2]}")
    square_h, square_w = frame.square
    canvas = np.full((square_h, square_w, *array.shape[2:]), fill, dtype=np.uint8)
    left, top, right, bottom = frame.box
    canvas[top:bottom, left:right] = array
    return np.asarray(PIL.Image.fromarray(canvas).resize((frame.size, frame.size), resample))


def _unframe(array: np.ndarray, frame: Frame, resample) -> np.ndarray:
    square_h, square_w = frame.square
    resized = np.asarray(PIL.Image.fromarray(array).resize((square_w, square_h), resample))
    left, top, right, bottom = frame.box
    return resized[top:bottom, left:right].copy()


@dataclass(frozen=True)
class ObjectFraming:
    """How a source image maps onto a backend's square input: pixel ``(u, v)`` of the source (corner-origin, as
    :mod:`p2g3d.cameras`) lands at ``(scale_x * u + shift_x, scale_y * v + shift_y)`` of the ``size`` square."""

    size: int
    scale_x: float
    scale_y: float
    shift_x: float
    shift_y: float
    source_width: int
    source_height: int

    @property
    def matrix(self) -> np.ndarray:
        """``(3, 3)`` source pixels -> framed pixels (homogeneous)."""
        return np.array([[self.scale_x, 0.0, self.shift_x], [0.0, self.scale_y, self.shift_y], [0.0, 0.0, 1.0]])

    def camera_in_source(self, camera: Camera) -> Camera:
        """``camera`` of the framed square -> the same camera in the source image's pixels (``K`` changes only)."""
        return Camera(
            np.linalg.inv(self.matrix) @ camera.K, camera.world_to_camera, self.source_width, self.source_height
        )


class FramedObject(NamedTuple):
    """One object framed on white (:func:`frame_on_white`): ``image`` ``(size, size, 3)`` uint8, ``mask``
    ``(size, size)`` bool and the ``framing`` from the source's pixels."""

    image: np.ndarray
    mask: np.ndarray
    framing: ObjectFraming


def frame_on_white(source, size: int, object_fraction: float = OBJECT_FRACTION) -> FramedObject:
    """Object -> :class:`FramedObject` (``(size, size, 3)`` uint8 on white, ``(size, size)`` bool mask, framing):
    the object's pixels cut to their box, resized (Lanczos) so that the long side is
    ``round(size * object_fraction)``, and centred.

    ``source``: AmodalObject, RGBA cut-out, or ``(rgb, mask)`` (:func:`p2g3d.io.as_cutout`). Defined once for
    every stage that shows one object to a model: novel views, image-to-3D backends.
    """
    rgb, mask = as_cutout(source)
    if not mask.any():
        raise InputError("the object mask is empty")
    if not 0 < object_fraction <= 1:
        raise InputError(f"object_fraction must be in (0, 1], got {object_fraction}")
    rows, cols = np.nonzero(mask)
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    cut = np.where(mask[..., None], rgb, 255).astype(np.uint8)[top:bottom, left:right]
    long_side = round(size * object_fraction)
    scale = long_side / max(cut.shape[:2])
    new_w, new_h = max(1, round(cut.shape[1] * scale)), max(1, round(cut.shape[0] * scale))
    paste_x, paste_y = (size - new_w) // 2, (size - new_h) // 2
    canvas = PIL.Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(PIL.Image.fromarray(cut).resize((new_w, new_h), PIL.Image.Resampling.LANCZOS), (paste_x, paste_y))
    alpha = PIL.Image.fromarray(mask[top:bottom, left:right].astype(np.float32)).resize(
        (new_w, new_h), PIL.Image.Resampling.BILINEAR
    )
    framed_mask = np.zeros((size, size), dtype=bool)
    framed_mask[paste_y : paste_y + new_h, paste_x : paste_x + new_w] = np.asarray(alpha) >= 0.5
    scale_x, scale_y = new_w / (right - left), new_h / (bottom - top)
    framing = ObjectFraming(
        size, scale_x, scale_y, paste_x - left * scale_x, paste_y - top * scale_y, rgb.shape[1], rgb.shape[0]
    )
    return FramedObject(np.asarray(canvas), framed_mask, framing)
