"""From one occluded photo to meshes: complete each object, hand it to an image-to-3D backend, export, preview and
(with a ground truth) measure. The function behind ``p2g3d image-to-3d`` and ``examples/occluded_image_to_mesh.py``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..cameras import intrinsics_from_fov, orbit_cameras
from ..io import as_cutout, object_masks, save_json, save_png
from ..meshes import export_mesh
from ..preview import panel_row, stack_rows, tint
from ..render import render

logger = logging.getLogger(__name__)

PANEL = 128


def mesh_turntable(mesh, count: int = 4, size: int = PANEL, elevation_deg: float = 20.0) -> list[np.ndarray]:
    """``count`` ``(size, size, 3)`` uint8 renders of ``mesh`` around +Z (starting at azimuth 0, the input view of
    the built-in backends), far enough to see the whole mesh."""
    radius = 2.2 * float(np.linalg.norm(mesh.bounds, axis=1).max()) / 0.75
    cameras = orbit_cameras(count, elevation_deg, radius, intrinsics_from_fov(40.0, size, size), size, size)
    return [render([mesh], camera).rgb for camera in cameras]


def image_to_3d_sheet(image: np.ndarray, visible_mask: np.ndarray, given: np.ndarray, result) -> np.ndarray:
    """Preview: input with the visible mask tinted and what the backend got (``given``, RGB on white; top), the
    backend's views (middle, when it has any), renders of the mesh from four sides (bottom). ``(H, W, 3)`` uint8."""
    rows = [panel_row([tint(image, visible_mask), given], PANEL)]
    if result.views:
        rows.append(panel_row([view.image for view in result.views[:12]], PANEL // 2))
    rows.append(panel_row(mesh_turntable(result.mesh), PANEL))
    return stack_rows(rows)


def on_white(source) -> np.ndarray:
    """What a backend gets, for previews: the object of ``source`` (AmodalObject, RGBA, ``(rgb, mask)``) on white."""
    rgb, mask = as_cutout(source)
    return np.where(mask[..., None], rgb, 255).astype(np.uint8)


def occluded_image_to_meshes(
    image: np.ndarray,
    visible_masks,
    backend,
    output: str | os.PathLike,
    *,
    completer=None,
    ground_truth=None,
    protocol: str = "triposr",
    seed: int = 0,
) -> list[dict]:
    """Complete every object of ``image`` and turn it into a mesh.

    Args:
        image: ``(H, W, 3)`` uint8 scene.
        visible_masks: the objects' visible masks (anything :func:`p2g3d.io.object_masks` takes).
        backend: an image-to-3D backend (:class:`~p2g3d.integrations.image_to_3d.ImageTo3D`).
        output: folder for ``object_NN.glb``, ``object_NN_preview.png`` and ``summary.json``.
        completer: an :class:`~p2g3d.AmodalCompleter`; None hands the visible cut-outs to the backend as they are.
        ground_truth: a mesh (or path) to compare every object's mesh with under ``protocol``.
        seed: object i uses ``seed + i`` for completion and generation.

    Returns:
        One record per object: files, the input camera, the completion's occluded share and confidence, metrics.
    """
    from ..metrics import evaluate

    output = Path(output)
    objects = object_masks(visible_masks, *image.shape[:2])
    records = []
    for index, (label, mask) in enumerate(tqdm(objects, desc="objects", unit="object", disable=len(objects) < 2)):
        record: dict = {"object": index, "label": label}
        source = (image, mask)
        if completer is not None:
            source = completer(image, mask, seed=seed + index)[0]
            record.update(occluded_fraction=source.occluded_fraction, confidence=source.confidence)
        result = backend.generate(source, seed=seed + index)
        mesh_file = export_mesh(result.mesh, output / f"object_{index:02d}.glb")
        preview_file = save_png(
            output / f"object_{index:02d}_preview.png", image_to_3d_sheet(image, mask, on_white(source), result)
        )
        record.update(
            mesh=mesh_file.name, preview=preview_file.name, backend=result.backend, camera=result.camera.to_dict()
        )
        if ground_truth is not None:
            metrics = evaluate(result.mesh, ground_truth, protocol)
            record["metrics"] = {key: value for key, value in metrics.items() if key != "alignment"}
        records.append(record)
        logger.info("object %d: %s", index, mesh_file)
    save_json(output / "summary.json", {"objects": records, "completed": completer is not None, "seed": seed})
    return records
