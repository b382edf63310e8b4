"""Images and masks in and out: files AND in-memory values, with ONE mask rule for the whole project.

The mask rule (every mask p2g3d reads, from a file, an array, a PIL image or a tensor, follows it):

* a mask is binary: ``bool``, or numbers that are all in {0, 1} or all in {0, 255} (any integer or float dtype);
  a non-zero value marks the object. Anything else (soft masks, label maps where one mask is expected) is a
  ValueError that says what came;
* where a mask comes from an alpha channel (an RGBA cut-out, or a mask image whose colour is constant), the object
  is where alpha >= 128 (:data:`ALPHA_THRESHOLD`).

Images are ``(H, W, 3)`` uint8 RGB once read; gray is replicated and transparency is composited onto white (a
cut-out becomes an object on white), always by :func:`as_rgb`. Outputs are written atomically (temporary file and
rename) with the permissions the process's umask gives.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import PIL.Image

from .errors import InputError

logger = logging.getLogger(__name__)

EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBA", "LA", "PA", "CMYK", "YCbCr")
ALPHA_THRESHOLD = 128
MAX_IMAGE_PIXELS = 8192 * 8192


# ---- in-memory coercion -----------------------------------------------------------------------------------------


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
        raise InputError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[..., 3:4].astype(np.float32) / 255.0
        return np.round(image[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(image)


def pil_to_array(image: PIL.Image.Image, name: str = "image") -> np.ndarray:
    """An 8-bit PIL image -> ``(H, W, 4)`` uint8 RGBA (gray and palette expanded, opaque where it has no alpha)."""
    if image.mode not in EIGHT_BIT_MODES:
        raise InputError(
            f"{name} has pixel mode {image.mode!r}; only 8-bit images are supported (convert 16-bit or float "
            "images to 8 bits per channel first)"
        )
    return np.asarray(image.convert("RGBA"))


def _to_numpy(value, name: str) -> np.ndarray:
    """PIL (gray level), numpy or torch -> numpy, without changing values."""
    if isinstance(value, PIL.Image.Image):
        return np.asarray(value.convert("L")) if value.mode in EIGHT_BIT_MODES else np.asarray(value)
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch"):
        return value.detach().cpu().numpy()
    raise TypeError(f"{name}: expected a numpy array, PIL image or torch tensor, got {type(value).__name__}")


def binary_mask(array: np.ndarray, name: str = "mask") -> np.ndarray:
    """Apply the mask rule to an array of any shape -> bool of the same shape (no emptiness check)."""
    array = np.asarray(array)
    if array.dtype == np.bool_:
        return array
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise TypeError(f"{name}: expected a bool or numeric mask, got dtype {array.dtype}")
    values = np.unique(array)
    if not (np.isin(values, (0, 1)).all() or np.isin(values, (0, 255)).all()):
        shown = values[:6].tolist()
        raise InputError(
            f"{name}: a mask must be binary (bool, 0/1 or 0/255), "
            f"found values {shown}{'...' if len(values) > 6 else ''}"
        )
    return array != 0


def as_mask(value, name: str = "mask", *, allow_empty: bool = False) -> np.ndarray:
    """One mask (PIL, ``(H, W)`` / ``(H, W, 1)`` / ``(1, H, W)`` array or tensor) -> ``(H, W)`` bool, by the mask rule.

    Raises ValueError for other shapes, non-binary values and (unless ``allow_empty``) an empty mask.
    """
    if isinstance(value, PIL.Image.Image) and value.mode in ("LA", "PA", "RGBA"):
        return alpha_or_gray_mask(value, name, allow_empty=allow_empty)
    array = _to_numpy(value, name)
    if array.ndim == 3 and 1 in (array.shape[0], array.shape[2]):
        array = array[0] if array.shape[0] == 1 else array[..., 0]
    if array.ndim != 2:
        raise InputError(f"{name}: expected a 2-D (H, W) mask, got shape {array.shape}")
    mask = binary_mask(array, name)
    if not allow_empty and not mask.any():
        raise InputError(f"{name}: mask is empty (no pixel of the object)")
    return mask


def as_masks(value, name: str = "mask") -> np.ndarray:
    """Masks of any batch shape ``(..., H, W)`` (numpy, tensor, PIL or a list of PIL images) -> bool, by the mask
    rule (empty masks allowed). Used where masks come in batches, e.g. the pipelines."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, PIL.Image.Image) for v in value):
        masks = [as_mask(v, f"{name} {i}", allow_empty=True) for i, v in enumerate(value)]
        if len({m.shape for m in masks}) != 1:
            raise InputError(
                f"{name}: all masks of a batch must have the same size, got {sorted({m.shape for m in masks})}"
            )
        return np.stack(masks)
    if isinstance(value, PIL.Image.Image):
        return as_mask(value, name, allow_empty=True)
    return binary_mask(_to_numpy(value, name), name)


def alpha_or_gray_mask(image: PIL.Image.Image, name: str = "mask", *, allow_empty: bool = False) -> np.ndarray:
    """A PIL mask image with an alpha channel: if its colour is constant the alpha carries the mask (alpha >= 128),
    otherwise its gray level does (by the mask rule)."""
    rgba = pil_to_array(image, name)
    colour = rgba[..., :3]
    if (colour == colour.reshape(-1, 3)[0]).all():
        mask = rgba[..., 3] >= ALPHA_THRESHOLD
        if not allow_empty and not mask.any():
            raise InputError(f"{name}: mask is empty (no pixel of the object)")
        return mask
    return as_mask(image.convert("L"), name, allow_empty=allow_empty)


def as_image(value, name: str = "image") -> np.ndarray:
    """One image -> ``(H, W, 3)`` uint8 RGB.

    Accepts a PIL image (8-bit modes), an ``(H, W)`` / ``(H, W, 1|3|4)`` uint8 or [0, 1] float array, or a
    ``(C, H, W)`` tensor (C in 1, 3, 4; uint8 or [0, 1] float). Transparency is composited onto white.
    """
    if isinstance(value, PIL.Image.Image):
        return as_rgb(pil_to_array(value, name))
    if type(value).__module__.startswith("torch"):
        if value.ndim != 3 or value.shape[0] not in (1, 3, 4):
            raise InputError(f"{name}: a tensor image must be (C, H, W) with C in 1, 3, 4, got {tuple(value.shape)}")
        value = value.detach().cpu().permute(1, 2, 0).numpy()
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name}: expected a PIL image, numpy array or torch tensor, got {type(value).__name__}")
    if np.issubdtype(value.dtype, np.floating):
        if not np.isfinite(value).all() or value.min() < 0 or value.max() > 1:
            raise InputError(f"{name}: float images must be finite and lie in [0, 1]")
        value = np.round(value * 255.0).astype(np.uint8)
    return as_rgb(value)


def as_cutout(source, name: str = "object") -> tuple[np.ndarray, np.ndarray]:
    """An object to hand to a 3D backend -> ``((H, W, 3) uint8 RGB, (H, W) bool mask)``.

    ``source`` is an :class:`~p2g3d.types.AmodalObject` (its whole object and amodal mask), an RGBA cut-out
    (``(H, W, 4)`` uint8 array or PIL image: alpha >= 128 is the object), or an ``(image, mask)`` pair.
    """
    from .types import AmodalObject

    if isinstance(source, AmodalObject):
        return source.whole_rgb, source.amodal_mask
    if isinstance(source, tuple) and len(source) == 2:
        rgb, mask = as_image(source[0], f"{name} image"), as_mask(source[1], f"{name} mask")
    else:
        if isinstance(source, PIL.Image.Image):
            if "A" not in source.getbands():
                raise InputError(f"{name} has no alpha channel: pass (image, mask) instead")
            source = pil_to_array(source, name)
        if not (
            isinstance(source, np.ndarray) and source.ndim == 3 and source.shape[2] == 4 and source.dtype == np.uint8
        ):
            raise TypeError(
                f"{name} must be an AmodalObject, an (H, W, 4) uint8 RGBA cut-out / RGBA PIL image, or an "
                f"(image, mask) pair; got {type(source).__name__}"
            )
        rgb, mask = as_rgb(source), source[..., 3] >= ALPHA_THRESHOLD
        if not mask.any():
            raise InputError(f"{name}: the alpha channel is empty (no object)")
    if mask.shape != rgb.shape[:2]:
        raise InputError(
            f"{name}: the mask is {mask.shape[0]}x{mask.shape[1]} but the image is {rgb.shape[0]}x{rgb.shape[1]}"
        )
    return rgb, mask


def object_masks(visible_masks, height: int, width: int) -> list[tuple[int, np.ndarray]]:
    """The visible masks of the objects of one ``(height, width)`` image -> ``[(label, (H, W) bool), ...]``.

    Accepts one mask, a list of masks, a ``(K, H, W)`` stack (K >= 1), or an ``(H, W)`` integer instance label map
    (an integer array whose values are not binary; each non-zero value is one object, labels ascending).
    """
    if isinstance(visible_masks, (list, tuple)):
        if not visible_masks:
            raise InputError("got an empty list of visible masks")
        masks = [(i, as_mask(m, f"visible mask {i}")) for i, m in enumerate(visible_masks)]
    else:
        array = _to_numpy(visible_masks, "visible masks")
        if array.ndim == 3 and array.shape[1:] == (height, width):
            masks = [(i, as_mask(m, f"visible mask {i}")) for i, m in enumerate(array)]
        elif (
            array.ndim == 2
            and np.issubdtype(array.dtype, np.integer)
            and not (np.isin(array, (0, 1)).all() or np.isin(array, (0, 255)).all())
        ):
            labels = [int(v) for v in np.unique(array) if v != 0]
            masks = [(label, array == label) for label in labels]
        else:
            masks = [(0, as_mask(visible_masks, "visible mask 0"))]
    for label, mask in masks:
        if mask.shape != (height, width):
            raise InputError(
                f"visible mask {label} is {mask.shape[0]}x{mask.shape[1]} but the image is {height}x{width}"
            )
    return masks


def decode_segmentation(segmentation, height: int, width: int) -> np.ndarray:
    """A COCO segmentation (polygons, uncompressed or compressed RLE) -> ``(height, width)`` bool, decoded by
    pycocotools exactly as the COCO / COCOA tools decode it (``annToMask``)."""
    from pycocotools import mask as coco_mask

    if isinstance(segmentation, list):  # polygons [[x0, y0, x1, y1, ...], ...]
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0]
        if not polygons:
            shown = str(segmentation)[:60]
            raise InputError(f"a polygon segmentation needs a polygon of at least 3 points (6 numbers), got {shown}")
        try:
            rle = coco_mask.merge(coco_mask.frPyObjects(polygons, height, width))
        except (TypeError, ValueError, IndexError) as error:
            raise InputError(f"unreadable polygon segmentation ({error})") from error
    elif isinstance(segmentation, dict) and isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    elif isinstance(segmentation, dict) and "counts" in segmentation:
        rle = segmentation
    else:
        raise InputError(f"not a COCO segmentation (polygon list or RLE dict): {type(segmentation).__name__}")
    if [int(s) for s in rle.get("size", (height, width))] != [height, width]:
        raise InputError(f"an RLE segmentation of size {rle.get('size')} in an image of {height}x{width}")
    try:
        return coco_mask.decode(rle).astype(bool)
    except (TypeError, ValueError, IndexError) as error:
        raise InputError(f"unreadable RLE segmentation ({error})") from error


def encode_rle(mask: np.ndarray) -> dict:
    """``(H, W)`` bool -> compressed COCO RLE ``{"size": [H, W], "counts": str}`` (pycocotools), JSON-ready."""
    from pycocotools import mask as coco_mask

    rle = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


# ---- files ----------------------------------------------------------------------------------------------------------


def open_image(path: str | os.PathLike) -> PIL.Image.Image:
    """Open and fully read an image file, with clear errors for missing, unreadable, huge or non-8-bit files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PIL.Image.DecompressionBombWarning)
            with PIL.Image.open(path) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise InputError(
                        f"{path} is too large to read ({image.width}x{image.height}); downscale it to at most "
                        f"{MAX_IMAGE_PIXELS} pixels"
                    )
                sixteen_bit = any(str(tile.args).endswith(";16B") for tile in getattr(image, "tile", []) or [])
                image.load()
                loaded = image.copy()
    except (PIL.Image.DecompressionBombError, PIL.Image.DecompressionBombWarning) as error:
        raise InputError(
            f"{path} is too large to read ({error}); downscale it to at most {MAX_IMAGE_PIXELS} pixels"
        ) from error
    except (PIL.UnidentifiedImageError, OSError) as error:
        raise InputError(f"{path} is not a readable image file ({error.__class__.__name__})") from error
    if loaded.mode not in EIGHT_BIT_MODES or sixteen_bit:
        mode = "16-bit RGB(A)" if sixteen_bit else repr(loaded.mode)
        raise InputError(
            f"{path} has pixel mode {mode}; only 8-bit images are supported (convert 16-bit or float "
            "images to 8 bits per channel first)"
        )
    return loaded


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit image as ``(H, W, 3)`` uint8 RGB (alpha composited onto white, gray replicated)."""
    return as_image(open_image(path), str(path))


def load_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask image as ``(H, W)`` bool by the mask rule (module docstring)."""
    return as_mask(open_image(path), str(path))


def load_cutout(
    image_path: str | os.PathLike, mask_path: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """An RGBA cut-out file, or an image file with a mask file -> ``(rgb, mask)`` (see :func:`as_cutout`)."""
    if mask_path is not None:
        return as_cutout((load_image(image_path), load_mask(mask_path)), str(image_path))
    return as_cutout(open_image(image_path), str(image_path))


def write_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write a uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array (or bool mask, as 0/255) as PNG atomically."""
    return write_atomic(path, png_bytes(image))


def save_json(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` as indented JSON atomically (NaN and infinity are refused: they are not JSON)."""
    return write_atomic(path, json_bytes(payload))


def write_files_atomic(files: dict[str | os.PathLike, bytes]) -> list[Path]:
    """Write several files as one: every file goes to a temporary name first, and only when all are written are
    they renamed into place. A failure (a full disk, a read-only folder) leaves none of them and no temporary file."""
    staged: list[tuple[str, Path]] = []
    try:
        for path, data in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
            staged.append((temporary, path))
            with os.fdopen(handle, "wb") as file:
                file.write(data)
            os.chmod(temporary, FILE_MODE)
    except BaseException:
        for temporary, _ in staged:
            Path(temporary).unlink(missing_ok=True)
        raise
    for temporary, path in staged:
        os.replace(temporary, path)
    return [path for _, path in staged]


def png_bytes(image: np.ndarray) -> bytes:
    """A uint8 ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` array (or bool mask, as 0/255) encoded as PNG."""
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    buffer = io.BytesIO()
    PIL.Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def json_bytes(payload: dict) -> bytes:
    """``payload`` as indented JSON (NaN and infinity are refused: they are not JSON)."""
    return (json.dumps(payload, indent=2, allow_nan=False) + "\n").encode()


def check_output_folder(folder: str | os.PathLike, *, min_free_bytes: int = 0) -> Path:
    """Check before any work that ``folder`` can receive outputs: not an existing file, inside a writable folder,
    with at least ``min_free_bytes`` free. Creates nothing."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"output {folder} exists and is not a folder")
    existing = next(parent for parent in (folder, *folder.absolute().parents) if parent.exists())
    if not existing.is_dir():
        raise InputError(f"output {folder} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"output {folder} is not writable (no write permission on {existing})")
    free = shutil.disk_usage(existing).free
    if free < min_free_bytes:
        raise InputError(
            f"output {folder}: {free / 2**20:.0f} MiB free on its disk, about {min_free_bytes / 2**20:.0f} MiB needed"
        )
    return folder


def check_output_file(path: str | os.PathLike) -> Path:
    """Check before any work that ``path`` can be written: not a folder, its folder can receive it."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"output {path} is a folder; expected a file name")
    check_output_folder(path.parent)
    return path


def _read_umask() -> int:
    """The process's umask, read once when the module loads: reading it means setting it, which is not
    thread-safe, so it is never flipped again while threads may be writing."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


FILE_MODE = 0o666 & ~_read_umask()  # what open() would give a new file


def listed_outputs(summary: str | os.PathLike, fields: tuple[str, ...]) -> set[str]:
    """The file names an earlier run listed in its ``summary`` JSON (``objects[*][field]`` for each field, or the
    values of ``objects[*][field]`` where that is a dict of names); empty when there is none or it is not ours."""
    summary = Path(summary)
    if not summary.is_file():
        return set()
    names = set()
    try:
        for entry in json.loads(summary.read_text()).get("objects", []):
            for field in fields:
                value = entry[field]
                names |= set(value.values()) if isinstance(value, dict) else {value}
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
        logger.warning("%s is not a summary p2g3d wrote; leaving the folder's other files alone", summary)
        return set()
    return {Path(str(name)).name for name in names}


def remove_outputs(folder: str | os.PathLike, names) -> None:
    """Delete the files ``names`` of an earlier run from ``folder`` (the newer run did not write them again)."""
    for name in names:
        (Path(folder) / Path(name).name).unlink(missing_ok=True)


def check_replaceable(target: str | os.PathLike, marker: str, allowed: set[str]) -> Path:
    """Check that ``target`` may be replaced by a new output: it does not exist, is empty, or is an earlier output
    of p2g3d (it holds ``marker`` and nothing but the ``allowed`` names). Never the working folder, one of its
    parents, the home folder or a root. The ValueError says what would have been deleted."""
    target = Path(target)
    resolved = target.resolve()
    protected = {Path.cwd().resolve(), Path.home().resolve(), *Path.cwd().resolve().parents}
    if resolved in protected or resolved.parent == resolved:
        raise InputError(f"refusing to replace {target} ({resolved}): the working folder, one of its parents or home")
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return target
    if not target.is_dir():
        raise InputError(f"{target} exists and is not a folder")
    entries = sorted(path.name for path in target.iterdir())
    foreign = [name for name in entries if name not in allowed]
    if marker not in entries or foreign:
        shown = ", ".join(foreign[:5] or entries[:5])
        reason = f"it holds {shown}, which p2g3d did not write" if foreign else f"it has no {marker}"
        raise InputError(f"refusing to replace {target}: {reason}; nothing was deleted")
    return target


def publish_folder(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Move a fully written ``staging`` folder to ``target``, replacing what :func:`check_replaceable` allowed.
    The old folder is moved aside first and deleted last, so ``target`` is always either the old or the new one."""
    staging, target = Path(staging), Path(target)
    retired = target.with_name(f".{target.name}.old")
    shutil.rmtree(retired, ignore_errors=True)
    if target.exists():
        os.replace(target, retired)
    os.replace(staging, target)
    shutil.rmtree(retired, ignore_errors=True)
    return target


def staging_folder(target: str | os.PathLike) -> Path:
    """The hidden folder an output ``target`` is written to before :func:`publish_folder`; one left by a killed run
    is removed here, so a rerun starts clean."""
    target = Path(target)
    staging = target.with_name(f".{target.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.mkdir(mode=0o777)
    return staging
