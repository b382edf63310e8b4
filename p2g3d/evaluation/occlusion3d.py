"""The 3D occlusion protocol: does completing occluded objects first make their reconstruction better?

Over synthetic occluded scenes (:mod:`p2g3d.scenes`), the target is reconstructed by the given multi-view reconstructor
(space carving, :mod:`p2g3d.integrations.carving`, in the benchmark and the demo) from each method's masks and compared
with its ground-truth mesh under a named protocol (:mod:`p2g3d.metrics`). Methods:

* ``visible``: the target's visible masks (what an instance segmenter gives): occluded parts get carved away;
* ``all-foreground``: target and occluder together (a foreground segmenter that cannot tell them apart): the
  occluder's silhouette adds spurious volume;
* ``amodal (oracle)``: the ground-truth amodal masks, the upper bound for any completion method;
* ``pix2gestalt (completed)``: the amodal masks an :class:`~p2g3d.completer.AmodalCompleter` gives for every view,
  when one is given, each view completed alone; view ``v`` of scene ``s`` is the item ``scene_s_view_v`` of the
  seed rule (:mod:`p2g3d.sampling`);
* ``fused (<method>)``: the same completions reconciled in 3D by each fusion method of :mod:`p2g3d.fusion`, and the
  consistent masks rendered back into every view (the masks ``p2g3d reconstruct --complete`` reconstructs from).

Masks are arrays, computed once per scene and method (:func:`scene_masks`); the same arrays are carved and shown in the
preview, and their mean IoU with the true amodal masks is the ``mask_iou`` metric of each row. The benchmark carves in a
box 2 units wide around the target (:data:`BENCHMARK_BOUNDS`, larger than the unit-sized target, as when the object's
extent is unknown), so clutter next to the target can enter the all-foreground hull.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..fusion import SilhouetteFusion, VoxelGrid, fuse_views, silhouette_probability
from ..io import save_png
from ..masks import mask_iou
from ..meshes import export_mesh
from ..metrics import evaluate
from ..preview import mask_overlay
from ..scenes import OccludedScene
from ..types import MaskedView

BENCHMARK_BOUNDS = ((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0))
COMPLETED = "pix2gestalt (completed)"
VISIBLE, ORACLE = "visible", "amodal (oracle)"
TABLE_METRICS = ("chamfer", "f_score@0.05", "f_score@0.1", "volume_iou", "mask_iou")


@dataclass(frozen=True)
class BenchmarkRow:
    """One (scene, method) reconstruction and its metrics."""

    seed: int
    method: str
    metrics: dict


def view_item(scene: OccludedScene, view: int) -> str:
    """The item id of view ``view`` of ``scene`` in the seed rule: ``scene_S_view_V``."""
    return f"scene_{scene.seed}_view_{view}"


def fused_method(fusion: SilhouetteFusion) -> str:
    """The benchmark's name of a fusion: ``fused (<label>)``."""
    return f"fused ({fusion.label})"


def method_file(method: str) -> str:
    """The file stem of a method's mesh: its first word (``fused-<label>`` for fusions)."""
    if method.startswith("fused ("):
        return "fused-" + method[len("fused (") : -1].replace(", ", "-").replace(" ", "-")
    return method.split()[0]


def scene_masks(
    scene: OccludedScene,
    completer=None,
    *,
    seed: int = 0,
    fusions: Sequence[SilhouetteFusion] = (),
    grid: VoxelGrid | None = None,
    seconds: dict | None = None,
) -> dict[str, list[np.ndarray]]:
    """``{method: [(H, W) bool mask per view]}``: the three baselines, plus the completer's amodal masks if given,
    plus the consistent masks of each fusion in ``fusions`` (:class:`~p2g3d.fusion.SilhouetteFusion`, over ``grid``,
    default :class:`~p2g3d.fusion.VoxelGrid`) from the same completions. ``seconds``, when given, receives the wall
    time of the completion (``"completion"``) and of each fusion (under its method name), added to what it holds."""
    masks = {
        VISIBLE: [view.visible_mask for view in scene.views],
        "all-foreground": [view.foreground_mask for view in scene.views],
        ORACLE: [view.amodal_mask for view in scene.views],
    }
    if completer is None:
        return masks
    seconds = {} if seconds is None else seconds
    start = time.perf_counter()
    completions = [
        completer(view.image, view.visible_mask, seed=seed, item=view_item(scene, index), show_progress=False)[0]
        for index, view in enumerate(scene.views)
    ]
    seconds["completion"] = seconds.get("completion", 0.0) + time.perf_counter() - start
    masks[COMPLETED] = [completion.amodal_mask for completion in completions]
    views = [MaskedView(view.image, view.visible_mask, view.camera) for view in scene.views]
    for fusion in fusions:
        start = time.perf_counter()
        probabilities = [
            silhouette_probability(v.visible_mask, c.sample_masks, evidence=fusion.evidence)
            for v, c in zip(scene.views, completions)
        ]
        _, _, consistent = fuse_views(views, probabilities, grid or VoxelGrid(), fusion)
        name = fused_method(fusion)
        masks[name] = list(consistent)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
    return masks


def mask_preview(scene: OccludedScene, masks: dict[str, list[np.ndarray]]) -> np.ndarray:
    """Rows: the scene's images, then each method's masks (white) over the true amodal masks (grey)."""
    rows = [np.concatenate([view.image for view in scene.views], 1)]
    for method_masks in masks.values():
        rows.append(np.concatenate([mask_overlay(m, v.amodal_mask) for m, v in zip(method_masks, scene.views)], 1))
    return np.concatenate(rows, 0)


def run_scene(
    scene: OccludedScene,
    masks: dict[str, list[np.ndarray]],
    reconstructor,
    *,
    protocol: str = "syncdreamer",
    num_points: int = 20000,
    output: str | os.PathLike | None = None,
) -> list[BenchmarkRow]:
    """Reconstruct the target from each method's masks with ``reconstructor`` (anything with
    ``reconstruct(views) -> trimesh.Trimesh``) and evaluate it against the ground truth.

    With ``output``, also writes ``<method>.glb`` per method, ``ground_truth.glb`` and ``preview.png`` there.
    """
    rows = []
    for method, method_masks in masks.items():
        mesh = reconstructor.reconstruct([MaskedView(v.image, m, v.camera) for v, m in zip(scene.views, method_masks)])
        metrics = evaluate(mesh, scene.target, protocol, num_points=num_points)
        metrics["mask_iou"] = float(np.mean([mask_iou(m, v.amodal_mask) for m, v in zip(method_masks, scene.views)]))
        rows.append(BenchmarkRow(scene.seed, method, metrics))
        if output is not None:
            export_mesh(mesh, Path(output) / f"{method_file(method)}.glb")
    if output is not None:
        export_mesh(scene.target, Path(output) / "ground_truth.glb")
        save_png(Path(output) / "preview.png", mask_preview(scene, masks))
    return rows


def run_benchmark(
    scenes: Sequence[OccludedScene],
    reconstructor,
    completer=None,
    *,
    seed: int = 0,
    fusions: Sequence[SilhouetteFusion] = (),
    grid: VoxelGrid | None = None,
    seconds: dict | None = None,
    protocol: str = "syncdreamer",
    num_points: int = 20000,
    output: str | os.PathLike | None = None,
) -> list[BenchmarkRow]:
    """:func:`run_scene` over every scene (with ``output``, each in ``output/scene_<seed>``); ``fusions``,
    ``grid`` and ``seconds`` as in :func:`scene_masks`."""
    rows = []
    for scene in tqdm(scenes, desc="occlusion benchmark", unit="scene"):
        folder = None if output is None else Path(output) / f"scene_{scene.seed}"
        masks = scene_masks(scene, completer, seed=seed, fusions=fusions, grid=grid, seconds=seconds)
        rows += run_scene(scene, masks, reconstructor, protocol=protocol, num_points=num_points, output=folder)
    return rows


def summary_table(rows: Sequence[BenchmarkRow], protocol: str) -> str:
    """Markdown table of the mean (and standard deviation) of each metric per method (undefined values, such as the
    volume IoU of an open mesh, are left out of the mean, and so are failed runs: rows with an ``error``, counted in
    a note below the table)."""
    methods = list(dict.fromkeys(row.method for row in rows))
    header = "| masks | " + " | ".join(TABLE_METRICS) + " |"
    lines = [f"Protocol: {protocol}; {len({row.seed for row in rows})} scenes; mean +- std.", "", header]
    lines.append("|---|" + "---:|" * len(TABLE_METRICS))
    for method in methods:
        values = [
            [row.metrics[m] for row in rows if row.method == method and row.metrics.get(m) is not None]
            for m in TABLE_METRICS
        ]
        cells = [f"{np.mean(v):.4f} +- {np.std(v):.4f}" if v else "n/a" for v in values]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    failed = {method: sum(row.method == method and "error" in row.metrics for row in rows) for method in methods}
    if any(failed.values()):
        lines += ["", "Failed runs (left out): " + ", ".join(f"{m} {n}" for m, n in failed.items() if n)]
    return "\n".join(lines)


def gap_closed(rows: Sequence[BenchmarkRow], method: str) -> dict[str, float]:
    """Share of the visible -> oracle gap that ``method`` closes, on the mean Chamfer and mean volume IoU over the
    scenes (1: as good as the true amodal masks, 0: no better than the visible masks)."""

    def mean(name: str, key: str) -> float:
        values = [row.metrics[key] for row in rows if row.method == name and row.metrics.get(key) is not None]
        return float(np.mean(values)) if values else float("nan")

    return {
        key: (mean(method, key) - mean(VISIBLE, key)) / (mean(ORACLE, key) - mean(VISIBLE, key))
        for key in ("chamfer", "volume_iou")
    }
