"""The image-to-3D protocol: ONE object image in, a mesh and the input camera it is expressed against out.

Frames (p2g3d convention, :mod:`p2g3d.cameras`): the mesh lives in a world with **+Z up** and the object around the
origin; ``camera`` is the camera of the INPUT image in that world, with intrinsics in the pixels of the image the
object came from (for an :class:`~p2g3d.types.AmodalObject`, the original scene image), so projecting the mesh
with it lands on the object in that image. Built-in backends put the input camera at azimuth 0 (on world +X,
looking at the origin). A single view fixes neither the object's size nor its distance: only their ratio is
known, and the backends choose the size (about a unit box).

Backends implement :class:`ImageTo3D` and register in the entry-point group ``p2g3d.image_to_3d``
(:mod:`.registry`). Backends frame the object with :func:`p2g3d.framing.frame_on_white` (its
:class:`~p2g3d.framing.ObjectFraming` brings a camera of the framed square back to the source image); what they
share beyond that is here: the estimate of the input camera of a mesh whose orientation a backend does not know
(:func:`match_silhouette`) and of its distance (:func:`fit_radius`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import PIL.Image
import trimesh

from p2g3d.cameras import ZERO123_FOV_DEG, Camera, intrinsics_from_fov, orbit_camera
from p2g3d.errors import InputError
from p2g3d.render import render
from p2g3d.types import MaskedView


@dataclass(frozen=True, eq=False)
class ImageTo3DResult:
    """What an image-to-3D backend returns (frames in the module docstring).

    Attributes:
        mesh: the object, world frame (+Z up, around the origin), vertex colours when the backend has them.
        camera: the input image's camera in that world, in the pixels of the source image.
        views: the views the mesh was made from (model frame, e.g. the framed input and generated views); may be
            empty.
        backend: the backend's name.
    """

    mesh: trimesh.Trimesh
    camera: Camera
    views: tuple[MaskedView, ...] = field(default=())
    backend: str = ""


@runtime_checkable
class ImageTo3D(Protocol):
    """Anything that turns one object (an ``AmodalObject``, an RGBA cut-out or ``(rgb, mask)``) into a mesh."""

    def generate(self, source, *, seed: int = 0, show_progress: bool = True) -> ImageTo3DResult: ...


def _box_normalised(mask: np.ndarray, size: int = 64) -> np.ndarray:
    """A mask cut to its box and scaled (aspect kept) into a centred ``size`` square: silhouettes compared up to
    position and scale."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return np.zeros((size, size), dtype=bool)
    cut = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].astype(np.float32)
    scale = size / max(cut.shape)
    new_w, new_h = max(1, round(cut.shape[1] * scale)), max(1, round(cut.shape[0] * scale))
    resized = np.asarray(PIL.Image.fromarray(cut).resize((new_w, new_h), PIL.Image.Resampling.BILINEAR)) >= 0.5
    square = np.zeros((size, size), dtype=bool)
    square[(size - new_h) // 2 : (size - new_h) // 2 + new_h, (size - new_w) // 2 : (size - new_w) // 2 + new_w] = (
        resized
    )
    return square


@dataclass(frozen=True)
class SilhouetteMatch:
    """The best camera of :func:`match_silhouette`: its ``elevation``, ``azimuth`` (degrees) and the IoU of the
    box-normalised silhouettes there; ``scores`` ``(E, A)`` the IoU of every candidate."""

    elevation: float
    azimuth: float
    iou: float
    scores: np.ndarray


def match_silhouette(
    mesh: trimesh.Trimesh,
    mask: np.ndarray,
    *,
    elevations: Sequence[float] = (-10.0, 0.0, 10.0, 20.0, 30.0, 45.0),
    azimuths: Sequence[float] = tuple(range(0, 360, 15)),
    size: int = 64,
) -> SilhouetteMatch:
    """The orbit camera (looking at the origin) from which ``mesh``'s silhouette best matches ``mask``, compared up
    to position and scale (IoU of the box-normalised silhouettes). For backends whose output orientation is not
    tied to the input view."""
    radius = 2.0 * float(np.linalg.norm(mesh.bounds, axis=1).max()) + 1e-6
    K = intrinsics_from_fov(ZERO123_FOV_DEG, size, size)
    target = _box_normalised(np.asarray(mask, dtype=bool))
    scores = np.zeros((len(elevations), len(azimuths)))
    for i, elevation in enumerate(elevations):
        for j, azimuth in enumerate(azimuths):
            silhouette = _box_normalised(
                render([mesh], orbit_camera(elevation, azimuth, radius, K, size, size)).mask(0)
            )
            union = (silhouette | target).sum()
            scores[i, j] = (silhouette & target).sum() / union if union else 0.0
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return SilhouetteMatch(float(elevations[i]), float(azimuths[j]), float(scores[i, j]), scores)


def fit_radius(mesh: trimesh.Trimesh, camera: Camera, mask: np.ndarray) -> Camera:
    """``camera`` moved along its viewing ray (same orbit angles) so that ``mesh``'s silhouette has the long side of
    ``mask``'s box (pinhole: image size ~ 1 / distance; one correction step)."""

    def long_side(silhouette):
        rows, cols = np.nonzero(silhouette)
        return max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) if len(rows) else 0

    rendered, wanted = long_side(render([mesh], camera).mask(0)), long_side(mask)
    if rendered == 0 or wanted == 0:
        raise InputError("the mesh or the mask is empty: no camera distance fits")
    center = camera.center
    scaled = center * (rendered / wanted)
    world_to_camera = camera.world_to_camera.copy()
    world_to_camera[:3, 3] = -camera.R @ scaled
    return Camera(camera.K, world_to_camera, camera.width, camera.height)
