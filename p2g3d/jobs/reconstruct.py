"""``p2g3d reconstruct``: a mesh from a capture (views folder or nerfstudio capture) by a registered multi-view
reconstruction backend; with ``--complete``, the capture's masks are the visible masks, completed per view, fused
in 3D (:mod:`p2g3d.fusion`), and the backend reconstructs from the consistent amodal masks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..fusion import EVIDENCE, FUSION_METHODS
from ..meshes import FORMATS
from ..settings import CompletionSettings, ModelSettings, RuntimeSettings, nested, option
from ..validation import check_choice, check_number

logger = logging.getLogger(__name__)

DEFAULT_FUSION_RESOLUTION = 96
DEFAULT_FUSION_BOUND = 0.8


@dataclass(frozen=True)
class ReconstructJob:
    """Settings of :func:`run_reconstruct` (the ``p2g3d reconstruct`` options). Backend options are passed only
    when set; a backend refuses options it lacks."""

    views_dir: Path = option(
        None, "views_dir", "views folder (cameras.json) or nerfstudio capture (transforms.json)", type=Path
    )
    output: Path = option(None, "--output", "mesh file: .glb, .obj or .ply", type=Path, required=True)
    backend: str = option("carve", "--backend", "registered reconstruction backend (carve, pytorch3d, nerfstudio)")
    resolution: int | None = option(None, "--resolution", "carving (and fusion) voxels per side (fusion: 96)")
    bound: float | None = option(None, "--bound", "half side of the reconstruction (and fusion) box (fusion: 0.8)")
    iterations: int | None = option(None, "--iterations", "optimisation / training steps")
    complete: bool = option(False, "--complete", "the masks are visible masks: complete each view and fuse in 3D")
    fusion: str = option("log-odds", "--fusion", "how completed views are fused (p2g3d.fusion)", choices=FUSION_METHODS)
    evidence: str = option("vote", "--evidence", "per-view evidence: the samples' vote or share", choices=EVIDENCE)
    masks_out: Path | None = option(
        None,
        "--masks-out",
        "with --complete: write the consistent amodal masks here (views folder and nerfstudio)",
        type=Path,
    )
    model: ModelSettings = nested(ModelSettings)
    completion: CompletionSettings = nested(CompletionSettings)
    runtime: RuntimeSettings = nested(RuntimeSettings)

    def __post_init__(self):
        if Path(self.output).suffix.lower().lstrip(".") not in FORMATS:
            formats = ", ".join("." + f for f in FORMATS)
            raise InputError(f"output must end in one of {formats}, got {Path(self.output).name}")
        if self.resolution is not None:
            check_number(self, "resolution", integer=True, low=8, high=512)
        if self.bound is not None:
            check_number(self, "bound", low=0, low_open=True)
        if self.iterations is not None:
            check_number(self, "iterations", integer=True, low=1)
        check_choice(self, "fusion", FUSION_METHODS)
        check_choice(self, "evidence", EVIDENCE)
        if self.masks_out is not None and not self.complete:
            raise InputError("--masks-out writes the consistent masks of --complete: add --complete")

    def backend_options(self) -> dict:
        """The options given, in the backends' names."""
        options = {"resolution": self.resolution, "iterations": self.iterations, "device": self.runtime.device}
        if self.bound is not None:
            options["bounds"] = ((-self.bound,) * 3, (self.bound,) * 3)
        return {key: value for key, value in options.items() if value is not None}


def complete_capture(job: ReconstructJob, views: list):
    """The :class:`~p2g3d.fusion.MultiViewCompletion` of ``views`` (their masks: visible masks); view ``v`` is the
    item ``view_VVV`` of the seed rule."""
    from ..fusion import MultiViewCompleter, SilhouetteFusion, VoxelGrid
    from .stages import load_completer

    grid = VoxelGrid.cube(job.bound or DEFAULT_FUSION_BOUND, job.resolution or DEFAULT_FUSION_RESOLUTION)
    completer = load_completer(job.model, job.completion, job.runtime)
    stage = MultiViewCompleter(completer, grid, SilhouetteFusion(method=job.fusion, evidence=job.evidence))
    return stage(views, seed=job.runtime.seed)


def run_reconstruct(job: ReconstructJob) -> dict:
    """Reconstruct the mesh of ``job.views_dir`` with ``job.backend`` (after multi-view completion with
    ``job.complete``) and export it to ``job.output``; with ``job.masks_out``, also write the consistent masks."""
    from ..integrations.captures import load_capture, save_capture
    from ..integrations.registry import create_backend
    from ..io import check_output_file, check_output_folder
    from ..meshes import export_mesh
    from ..types import check_views

    check_output_file(job.output)
    backend = create_backend(job.backend, **job.backend_options())
    views = load_capture(job.views_dir)
    summary = {"output": str(job.output), "views": len(views)}
    if job.complete:
        check_views(views, mask_name="visible mask")  # two views or more, no empty visible mask: before the model loads
        if job.masks_out is not None:
            check_output_folder(job.masks_out)
        fused = complete_capture(job, views)
        views = fused.consistent_views(views)
        summary["seconds"] = {key: round(value, 2) for key, value in fused.seconds.items()}
        if job.masks_out is not None:
            header = {
                "masks": "consistent amodal masks (p2g3d reconstruct --complete)",
                "fusion": job.fusion,
                "evidence": job.evidence,
            }
            save_capture(views, job.masks_out, header=header)
            summary["masks_out"] = str(job.masks_out)
    export_mesh(backend.reconstruct(views), job.output)
    logger.info("wrote %s from %d views", job.output, len(views))
    return summary
