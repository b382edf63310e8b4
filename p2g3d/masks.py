"""Amodal masks from synthesised whole objects: thresholding, clean-up, voting, confidence. Numpy functions.

pix2gestalt paints the whole object on WHITE, so the official evaluation rule reads the amodal mask as
"gray <= 250 is object". The official code applies OpenCV's BGR2GRAY to RGB data, i.e. it weighs RED with 0.114
and BLUE with 0.299; ``rule="rgb"`` (default) uses the correct weights, ``rule="official"`` reproduces the
published numbers bit for bit. Both use OpenCV's 8-bit fixed-point arithmetic.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

GRAY_THRESHOLD = 250
MASK_RULES = ("rgb", "official")
_R_WEIGHT, _G_WEIGHT, _B_WEIGHT = 9798, 19235, 3735  # OpenCV fixed point, scaled by 2**15


def to_gray(image: np.ndarray, rule: str = "rgb") -> np.ndarray:
    """``(..., H, W, 3)`` uint8 RGB -> ``(..., H, W)`` uint8 gray, exactly as ``cv2.cvtColor`` computes it.

    ``rule="rgb"``: ``COLOR_RGB2GRAY`` (0.299 R + 0.587 G + 0.114 B). ``rule="official"``: ``COLOR_BGR2GRAY``
    applied to the RGB array, as the official code does (0.299 on blue).
    """
    if rule not in MASK_RULES:
        raise InputError(f"rule must be one of {MASK_RULES}, got {rule!r}")
    if image.dtype != np.uint8 or image.shape[-1] != 3:
        raise InputError(f"expected (..., H, W, 3) uint8 RGB, got {image.dtype} {image.shape}")
    rgb = image.astype(np.int32)
    return _fixed_point_gray(rgb[..., 0], rgb[..., 1], rgb[..., 2], rule).astype(np.uint8)


def _fixed_point_gray(red, green, blue, rule: str):
    """OpenCV's 8-bit gray from int32 channels (numpy arrays or torch tensors alike)."""
    red_weight, blue_weight = (_R_WEIGHT, _B_WEIGHT) if rule == "rgb" else (_B_WEIGHT, _R_WEIGHT)
    weighted = red_weight * red + _G_WEIGHT * green + blue_weight * blue
    return (weighted + (1 << 14)) >> 15


def amodal_mask_from_whole(image: np.ndarray, rule: str = "rgb", threshold: int = GRAY_THRESHOLD) -> np.ndarray:
    """Whole object on white ``(..., H, W, 3)`` uint8 -> amodal mask ``(..., H, W)`` bool (gray <= threshold)."""
    return to_gray(image, rule) <= threshold


def amodal_masks_on_device(images, rule: str = "rgb", threshold: int = GRAY_THRESHOLD):
    """:func:`amodal_mask_from_whole` for a ``(N, 3, H, W)`` uint8 torch tensor, on its device -> ``(N, H, W)`` bool
    tensor (the same integer arithmetic, so the same masks)."""
    import torch

    if rule not in MASK_RULES:
        raise InputError(f"rule must be one of {MASK_RULES}, got {rule!r}")
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise InputError(f"expected (N, 3, H, W) uint8 images, got {images.dtype} {tuple(images.shape)}")
    rgb = images.to(torch.int32)
    return _fixed_point_gray(rgb[:, 0], rgb[:, 1], rgb[:, 2], rule) <= threshold


def attached_parts(mask: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool: the parts of ``mask | visible`` connected (8-neighbourhood) to a visible pixel.

    A synthesised object is one piece with its visible part; specks elsewhere in the decoded image (dark corners,
    stray marks) are not the object. Parts reached only through the visible mask are kept whole.
    """
    from scipy import ndimage

    labels, _ = ndimage.label(mask | visible, structure=np.ones((3, 3), bool))
    keep = np.unique(labels[visible])
    return np.isin(labels, keep[keep > 0])


def majority_vote(masks: np.ndarray) -> np.ndarray:
    """``(N, H, W)`` bool sample masks -> ``(H, W)`` bool: object where MORE than half of the samples say so."""
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise InputError(f"expected (N, H, W) masks with N >= 1, got shape {masks.shape}")
    return masks.sum(axis=0) * 2 > masks.shape[0]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two bool masks; 1.0 when both are empty."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def sample_agreement(masks: np.ndarray, consensus: np.ndarray) -> np.ndarray:
    """IoU of each sample mask ``(N, H, W)`` with the consensus mask ``(H, W)`` -> ``(N,)`` float."""
    return np.array([mask_iou(mask, consensus) for mask in masks], dtype=np.float64)
