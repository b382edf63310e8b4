"""The 3D occlusion benchmark: does completing occluded objects first make their reconstruction better?

Over synthetic occluded scenes (:mod:`p2g3d.scenes`), the target is reconstructed by space carving
(:mod:`p2g3d.integrations.carving`) from four kinds of masks, and compared with its ground-truth mesh under a named
protocol (:mod:`p2g3d.metrics`):

* ``visible``: the target's visible masks (what an instance segmenter gives): occluded parts get carved away;
* ``all-foreground``: target and occluder together (a foreground segmenter that cannot tell them apart): the
  occluder's silhouette adds spurious volume;
* ``amodal (oracle)``: the ground-truth amodal masks, the upper bound for any completion method;
* ``pix2gestalt``: the amodal masks of an :class:`~p2g3d.completer.AmodalCompleter` run on every view, when one
  is given.

The carving box is 2 units wide around the target (larger than the unit-sized target, as when the object's extent is
unknown), so clutter next to the target can enter the all-foreground hull.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from .integrations.base import MaskedView
from .integrations.carving import VisualHullReconstructor
from .metrics import evaluate
from .scenes import OccludedScene, SceneView

logger = logging.getLogger(__name__)

BENCHMARK_BOUNDS = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
MaskSource = Callable[[SceneView], np.ndarray]
BASE_METHODS: dict[str, MaskSource] = {
    "visible": lambda view: view.visible_mask,
    "all-foreground": lambda view: view.foreground_mask,
    "amodal (oracle)": lambda view: view.amodal_mask,
}
TABLE_METRICS = ("chamfer", "f_score@0.05", "f_score@0.1", "volume_iou")


def completer_masks(completer) -> MaskSource:
    """A mask source running ``completer`` on each view's image and visible mask."""

    def source(view: SceneView) -> np.ndarray:
        (obj,) = completer(view.image, view.visible_mask, seed=0, show_progress=False)
        return obj.amodal_mask

    return source


@dataclass(frozen=True)
class BenchmarkRow:
    """One (scene, method) reconstruction and its metrics."""

    seed: int
    method: str
    metrics: dict


def reconstruct_scene(
    scene: OccludedScene, methods: dict[str, MaskSource], resolution: int = 96
) -> dict[str, object]:
    """``{method: mesh}``: the target carved from each method's masks."""
    carve = VisualHullReconstructor(resolution=resolution, bounds=BENCHMARK_BOUNDS)
    meshes = {}
    for name, source in methods.items():
        views = [MaskedView(view.image, source(view), view.camera) for view in scene.views]
        meshes[name] = carve.reconstruct(views)
    return meshes


def run_benchmark(
    scenes: Sequence[OccludedScene],
    methods: dict[str, MaskSource],
    *,
    protocol: str = "syncdreamer",
    resolution: int = 96,
    num_points: int = 20000,
) -> list[BenchmarkRow]:
    """Reconstruct every scene with every method and evaluate against the ground truth."""
    rows = []
    for scene in tqdm(scenes, desc="occlusion benchmark", unit="scene"):
        for name, mesh in reconstruct_scene(scene, methods, resolution).items():
            rows.append(BenchmarkRow(scene.seed, name, evaluate(mesh, scene.target, protocol, num_points=num_points)))
    return rows


def summary_table(rows: Sequence[BenchmarkRow], protocol: str) -> str:
    """Markdown table of the mean (and standard deviation) of each metric per method."""
    methods = list(dict.fromkeys(row.method for row in rows))
    header = "| masks | " + " | ".join(TABLE_METRICS) + " |"
    lines = [f"Protocol: {protocol}; {len({row.seed for row in rows})} scenes; mean +- std.", "", header]
    lines.append("|---|" + "---:|" * len(TABLE_METRICS))
    for method in methods:
        values = [[row.metrics[m] for row in rows if row.method == method] for m in TABLE_METRICS]
        cells = [f"{np.mean(v):.4f} +- {np.std(v):.4f}" for v in values]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
