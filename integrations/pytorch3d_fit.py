"""Silhouette mesh fitting with pytorch3d's differentiable renderer (extra: ``pip install 'p2g3d[pytorch3d]'``).

Starts from the visual hull of the views (:mod:`p2g3d.integrations.carving`) or from a sphere, then moves the
vertices so that the
soft silhouettes rendered by pytorch3d match the masks in every view, with Laplacian, edge-length and normal
regularisers, and finally colours the vertices from the views. Cameras go through
:func:`p2g3d.cameras.to_pytorch3d`, so the p2g3d camera convention holds end to end. Runs on the CPU or a GPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import trimesh
from tqdm.auto import tqdm

from p2g3d.cameras import to_pytorch3d
from p2g3d.errors import InputError, MissingDependencyError
from p2g3d.types import MaskedView

from .base import check_views, paint_vertices
from .carving import DEFAULT_BOUNDS, VisualHullReconstructor

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "the pytorch3d backend needs pytorch3d: pip install 'p2g3d[pytorch3d]' (the easypytorch3d wheels; on the CPU "
    "they need torch==2.12.0)"
)


def import_pytorch3d():
    """The pytorch3d modules this backend uses, or a MissingDependencyError with an install hint."""
    try:
        import pytorch3d.loss
        import pytorch3d.renderer
        import pytorch3d.structures
    except ImportError as error:
        raise MissingDependencyError(f"{INSTALL_HINT} ({error})") from error
    return pytorch3d


class SilhouetteFitReconstructor:
    """Fit a mesh to multi-view silhouettes.

    Args:
        iterations: optimisation steps.
        init: ``"hull"`` (visual hull of the views, the default) or ``"sphere"`` (radius ``sphere_radius``).
        learning_rate: SGD step size of the vertex offsets (momentum 0.9).
        hull_resolution: voxels per side of the initial visual hull.
        bounds: carving box of the initial hull.
        sigma: softness of the silhouettes (pytorch3d ``BlendParams.sigma``).
        weights: loss weights ``(silhouette, laplacian, edge, normal)``.
        device: torch device.
        color: colour the vertices from the views.
    """

    def __init__(
        self,
        iterations: int = 200,
        init: str = "hull",
        sphere_radius: float = 0.5,
        learning_rate: float = 0.5,
        hull_resolution: int = 48,
        bounds=DEFAULT_BOUNDS,
        sigma: float = 1e-4,
        weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 0.01),
        faces_per_pixel: int = 10,
        device: str = "cpu",
        color: bool = True,
    ):
        import_pytorch3d()
        if iterations < 0:
            raise InputError(f"iterations must be >= 0, got {iterations}")
        if init not in ("hull", "sphere"):
            raise InputError(f"init must be 'hull' or 'sphere', got {init!r}")
        self.init, self.sphere_radius, self.faces_per_pixel = init, sphere_radius, faces_per_pixel
        self.iterations, self.learning_rate, self.sigma, self.weights = iterations, learning_rate, sigma, weights
        self.hull = VisualHullReconstructor(resolution=hull_resolution, bounds=bounds, color=False)
        self.device, self.color = device, color
        self.losses: list[float] = []

    def _renderers(self, views: Sequence[MaskedView]):
        import torch

        renderer = import_pytorch3d().renderer
        blend = renderer.BlendParams(sigma=self.sigma, gamma=1e-4)
        renderers = []
        for view in views:
            params = to_pytorch3d(view.camera)
            cameras = renderer.PerspectiveCameras(
                R=torch.tensor(params["R"], dtype=torch.float32),
                T=torch.tensor(params["T"], dtype=torch.float32),
                focal_length=torch.tensor(params["focal_length"], dtype=torch.float32),
                principal_point=torch.tensor(params["principal_point"], dtype=torch.float32),
                image_size=torch.tensor(params["image_size"]),
                in_ndc=True,
                device=self.device,
            )
            settings = renderer.RasterizationSettings(
                image_size=(view.camera.height, view.camera.width),
                blur_radius=float(np.log(1.0 / 1e-4 - 1.0) * self.sigma),
                faces_per_pixel=self.faces_per_pixel,
            )
            renderers.append(
                renderer.MeshRenderer(
                    renderer.MeshRasterizer(cameras=cameras, raster_settings=settings),
                    renderer.SoftSilhouetteShader(blend_params=blend),
                )
            )
        return renderers

    def reconstruct(self, views: Sequence[MaskedView]) -> trimesh.Trimesh:
        import torch

        check_views(views)
        pytorch3d = import_pytorch3d()
        loss_fns = pytorch3d.loss
        start = (
            self.hull.reconstruct(views) if self.init == "hull" else trimesh.creation.icosphere(3, self.sphere_radius)
        )
        vertices = torch.tensor(np.asarray(start.vertices), dtype=torch.float32, device=self.device)
        faces = torch.tensor(np.asarray(start.faces), dtype=torch.int64, device=self.device)
        source = pytorch3d.structures.Meshes(verts=[vertices], faces=[faces])
        offsets = torch.zeros_like(vertices, requires_grad=True)
        optimizer = torch.optim.SGD([offsets], lr=self.learning_rate, momentum=0.9)
        renderers = self._renderers(views)
        targets = [torch.tensor(view.mask, dtype=torch.float32, device=self.device) for view in views]
        w_silhouette, w_laplacian, w_edge, w_normal = self.weights
        self.losses = []
        for _ in tqdm(range(self.iterations), desc="silhouette fit", unit="step", leave=False):
            optimizer.zero_grad()
            mesh = source.offset_verts(offsets)
            silhouette = sum(((r(mesh)[0, ..., 3] - t) ** 2).mean() for r, t in zip(renderers, targets)) / len(views)
            loss = (
                w_silhouette * silhouette
                + w_laplacian * loss_fns.mesh_laplacian_smoothing(mesh, method="uniform")
                + w_edge * loss_fns.mesh_edge_loss(mesh)
                + w_normal * loss_fns.mesh_normal_consistency(mesh)
            )
            loss.backward()
            optimizer.step()
            self.losses.append(float(silhouette.detach()))
        fitted = (vertices + offsets).detach().cpu().numpy()
        result = trimesh.Trimesh(fitted.astype(np.float64), np.asarray(start.faces), process=False)
        return paint_vertices(result, views) if self.color else result
