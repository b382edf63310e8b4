"""Shap-E image-to-3D (Jun and Nichol, 2023) through diffusers' ``ShapEImg2ImgPipeline``.

The object is framed on white (long side at 200/256 of a 256 square), the pipeline samples Shap-E's latent, and the
latent is decoded to a coloured mesh by ``decode_to_mesh`` on a ``grid_size^3`` grid (128^3, Shap-E's default,
costs over a minute on a CPU; 24^3 under a second). Shap-E's meshes are +Z up (as the p2g3d world) inside
``[-1, 1]^3``, but their azimuth is not the input view's, so the input camera is estimated: the orbit camera whose
silhouette of the mesh best matches the input mask (:func:`~p2g3d.integrations.image_to_3d.match_silhouette`). The
mesh is then centred, scaled to a unit box and turned about +Z so that this camera sits at azimuth 0, the frame of
every built-in backend (:mod:`p2g3d.integrations.image_to_3d`).

Licence: Shap-E code and weights (``openai/shap-e-img2img``) MIT.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import trimesh

from p2g3d.cameras import ZERO123_FOV_DEG, Camera, intrinsics_from_fov, orbit_camera
from p2g3d.errors import InputError
from p2g3d.framing import frame_on_white
from p2g3d.loading import quiet_loading
from p2g3d.runtime import resolve_device, resolve_dtype

from .image_to_3d import ImageTo3DResult, fit_radius, match_silhouette

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "openai/shap-e-img2img"
INPUT_SIZE = 256
MAX_GRID_SIZE = 256


def load_shap_e(model: str | os.PathLike, dtype):
    """``ShapEImg2ImgPipeline`` from a folder or hub id, quietly; one InputError that names what is missing and how
    to get it when the weights are not there (offline, or a wrong folder)."""
    import warnings

    from diffusers import ShapEImg2ImgPipeline

    try:
        with quiet_loading(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ShapEImg2ImgPipeline.from_pretrained(str(model), dtype=dtype)
    except (OSError, ValueError) as error:  # the hub's offline / missing-file errors are OSErrors
        raise InputError(
            f"the Shap-E weights {str(model)!r} could not be loaded ({error.__class__.__name__}): run once online to "
            f"download {DEFAULT_MODEL!r} into the Hugging Face cache, or pass a local copy with --backend-model FOLDER"
        ) from error


def decoded_to_trimesh(decoded) -> trimesh.Trimesh:
    """diffusers' ``MeshDecoderOutput`` -> trimesh with vertex colours (its ``R``, ``G``, ``B`` channels in [0, 1])."""
    vertices = decoded.verts.detach().float().cpu().numpy()
    faces = decoded.faces.detach().cpu().numpy()
    if len(faces) == 0:
        raise InputError("Shap-E decoded no surface (empty mesh): try another seed or more inference steps")
    channels = decoded.vertex_channels or {}
    colors = None
    if all(key in channels for key in "RGB"):
        rgb = np.stack([channels[key].detach().float().cpu().numpy() for key in "RGB"], -1)
        colors = np.c_[np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8), np.full(len(rgb), 255, np.uint8)]
    mesh = trimesh.Trimesh(vertices, faces, vertex_colors=colors, process=True)
    mesh.fix_normals()
    return mesh


class ShapEImageTo3D:
    """Image-to-3D with Shap-E.

    Args:
        model: diffusers folder or hub id of ``ShapEImg2ImgPipeline`` weights (downloaded when online).
        pipeline: an already built ``ShapEImg2ImgPipeline`` (instead of ``model``).
        grid_size: marching-cubes grid of the mesh decoder (quality and time grow with its cube).
        num_inference_steps, guidance_scale: Shap-E sampling (diffusers' example: 64 steps, guidance 3.0).
        device, dtype: where the model runs (default: CUDA if available, fp16 there).
    """

    name = "shap-e"

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_MODEL,
        *,
        pipeline=None,
        grid_size: int = 64,
        num_inference_steps: int = 64,
        guidance_scale: float = 3.0,
        device=None,
        dtype=None,
    ):
        if isinstance(grid_size, bool) or not isinstance(grid_size, int) or not 8 <= grid_size <= MAX_GRID_SIZE:
            raise InputError(f"grid_size must be an int in [8, {MAX_GRID_SIZE}], got {grid_size!r}")
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise InputError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
        if not guidance_scale >= 1.0:
            raise InputError(f"guidance_scale must be >= 1, got {guidance_scale!r}")
        self.grid_size, self.num_inference_steps, self.guidance_scale = grid_size, num_inference_steps, guidance_scale
        self.device = resolve_device(device)
        if pipeline is None:
            pipeline = load_shap_e(model, resolve_dtype(dtype, self.device))
        self.pipeline = pipeline.to(self.device)

    def generate(self, source, *, seed: int = 0, show_progress: bool = True) -> ImageTo3DResult:
        """Mesh of ``source`` (AmodalObject, RGBA cut-out or ``(rgb, mask)``) and its estimated input camera."""
        import PIL.Image
        import torch

        image, mask, framing = frame_on_white(source, INPUT_SIZE)
        self.pipeline.set_progress_bar_config(disable=not show_progress, leave=False)
        generator = torch.Generator().manual_seed(seed)
        latents = self.pipeline(
            PIL.Image.fromarray(image),
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            generator=generator,
            output_type="latent",
        ).images
        with torch.no_grad():
            decoded = self.pipeline.shap_e_renderer.decode_to_mesh(
                latents[0][None], self.device, grid_size=self.grid_size
            )
        mesh = decoded_to_trimesh(decoded)
        low, high = mesh.bounds
        mesh.apply_translation(-(low + high) / 2)
        mesh.apply_scale(1.0 / float((high - low).max()))
        match = match_silhouette(mesh, mask)
        logger.info(
            "Shap-E input camera: elevation %.0f, azimuth %.0f (silhouette IoU %.3f)",
            match.elevation,
            match.azimuth,
            match.iou,
        )
        mesh.apply_transform(trimesh.transformations.rotation_matrix(np.radians(-match.azimuth), (0, 0, 1)))
        K = intrinsics_from_fov(ZERO123_FOV_DEG, INPUT_SIZE, INPUT_SIZE)
        camera: Camera = fit_radius(mesh, orbit_camera(match.elevation, 0.0, 1.5, K, INPUT_SIZE, INPUT_SIZE), mask)
        return ImageTo3DResult(mesh, framing.camera_in_source(camera), (), self.name)
