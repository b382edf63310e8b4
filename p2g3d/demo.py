"""The main job end to end, on any machine: complete occluded objects in synthetic multi-view scenes,
reconstruct meshes with and without completion, export them, and measure how much completion helps.

Runs the embedded demonstration model by default (or any model folder), on the CPU in a few minutes.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np

from .completer import AmodalCompleter
from .export import export_mesh
from .io import save_json, save_png, write_atomic
from .metrics import evaluate
from .occlusion3d import BASE_METHODS, BenchmarkRow, completer_masks, reconstruct_scene, summary_table
from .scenes import make_scene

logger = logging.getLogger(__name__)


def _mask_row(scene, source) -> np.ndarray:
    tiles = []
    for view in scene.views:
        tile = np.zeros((*view.amodal_mask.shape, 3), np.uint8)
        tile[view.amodal_mask] = 90  # the true amodal mask in grey underneath
        tile[source(view)] = 255
        tiles.append(tile)
    return np.concatenate(tiles, 1)


def run_demo(
    output: str | os.PathLike,
    *,
    scenes: int = 2,
    model: str | None = None,
    steps: int = 20,
    samples: int = 3,
    seed: int = 0,
    device: str | None = None,
) -> str:
    """Run the demo; returns the metrics table (also written to ``output/metrics.md`` and ``metrics.json``).

    For each scene (seeds ``seed`` .. ``seed + scenes - 1``): every view's target is completed from its visible mask,
    the target is carved from visible, all-foreground, completed and oracle amodal masks, each mesh is exported as
    ``scene_S/<method>.glb`` next to the ground truth, and ``scene_S/preview.png`` shows the views with the masks
    (rows: images, visible, completed, all-foreground; the true amodal mask in grey under each).
    """
    output = Path(output)
    started = time.perf_counter()
    completer = AmodalCompleter.from_pretrained(model, device=device, num_samples=samples, num_inference_steps=steps)
    methods = dict(BASE_METHODS)
    methods["pix2gestalt (completed)"] = completer_masks(completer)
    rows = []
    for scene_seed in range(seed, seed + scenes):
        scene = make_scene(scene_seed)
        folder = output / f"scene_{scene_seed}"
        for name, mesh in reconstruct_scene(scene, methods).items():
            export_mesh(mesh, folder / f"{name.split()[0]}.glb")
            rows.append(BenchmarkRow(scene_seed, name, evaluate(mesh, scene.target, "syncdreamer")))
        export_mesh(scene.target, folder / "ground_truth.glb")
        preview = [np.concatenate([view.image for view in scene.views], 1)]
        preview += [_mask_row(scene, methods[m]) for m in ("visible", "pix2gestalt (completed)", "all-foreground")]
        save_png(folder / "preview.png", np.concatenate(preview, 0))
    table = summary_table(rows, "syncdreamer")
    write_atomic(output / "metrics.md", (table + "\n").encode())
    save_json(output / "metrics.json", {"rows": [{"seed": r.seed, "method": r.method, **r.metrics} for r in rows]})
    logger.info("demo finished in %.0f s", time.perf_counter() - started)
    return table
