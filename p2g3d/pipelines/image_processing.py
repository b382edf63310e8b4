"""Tensor-level input conversion and the official preprocessing of the pix2gestalt family.

Conventions: images are RGB; tensors are NCHW. Pipeline inputs are in [0, 1] (tensors / float arrays) or uint8;
model-space images are in [-1, 1]; masks follow the project's one mask rule (:mod:`p2g3d.io`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import PIL.Image
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..io import as_image, as_masks

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_SIZE = 224

ImageInput = PIL.Image.Image | np.ndarray | torch.Tensor | Sequence[PIL.Image.Image]


def _batch_from_pil(images: Sequence[PIL.Image.Image]) -> torch.Tensor:
    """PIL images -> ``(B, 3, H, W)`` float32 in [0, 1] (transparency composited onto white by :func:`as_image`)."""
    arrays = [as_image(image) for image in images]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise InputError(f"all images of a batch must have the same size, got shapes {sorted(shapes)}")
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous().float() / 255.0


def _to_unit_batch(value: ImageInput) -> torch.Tensor:
    """Any accepted image input -> contiguous ``(B, 3, H, W)`` float32 in [0, 1].

    Contiguity matters: a channels-last input sends CPU convolutions down another kernel, which moves the VAE
    latents by ~1e-4 against the official outputs.
    """
    if isinstance(value, PIL.Image.Image):
        value = [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, PIL.Image.Image) for v in value):
        return _batch_from_pil(value)
    if isinstance(value, np.ndarray):
        if value.dtype == np.uint8:
            array = value.astype(np.float32) / 255.0
        elif np.issubdtype(value.dtype, np.floating):
            array = value.astype(np.float32)
        else:
            raise TypeError(f"image: expected a uint8 or float array, got dtype {value.dtype}")
        tensor = torch.from_numpy(np.ascontiguousarray(array))
        if tensor.ndim == 3:  # numpy images are channels-last: (H, W, 3) or (B, H, W, 3)
            tensor = tensor[None]
        if tensor.ndim != 4 or tensor.shape[-1] != 3:
            raise InputError(f"image: expected an (H, W, 3) or (B, H, W, 3) array, got shape {tuple(value.shape)}")
        return tensor.permute(0, 3, 1, 2).contiguous()
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu", torch.float32)
        if tensor.ndim == 3:
            tensor = tensor[None]
        if tensor.ndim != 4 or tensor.shape[1] != 3:
            raise InputError(f"image: expected a (3, H, W) or (B, 3, H, W) tensor, got shape {tuple(value.shape)}")
        return tensor.contiguous()
    raise TypeError(f"image: expected a PIL image, a numpy array or a torch tensor, got {type(value).__name__}")


def _resize(batch: torch.Tensor, height: int, width: int, *, mode: str) -> torch.Tensor:
    if batch.shape[-2:] == (height, width):
        return batch
    if mode == "nearest":
        return F.interpolate(batch, size=(height, width), mode="nearest-exact")
    return F.interpolate(batch, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def preprocess_image(image: ImageInput, height: int, width: int) -> torch.Tensor:
    """Scene image(s) -> ``(B, 3, height, width)`` float32 in [-1, 1] (the official ``process_input``).

    Accepts PIL images (any mode; transparency is composited onto white), ``(H, W, 3)`` / ``(B, H, W, 3)`` uint8 or
    [0, 1] float arrays, and ``(3, H, W)`` / ``(B, 3, H, W)`` tensors in [0, 1]. Other sizes are resized (bilinear,
    antialiased).
    """
    batch = _to_unit_batch(image)
    if not torch.isfinite(batch).all() or batch.min() < 0.0 or batch.max() > 1.0:
        raise InputError(
            "image: float values must be finite and lie in [0, 1], "
            f"got range [{batch.min().item():.3g}, {batch.max().item():.3g}]"
        )
    return _resize(batch, height, width, mode="bilinear") * 2.0 - 1.0


def preprocess_mask(mask: ImageInput, height: int, width: int) -> torch.Tensor:
    """Visible mask(s) -> ``(B, 3, height, width)`` float32 with values exactly -1 (background) / +1 (object).

    The official code copies the 0/255 mask into three channels and maps it like an image. Masks follow the
    project's mask rule (:mod:`p2g3d.io`): PIL, ``(H, W)`` / ``(B, H, W)`` / ``(B, 1, H, W)`` arrays or tensors
    holding bool, 0/1 or 0/255. Other sizes are resized with nearest-neighbour sampling.
    """
    masks = torch.from_numpy(as_masks(mask, "visible_mask").astype(np.float32))
    batch = masks[None, None] if masks.ndim == 2 else masks[:, None] if masks.ndim == 3 else masks
    if batch.ndim != 4 or batch.shape[1] != 1:
        raise InputError(
            f"visible_mask: expected (H, W), (B, H, W) or (B, 1, H, W) masks, got shape {tuple(masks.shape)}"
        )
    binary = (_resize(batch.contiguous(), height, width, mode="nearest") > 0.5).float()
    return (binary * 2.0 - 1.0).expand(-1, 3, -1, -1).contiguous()


def clip_pixel_values(image: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` image in [-1, 1] -> CLIP tower input ``(B, 3, 224, 224)``, as the official embedder does.

    Bicubic resize with ``align_corners=True`` and no antialiasing, then ``(x + 1) / 2``, then CLIP mean / std.
    This is deliberately NOT ``CLIPImageProcessor`` (no shortest-side resize, no centre crop, no PIL resampling).
    """
    resized = F.interpolate(image, size=(CLIP_SIZE, CLIP_SIZE), mode="bicubic", align_corners=True, antialias=False)
    unit = (resized + 1.0) / 2.0
    mean = torch.tensor(CLIP_MEAN, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=image.device, dtype=image.dtype).view(1, 3, 1, 1)
    return (unit - mean) / std


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` float in [0, 1] -> ``(B, H, W, 3)`` uint8 by truncation (``(255 * x).astype(uint8)``),
    exactly as the official code converts its outputs."""
    return (255.0 * images.detach().float().cpu().permute(0, 2, 3, 1).numpy()).astype(np.uint8)
