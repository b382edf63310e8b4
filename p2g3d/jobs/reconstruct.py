"""``p2g3d reconstruct``: a mesh from a views folder by a registered multi-view reconstruction backend."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..meshes import FORMATS
from ..settings import option
from ..validation import check_number

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconstructJob:
    """Settings of :func:`run_reconstruct` (the ``p2g3d reconstruct`` options). Backend options are passed only
    when set; a backend refuses options it lacks."""

    views_dir: Path = option(None, "views_dir", "views folder (cameras.json, images and masks)", type=Path)
    output: Path = option(None, "--output", "mesh file: .glb, .obj or .ply", type=Path, required=True)
    backend: str = option("carve", "--backend", "registered reconstruction backend (carve, pytorch3d, nerfstudio)")
    resolution: int | None = option(None, "--resolution", "carving voxels per side")
    bound: float | None = option(None, "--bound", "half side of the reconstruction box")
    iterations: int | None = option(None, "--iterations", "optimisation / training steps")
    device: str | None = option(None, "--device", "torch / nerfstudio device")

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

    def backend_options(self) -> dict:
        """The options given, in the backends' names."""
        options = {"resolution": self.resolution, "iterations": self.iterations, "device": self.device}
        if self.bound is not None:
            options["bounds"] = ((-self.bound,) * 3, (self.bound,) * 3)
        return {key: value for key, value in options.items() if value is not None}


def run_reconstruct(job: ReconstructJob) -> dict:
    """Reconstruct the mesh of ``job.views_dir`` with ``job.backend`` and export it to ``job.output``."""
    from ..integrations.base import load_views
    from ..integrations.registry import create_backend
    from ..io import check_output_file
    from ..meshes import export_mesh

    check_output_file(job.output)
    backend = create_backend(job.backend, **job.backend_options())
    views = load_views(job.views_dir)
    export_mesh(backend.reconstruct(views), job.output)
    logger.info("wrote %s from %d views", job.output, len(views))
    return {"output": str(job.output), "views": len(views)}
