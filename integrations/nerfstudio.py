"""nerfstudio: write posed, masked views as a nerfstudio dataset, and train / export a mesh with its CLI.

The dataset is nerfstudio's ``transforms.json`` format (:mod:`.captures`): per-frame ``transform_matrix`` (camera-
to-world, OpenGL camera axes, from :func:`p2g3d.cameras.to_opengl`), per-frame pinhole intrinsics ``fl_x, fl_y, cx,
cy, w, h`` (nerfstudio's pixel centres sit at +0.5 like p2g3d's, so they carry over unchanged), ``mask_path`` (0 =
ignore) and ``camera_model: OPENCV`` without distortion. Training keeps the p2g3d world frame (no re-orientation,
centring or scaling by the data parser), so the exported mesh needs no transform back.

Training needs nerfstudio installed (``pip install nerfstudio``, with its own torch / CUDA requirements).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import trimesh

from p2g3d.errors import InputError, MissingDependencyError
from p2g3d.io import save_png
from p2g3d.types import MaskedView

from .base import check_views
from .captures import write_nerfstudio_index

logger = logging.getLogger(__name__)

INSTALL_HINT = "the nerfstudio backend needs nerfstudio's CLI (ns-train, ns-export): pip install nerfstudio"
# Keep the p2g3d world frame: no auto-orientation, centring or scaling of the poses.
DATAPARSER_ARGUMENTS = [
    "nerfstudio-data",
    "--orientation-method",
    "none",
    "--center-method",
    "none",
    "--auto-scale-poses",
    "False",
]


def write_nerfstudio_dataset(views: Sequence[MaskedView], folder: str | os.PathLike) -> Path:
    """Write ``images/``, ``masks/`` and ``transforms.json``; returns the path of ``transforms.json``."""
    check_views(views, minimum=1)
    folder = Path(folder)
    images = [f"images/frame_{index:05d}.png" for index in range(len(views))]
    masks = [f"masks/mask_{index:05d}.png" for index in range(len(views))]
    for view, image, mask in zip(views, images, masks):
        save_png(folder / image, view.image)
        save_png(folder / mask, view.mask)
    return write_nerfstudio_index(views, folder, images, masks)


class NerfstudioReconstructor:
    """Train a nerfstudio model on the views and export a mesh.

    Args:
        method: nerfstudio method name (``nerfacto`` by default).
        iterations: training iterations.
        export: ``ns-export`` mesh method: ``"poisson"`` (needs normals, set for nerfacto) or ``"tsdf"``.
        device: nerfstudio ``--machine.device-type`` (``cuda``, ``cpu`` or ``mps``).
        workdir: where the dataset and the run go (a temporary folder by default, removed afterwards).
    """

    def __init__(
        self,
        method: str = "nerfacto",
        iterations: int = 5000,
        export: str = "poisson",
        device: str = "cuda",
        workdir: str | os.PathLike | None = None,
    ):
        if export not in ("poisson", "tsdf"):
            raise InputError(f"export must be 'poisson' or 'tsdf', got {export!r}")
        self.method, self.iterations, self.export, self.device = method, iterations, export, device
        self.workdir = Path(workdir) if workdir is not None else None

    def commands(self, dataset: Path, runs: Path) -> list[str]:
        """The ``ns-train`` command line for ``dataset`` (``ns-export`` follows once the run's config exists)."""
        train = [
            "ns-train",
            self.method,
            "--output-dir",
            str(runs),
            "--max-num-iterations",
            str(self.iterations),
            "--viewer.quit-on-train-completion",
            "True",
            "--vis",
            "tensorboard",
            "--machine.device-type",
            self.device,
        ]
        if self.method == "nerfacto" and self.export == "poisson":
            train += ["--pipeline.model.predict-normals", "True"]
        return train + ["--data", str(dataset)] + DATAPARSER_ARGUMENTS

    def reconstruct(self, views: Sequence[MaskedView]) -> trimesh.Trimesh:
        if shutil.which("ns-train") is None or shutil.which("ns-export") is None:
            raise MissingDependencyError(INSTALL_HINT)
        check_views(views)
        workdir = self.workdir or Path(tempfile.mkdtemp(prefix="p2g3d-nerfstudio-"))
        try:
            dataset, runs = workdir / "dataset", workdir / "runs"
            write_nerfstudio_dataset(views, dataset)
            subprocess.run(self.commands(dataset, runs), check=True)
            configs = sorted(runs.rglob("config.yml"))
            if not configs:
                raise RuntimeError(f"ns-train wrote no config.yml under {runs}")
            export_dir = workdir / "export"
            subprocess.run(
                ["ns-export", self.export, "--load-config", str(configs[-1]), "--output-dir", str(export_dir)],
                check=True,
            )
            meshes = sorted(export_dir.glob("*.ply")) + sorted(export_dir.glob("*.obj"))
            if not meshes:
                raise RuntimeError(f"ns-export wrote no mesh under {export_dir}")
            return trimesh.load(meshes[0], force="mesh", process=False)
        finally:
            if self.workdir is None:
                shutil.rmtree(workdir, ignore_errors=True)
