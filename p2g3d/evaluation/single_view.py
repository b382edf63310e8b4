"""The single-view protocol (pix2gestalt's Table 3 on synthetic scenes): ONE occluded image -> image-to-3D -> mesh.

For each synthetic scene (:mod:`p2g3d.scenes`, true mesh known) one occluded view is the input, and the object
is handed to an image-to-3D backend as

* ``visible``: the visible cut-out (an instance segmenter's mask): the hidden part is missing;
* ``all-foreground``: target and occluders together (a foreground segmenter that cannot tell them apart);
* ``pix2gestalt (completed)``: the :class:`~p2g3d.AmodalCompleter`'s whole object (item ``scene_S_view_V`` of the
  seed rule, as in the multi-view benchmark);
* ``whole (oracle)``: the target rendered alone, unoccluded: the upper bound for any completion.

Every method gets the same backend, input elevation and backend seed (``object_seed(seed, "scene_S_view_V", 0)``).
Meshes are compared with the true mesh under the ``"unit-box"`` protocol (:mod:`p2g3d.metrics`): both normalised to a
unit bounding box, no rotation. The built-in backends express the mesh in a world whose input camera sits at azimuth 0,
like view 0 of the scenes, so the orientation is known; a single image fixes neither size nor distance, so those are
normalised away.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from ..io import save_png
from ..meshes import export_mesh
from ..metrics import evaluate
from ..preview import image_to_3d_sheet, on_white
from ..sampling import object_seed
from ..scenes import OccludedScene
from .occlusion3d import BenchmarkRow, view_item

logger = logging.getLogger(__name__)
COMPLETED = "pix2gestalt (completed)"
METHODS = ("visible", "all-foreground", COMPLETED, "whole (oracle)")


def single_view_sources(scene: OccludedScene, completer=None, *, view: int = 0, seed: int = 0) -> dict[str, tuple]:
    """``{method: (rgb, mask) or AmodalObject}`` for view ``view`` of ``scene`` (the completion only with a
    ``completer``)."""
    shown = scene.views[view]
    sources = {
        "visible": (shown.image, shown.visible_mask),
        "all-foreground": (shown.image, shown.foreground_mask),
    }
    if completer is not None:
        sources[COMPLETED] = completer(
            shown.image, shown.visible_mask, seed=seed, item=view_item(scene, view), show_progress=False
        )[0]
    sources["whole (oracle)"] = (shown.whole_image, shown.amodal_mask)
    return sources


def run_single_view_benchmark(
    scenes: Sequence[OccludedScene],
    backend,
    completer=None,
    *,
    view: int = 0,
    seed: int = 0,
    protocol: str = "unit-box",
    num_points: int = 20000,
    output: str | os.PathLike | None = None,
) -> list[BenchmarkRow]:
    """Every scene x method through ``backend`` (an image-to-3D backend), evaluated against the true mesh.

    A method whose backend run fails (ValueError) gets a row with ``{"error": message}`` instead of metrics. With
    ``output``, writes ``scene_S/<method>.glb``, ``scene_S/<method>_preview.png`` and ``ground_truth.glb``.
    """
    rows = []
    for scene in tqdm(scenes, desc="single-view benchmark", unit="scene"):
        sources = single_view_sources(scene, completer, view=view, seed=seed)
        folder = None if output is None else Path(output) / f"scene_{scene.seed}"
        for method, source in sources.items():
            try:
                backend_seed = object_seed(seed, view_item(scene, view), 0)
                result = backend.generate(source, seed=backend_seed, show_progress=False)
            except ValueError as error:  # e.g. generated views that carve everything away: counted, not fatal
                logger.warning("scene %d, %s: no mesh (%s)", scene.seed, method, error)
                rows.append(BenchmarkRow(scene.seed, method, {"error": str(error)}))
                continue
            rows.append(
                BenchmarkRow(scene.seed, method, evaluate(result.mesh, scene.target, protocol, num_points=num_points))
            )
            if folder is not None:
                stem = method.split()[0]
                export_mesh(result.mesh, folder / f"{stem}.glb")
                shown = scene.views[view]
                sheet = image_to_3d_sheet(shown.image, shown.visible_mask, on_white(source), result)
                save_png(folder / f"{stem}_preview.png", sheet)
        if folder is not None:
            export_mesh(scene.target, folder / "ground_truth.glb")
    return rows
