"""Preview sheets: input, visible mask, samples and amodal mask side by side; image-to-3D sheets (input, what the
backend got, its views, turntable renders of the mesh); rows of panels for other previews."""

from __future__ import annotations

import numpy as np
import PIL.Image

from .cameras import intrinsics_from_fov, orbit_cameras
from .io import as_cutout
from .types import AmodalObject

PANEL_HEIGHT = 192
MESH_PANEL = 128
GAP = 4


def _panel(array: np.ndarray, height: int) -> PIL.Image.Image:
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    image = PIL.Image.fromarray(array).convert("RGB")
    width = max(1, round(image.width * height / image.height))
    return image.resize((width, height), PIL.Image.Resampling.BILINEAR)


def panel_row(arrays, height: int = PANEL_HEIGHT) -> PIL.Image.Image:
    """Images (uint8 RGB / gray, or bool masks) scaled to ``height`` and set side by side, ``GAP`` pixels apart on
    dark grey."""
    panels = [_panel(array, height) for array in arrays]
    row = PIL.Image.new("RGB", (sum(p.width for p in panels) + GAP * (len(panels) - 1), height), (40, 40, 40))
    x = 0
    for panel in panels:
        row.paste(panel, (x, 0))
        x += panel.width + GAP
    return row


def stack_rows(rows) -> np.ndarray:
    """Rows of :func:`panel_row` stacked top to bottom, ``GAP`` apart -> ``(H, W, 3)`` uint8."""
    size = (max(r.width for r in rows), sum(r.height for r in rows) + GAP * (len(rows) - 1))
    sheet = PIL.Image.new("RGB", size, (40, 40, 40))
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height + GAP
    return np.asarray(sheet)


def tint(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` uint8 image with the ``(H, W)`` bool mask tinted blue (the visible mask in every preview)."""
    tinted = image.astype(np.float32)
    tinted[mask] = 0.5 * tinted[mask] + 0.5 * np.array([0, 160, 255])
    return tinted.astype(np.uint8)


def preview_sheet(image: np.ndarray, result: AmodalObject, height: int = PANEL_HEIGHT) -> np.ndarray:
    """``(H, W, 3)`` uint8 input and a result -> one ``(height, W', 3)`` uint8 sheet.

    Panels, left to right: input with the visible mask tinted, visible mask, every sample, amodal mask (visible
    part white, occluded part orange).
    """
    amodal = np.zeros((*result.amodal_mask.shape, 3), dtype=np.uint8)
    amodal[result.visible_mask] = 255
    amodal[result.occluded_mask] = (255, 150, 0)
    return np.asarray(
        panel_row([tint(image, result.visible_mask), result.visible_mask, *result.sample_images, amodal], height)
    )


def mask_overlay(mask: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(H, W)`` bool mask over the true mask -> ``(H, W, 3)`` uint8 tile: the mask white, the true mask grey
    underneath, black elsewhere."""
    tile = np.zeros((*truth.shape, 3), np.uint8)
    tile[truth] = 90
    tile[mask] = 255
    return tile


def mesh_turntable(mesh, count: int = 4, size: int = MESH_PANEL, elevation_deg: float = 20.0) -> list[np.ndarray]:
    """``count`` ``(size, size, 3)`` uint8 renders of ``mesh`` around +Z (starting at azimuth 0, the input view of
    the built-in backends), far enough to see the whole mesh."""
    radius = 2.2 * float(np.linalg.norm(mesh.bounds, axis=1).max()) / 0.75
    cameras = orbit_cameras(count, elevation_deg, radius, intrinsics_from_fov(40.0, size, size), size, size)
    from .render import render  # Open3D loads on use

    return [render([mesh], camera).rgb for camera in cameras]


def image_to_3d_sheet(image: np.ndarray, visible_mask: np.ndarray, given: np.ndarray, result) -> np.ndarray:
    """Preview: input with the visible mask tinted and what the backend got (``given``, RGB on white; top), the
    backend's views (middle, when it has any), renders of the mesh from four sides (bottom). ``(H, W, 3)`` uint8."""
    rows = [panel_row([tint(image, visible_mask), given], MESH_PANEL)]
    if result.views:
        rows.append(panel_row([view.image for view in result.views[:12]], MESH_PANEL // 2))
    rows.append(panel_row(mesh_turntable(result.mesh), MESH_PANEL))
    return stack_rows(rows)


def on_white(source) -> np.ndarray:
    """What a backend gets, for previews: the object of ``source`` (AmodalObject, RGBA, ``(rgb, mask)``) on white."""
    rgb, mask = as_cutout(source)
    return np.where(mask[..., None], rgb, 255).astype(np.uint8)
