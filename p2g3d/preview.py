"""Preview sheets: input, visible mask, samples and amodal mask side by side."""

from __future__ import annotations

import numpy as np
import PIL.Image

from .types import AmodalObject

PANEL_HEIGHT = 192
GAP = 4


def _panel(array: np.ndarray, height: int) -> PIL.Image.Image:
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    image = PIL.Image.fromarray(array).convert("RGB")
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), PIL.Image.Resampling.BILINEAR)


def preview_sheet(image: np.ndarray, result: AmodalObject, height: int = PANEL_HEIGHT) -> np.ndarray:
    """``(H, W, 3)`` uint8 input and a result -> one ``(height, W', 3)`` uint8 sheet.

    Panels, left to right: input with the visible mask tinted, visible mask, every sample, amodal mask (visible
    part white, occluded part orange).
    """
    tinted = image.astype(np.float32)
    tinted[result.visible_mask] = 0.5 * tinted[result.visible_mask] + 0.5 * np.array([0, 160, 255])
    amodal = np.zeros((*result.amodal_mask.shape, 3), dtype=np.uint8)
    amodal[result.visible_mask] = 255
    amodal[result.occluded_mask] = (255, 150, 0)
    panels = [_panel(tinted.astype(np.uint8), height), _panel(result.visible_mask, height)]
    panels += [_panel(sample, height) for sample in result.sample_images]
    panels.append(_panel(amodal, height))
    sheet = PIL.Image.new("RGB", (sum(p.width for p in panels) + GAP * (len(panels) - 1), height), (40, 40, 40))
    x = 0
    for panel in panels:
        sheet.paste(panel, (x, 0))
        x += panel.width + GAP
    return np.asarray(sheet)


def mask_overlay(mask: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool mask over the true mask -> ``(H, W, 3)`` uint8 tile: the mask white, the true mask grey
    underneath, black elsewhere."""
    tile = np.zeros((*truth.shape, 3), np.uint8)
    tile[truth] = 90
    tile[mask] = 255
    return tile
