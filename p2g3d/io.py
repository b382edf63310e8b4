"""Reading images and masks with clear errors, and writing outputs atomically."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import PIL.Image

_EIGHT_BIT_MODES = {"1", "L", "P", "RGB", "RGBA", "LA", "PA"}


def _open_image(path: str | os.PathLike) -> PIL.Image.Image:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with PIL.Image.open(path) as image:
            image.load()
            loaded = image.copy()
    except (PIL.UnidentifiedImageError, OSError) as error:
        raise ValueError(f"{path} is not a readable image file ({error.__class__.__name__})") from error
    if loaded.mode not in _EIGHT_BIT_MODES:
        raise ValueError(
            f"{path} has pixel mode {loaded.mode!r}; only 8-bit images are supported (convert 16-bit or float "
            "images to 8 bits per channel first)"
        )
    return loaded


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image as ``(H, W, 3)`` uint8 RGB (alpha composited onto white, gray replicated)."""
    return as_rgb(np.asarray(_open_image(path).convert("RGBA")))


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a binary mask image (values 0 and 255, or 0 and 1) as ``(H, W)`` bool."""
    image = _open_image(path)
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.getchannel("A") if _is_alpha_mask(image) else image.convert("L")
    array = np.asarray(image.convert("L") if image.mode != "L" else image)
    return validate_mask(array, name=str(path))


def _is_alpha_mask(image: PIL.Image.Image) -> bool:
    """An RGBA mask whose colour is constant carries the mask in its alpha channel."""
    colour = np.asarray(image.convert("RGB"))
    return bool((colour == colour.reshape(-1, 3)[0]).all())


def as_rgb(image: np.ndarray) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` uint8 -> ``(H, W, 3)`` uint8 RGB.

    Gray is replicated; RGBA is composited onto white (a cut-out becomes an object on white).
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise TypeError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        return np.round(image[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(image)


def validate_mask(mask: np.ndarray, name: str = "mask") -> np.ndarray:
    """Check that ``mask`` is a non-empty 2-D binary mask (bool, {0, 1} or {0, 255}); return it as bool."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D (H, W) mask, got shape {mask.shape}")
    if mask.dtype != np.bool_:
        values = np.unique(mask)
        if not (set(values.tolist()) <= {0, 1} or set(values.tolist()) <= {0, 255}):
            shown = values[:6].tolist()
            raise ValueError(f"{name}: mask must be binary (0/1 or 0/255), found values {shown}{'...' if len(values) > 6 else ''}")
        mask = mask > 0
    if not mask.any():
        raise ValueError(f"{name}: mask is empty (no visible pixel of the object)")
    return mask


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array (or bool mask, as 0/255) as PNG atomically."""
    import io

    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return write_atomic(path, buffer.getvalue())


def save_json(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` as indented JSON atomically."""
    return write_atomic(path, (json.dumps(payload, indent=2) + "\n").encode())
