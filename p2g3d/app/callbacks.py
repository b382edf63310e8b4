"""What the app does, as plain functions over files and arrays: no Gradio here, so each is tested directly.

Every function raises :class:`~p2g3d.errors.InputError` (or :class:`~p2g3d.errors.MissingDependencyError`) with a
message for the page when an upload or a setting is wrong; the UI shows that message and keeps serving.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import as_image, as_mask, encode_rle, open_image, save_json, save_png
from ..settings import CompletionSettings
from ..types import AmodalObject

logger = logging.getLogger(__name__)

MAX_IMAGE_SIDE = 2048  # pixels; larger photos are refused (the model works at 256 px anyway)


@dataclass(frozen=True)
class Completed:
    """One completion as the page shows it.

    Attributes:
        whole_rgba: ``(H, W, 4)`` uint8, the whole object with the amodal mask as alpha.
        amodal_mask: ``(H, W)`` uint8, 255 inside the amodal mask.
        overlay: ``(H, W, 3)`` uint8, the photo with the amodal mask tinted (its hidden part in another colour).
        samples: every sample's whole object, ``(H, W, 3)`` uint8 each.
        numbers: what the JSON output holds: occluded share, confidence, areas, settings.
        result: the :class:`~p2g3d.types.AmodalObject` (for "make 3D").
    """

    whole_rgba: np.ndarray
    amodal_mask: np.ndarray
    overlay: np.ndarray
    samples: list[np.ndarray]
    numbers: dict
    result: AmodalObject


def read_photo(path: str | os.PathLike | None, max_side: int = MAX_IMAGE_SIDE) -> np.ndarray:
    """The uploaded photo as ``(H, W, 3)`` uint8; InputError when there is none, it is not an image, or it is too
    large."""
    if path is None:
        raise InputError("upload a photo first (or pick an example)")
    image = as_image(open_image(path), "the photo")
    if max(image.shape[:2]) > max_side:
        raise InputError(f"the photo is {image.shape[1]}x{image.shape[0]}; the app takes photos up to {max_side} px")
    return image


def read_visible_mask(path: str | os.PathLike | None, shape: tuple[int, int]) -> np.ndarray:
    """The uploaded (or drawn, or segmented) visible mask as ``(H, W)`` bool, the photo's size, not empty."""
    if path is None:
        raise InputError("give the object's visible mask: click it, draw it or upload it")
    mask = as_mask(open_image(path), "the visible mask", allow_empty=True)
    if mask.shape != tuple(shape):
        raise InputError(
            f"the visible mask is {mask.shape[1]}x{mask.shape[0]} but the photo is {shape[1]}x{shape[0]}: "
            "the mask must have the photo's size"
        )
    if not mask.any():
        raise InputError("the visible mask is empty: mark the visible part of the object")
    return mask


def overlay_amodal(image: np.ndarray, result: AmodalObject) -> np.ndarray:
    """The photo with the visible part tinted blue and the completed hidden part tinted orange."""
    tinted = image.astype(np.float32)
    for mask, color in ((result.visible_mask, (40, 120, 255)), (result.occluded_mask, (255, 140, 0))):
        tinted[mask] = 0.45 * tinted[mask] + 0.55 * np.array(color, np.float32)
    return np.round(tinted).astype(np.uint8)


class AppModels:
    """The models the app uses, each loaded once on first use (one lock: requests wait instead of loading twice).

    Args:
        model: pix2gestalt folder or hub id (None: the embedded demonstration model).
        zero123_model: Zero-1-to-3 folder or hub id for "make 3D" (None: the embedded one).
        sam_model: SAM hub id or folder for clicks.
        device: torch device (None: CUDA when present).
    """

    def __init__(self, model=None, zero123_model=None, sam_model: str | None = None, device=None):
        from ..prompts import DEFAULT_SAM

        self.model, self.zero123_model, self.device = model, zero123_model, device
        self.sam_model = sam_model or DEFAULT_SAM
        self._pipeline = None
        self._prompter = None
        self._image_to_3d: dict = {}
        self._lock = threading.Lock()

    def completer(self, settings: CompletionSettings):
        """An :class:`~p2g3d.AmodalCompleter` with ``settings`` around the one loaded pipeline."""
        from ..completer import AmodalCompleter

        with self._lock:
            if self._pipeline is None:
                self._pipeline = AmodalCompleter.from_pretrained(self.model, self.device).pipeline
        return AmodalCompleter(self._pipeline, **vars(settings))

    def prompter(self):
        """SAM (:class:`~p2g3d.prompts.VisibleMaskPrompter`); InputError naming what to download when missing."""
        from ..prompts import VisibleMaskPrompter

        with self._lock:
            if self._prompter is None:
                self._prompter = VisibleMaskPrompter.from_pretrained(self.sam_model, self.device)
        return self._prompter

    def image_to_3d(self, views: int, steps: int):
        """The ``zero123`` image-to-3D backend with ``views`` per ring and ``steps`` sampling steps."""
        from ..integrations.registry import IMAGE_TO_3D, create_backend

        with self._lock:
            key = (views, steps)
            if key not in self._image_to_3d:
                self._image_to_3d[key] = create_backend(
                    "zero123",
                    IMAGE_TO_3D,
                    model=self.zero123_model,
                    num_views=views,
                    num_inference_steps=steps,
                    device=self.device,
                )
            return self._image_to_3d[key]


def complete(
    models: AppModels,
    photo: str | os.PathLike | None,
    visible_mask: str | os.PathLike | None,
    settings: CompletionSettings,
    *,
    seed: int = 0,
    max_side: int = MAX_IMAGE_SIDE,
) -> Completed:
    """Complete the object of ``visible_mask`` in ``photo`` (files); the item id of the seed rule is ``"app"``."""
    image = read_photo(photo, max_side)
    mask = read_visible_mask(visible_mask, image.shape[:2])
    (result,) = models.completer(settings)(image, mask, seed=seed, item="app", show_progress=True)
    numbers = {
        "occluded_fraction": round(result.occluded_fraction, 4),
        "confidence": round(result.confidence, 4),
        "visible_pixels": int(result.visible_mask.sum()),
        "amodal_pixels": int(result.amodal_mask.sum()),
        "amodal_box": list(result.amodal_box),
        "samples": settings.num_samples,
        "steps": settings.num_inference_steps,
        "guidance": settings.guidance_scale,
        "seed": seed,
        "model": models.model or "embedded",
    }
    return Completed(
        whole_rgba=result.whole_rgba,
        amodal_mask=result.amodal_mask.astype(np.uint8) * 255,
        overlay=overlay_amodal(image, result),
        samples=list(result.sample_images),
        numbers=numbers,
        result=result,
    )


def mask_from_clicks(
    models: AppModels, photo: str | os.PathLike | None, clicks: list[tuple[float, float, int]]
) -> tuple[np.ndarray, float]:
    """The visible mask SAM gives for the clicks ``(x, y, label)`` on the photo (label 1 on the object, 0 on an
    occluder or the background): ``(H, W)`` uint8 (255 inside) and SAM's score."""
    from ..prompts import Prompt

    image = read_photo(photo)
    if not any(label == 1 for _, _, label in clicks):
        raise InputError("click the object at least once (object clicks mark it, occluder clicks exclude)")
    prompt = Prompt(points=tuple((x, y) for x, y, _ in clicks), labels=tuple(label for _, _, label in clicks))
    found = models.prompter()(image, prompt)
    return found.mask.astype(np.uint8) * 255, found.score


def make_3d(models: AppModels, result: AmodalObject | None, *, views: int, steps: int, seed: int = 0) -> dict:
    """Turn a completed object into a mesh with the ``zero123`` backend and write what the page offers for
    download into a new folder: ``object.glb``, ``amodal_mask.png``, ``amodal_mask_rle.json`` (COCO RLE),
    ``whole_object.png`` and ``views.zip`` (the views folder the mesh was made from). Returns their paths."""
    from ..integrations.base import save_views
    from ..meshes import export_mesh

    if result is None:
        raise InputError("complete an object first, then make it 3D")
    generated = models.image_to_3d(views, steps).generate(result, seed=seed, show_progress=True)
    folder = Path(tempfile.mkdtemp(prefix="p2g3d-app-"))
    files = {
        "glb": export_mesh(generated.mesh, folder / "object.glb"),
        "mask": save_png(folder / "amodal_mask.png", result.amodal_mask),
        "rle": save_json(folder / "amodal_mask_rle.json", {"segmentation": encode_rle(result.amodal_mask)}),
        "whole": save_png(folder / "whole_object.png", result.whole_rgba),
    }
    save_views(list(generated.views), folder / "views")
    files["views"] = Path(shutil.make_archive(str(folder / "views"), "zip", folder / "views"))
    return {key: str(path) for key, path in files.items()}
