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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image

FRAMINGS = ("squash", "pad")


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
        raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
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
        raise ValueError(f"expected an image of {frame.height}x{frame.width}, got {array.shape[:2]}")
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
