"""``p2g3d image-to-3d``: from one occluded photo to meshes: complete each object, hand it to an image-to-3D
backend, export, preview and (with a ground truth) measure. :func:`occluded_image_to_meshes` is the work on
arrays (also used by ``examples/occluded_image_to_mesh.py``); :func:`run_image_to_3d` the command on files.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..io import listed_outputs, object_masks, remove_outputs, save_json, save_png
from ..meshes import export_mesh
from ..metrics import PROTOCOLS
from ..preview import image_to_3d_sheet, on_white
from ..sampling import object_seed
from ..settings import MAX_VIEWS, CompletionSettings, ModelSettings, RuntimeSettings, nested, option
from ..validation import check_choice, check_number

logger = logging.getLogger(__name__)


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
    item: str | int = 0,
    model: str | None = None,
) -> list[dict]:
    """Complete every object of ``image`` and turn it into a mesh.

    Args:
        image: ``(H, W, 3)`` uint8 scene.
        visible_masks: the objects' visible masks (anything :func:`p2g3d.io.object_masks` takes).
        backend: an image-to-3D backend (:class:`~p2g3d.integrations.image_to_3d.ImageTo3D`).
        output: folder for ``object_NN.glb``, ``object_NN_preview.png`` and ``summary.json``.
        completer: an :class:`~p2g3d.AmodalCompleter`; None hands the visible cut-outs to the backend as they are.
        ground_truth: a mesh (or path) to compare every object's mesh with under ``protocol``.
        seed, item: the base seed and the image's item id (its file stem in ``p2g3d image-to-3d``): object i is
            completed under the seed rule (:mod:`p2g3d.sampling`), and the backend gets ``object_seed(seed, item, i)``.
        model: how ``summary.json`` names the completion model (``"embedded"``, a folder or hub id).

    Returns:
        One record per object: files, the input camera, the completion's occluded share and confidence, metrics.
    """
    from ..metrics import evaluate

    output = Path(output)
    objects = object_masks(visible_masks, *image.shape[:2])
    previous = listed_outputs(output / "summary.json", ("mesh", "preview"))
    completed = None if completer is None else completer(image, [mask for _, mask in objects], seed=seed, item=item)
    records = []
    for index, (label, mask) in enumerate(tqdm(objects, desc="objects", unit="object", disable=len(objects) < 2)):
        record: dict = {"object": index, "label": label}
        source = (image, mask)
        if completed is not None:
            source = completed[index]
            record.update(occluded_fraction=source.occluded_fraction, confidence=source.confidence)
        result = backend.generate(source, seed=object_seed(seed, item, index))
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
    save_json(
        output / "summary.json",
        {"objects": records, "completed": completer is not None, "model": model, "seed": seed, "item": item},
    )
    remove_outputs(output, previous - {record[key] for record in records for key in ("mesh", "preview")})
    return records


@dataclass(frozen=True)
class ImageTo3DJob:
    """Settings of :func:`run_image_to_3d` (the ``p2g3d image-to-3d`` options). Backend options (views,
    elevations, steps, grid size) are passed only when set; a backend refuses options it lacks."""

    image: Path = option(None, "image", "scene image (8-bit PNG / JPEG)", type=Path)
    masks: list[Path] = option([], "--mask", "visible mask (repeatable)", type=Path, action="append", required=True)
    output: Path = option(None, "--output", "output folder", type=Path, required=True)
    backend: str = option("zero123", "--backend", "registered image-to-3D backend (zero123, shap-e, ...)")
    backend_model: str | None = option(None, "--backend-model", "the backend's model folder or hub id")
    no_complete: bool = option(False, "--no-complete", "hand the visible cut-outs to the backend as they are")
    ground_truth: Path | None = option(None, "--ground-truth", "mesh to compare each object's mesh with", type=Path)
    protocol: str = option("triposr", "--protocol", "metric protocol for --ground-truth", choices=PROTOCOLS)
    views: int | None = option(None, "--views", "zero123: views per ring")
    input_elevation: float | None = option(None, "--input-elevation", "zero123: input view elevation, degrees")
    elevations: list[float] = option(
        [], "--elevation", "zero123: elevation of a ring of generated views, degrees (repeatable)", action="append"
    )
    backend_steps: int | None = option(None, "--backend-steps", "backend sampling steps")
    grid_size: int | None = option(None, "--grid-size", "shap-e: marching-cubes grid per side")
    model: ModelSettings = nested(ModelSettings)
    completion: CompletionSettings = nested(CompletionSettings)
    runtime: RuntimeSettings = nested(RuntimeSettings)

    def __post_init__(self):
        check_choice(self, "protocol", PROTOCOLS)
        for name, high in (("views", MAX_VIEWS), ("backend_steps", 1000), ("grid_size", 256)):
            if getattr(self, name) is not None:
                check_number(self, name, integer=True, low=1, high=high)
        if self.input_elevation is not None:
            check_number(self, "input_elevation", low=-90, high=90, low_open=True, high_open=True)
        for elevation in self.elevations:
            if not -90 < elevation < 90:
                raise InputError(f"every --elevation must be in (-90, 90) degrees, got {elevation}")

    def backend_options(self) -> dict:
        """The backend options given, in the backends' names."""
        options = {
            "model": self.backend_model,
            "device": self.runtime.device,
            "dtype": self.runtime.dtype,
            "num_views": self.views,
            "input_elevation": self.input_elevation,
            "ring_elevations": tuple(self.elevations) or None,
            "num_inference_steps": self.backend_steps,
            "grid_size": self.grid_size,
        }
        return {key: value for key, value in options.items() if value is not None}


def run_image_to_3d(job: ImageTo3DJob) -> list[dict]:
    """Every object of ``job.image`` completed (item id: the image's file stem) and turned into a mesh in
    ``job.output``; the inputs, the ground truth and the output folder are checked before any model loads."""
    from ..integrations.registry import IMAGE_TO_3D, create_backend
    from ..io import check_output_folder, load_image, load_mask
    from ..meshes import as_trimesh, check_mesh
    from .stages import load_completer

    image = load_image(job.image)
    masks = [load_mask(path) for path in job.masks]
    object_masks(masks, *image.shape[:2])
    ground_truth = None
    if job.ground_truth is not None:  # loaded and checked before any model work
        ground_truth = check_mesh(as_trimesh(job.ground_truth), f"ground-truth mesh {job.ground_truth}")
    check_output_folder(job.output)
    backend = create_backend(job.backend, IMAGE_TO_3D, **job.backend_options())
    completer = None if job.no_complete else load_completer(job.model, job.completion, job.runtime)
    return occluded_image_to_meshes(
        image,
        masks,
        backend,
        job.output,
        completer=completer,
        ground_truth=ground_truth,
        protocol=job.protocol,
        seed=job.runtime.seed,
        item=Path(job.image).stem,
        model=None if job.no_complete else job.model.identity,
    )


def report(records: list[dict], job: ImageTo3DJob) -> str:
    """What ``p2g3d image-to-3d`` prints: one line per object (mesh file, and metrics with a ground truth)."""
    lines = []
    for record in records:
        line = f"object {record['object']}: {Path(job.output) / record['mesh']}"
        if "metrics" in record:
            iou = record["metrics"]["volume_iou"]
            iou_text = "n/a" if iou is None else f"{iou:.4f}"
            line += f"  chamfer {record['metrics']['chamfer']:.4f}  volume IoU {iou_text} ({job.protocol})"
        lines.append(line)
    return "\n".join(lines)
