"""CPU renderer on Open3D's ``RaycastingScene``: colour, depth, normals and instance ids for p2g3d cameras.

One ray per pixel centre (``(j + 0.5, i + 0.5)``, the project's pixel convention, :mod:`p2g3d.cameras`). Colours
come from the meshes' face or vertex colours (``trimesh`` visuals; grey when a mesh has none) with simple
headlight shading ``colour * (ambient + (1 - ambient) * |n . view|)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh

from .cameras import Camera
from .errors import InputError
from .meshes import as_tensor_mesh, as_trimesh, import_open3d

DEFAULT_COLOR = (180, 180, 180)


@dataclass(frozen=True, eq=False)
class RenderedView:
    """What one camera sees.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 shaded colour, ``background`` where no mesh is hit.
        depth: ``(H, W)`` float32 camera-frame depth (z, not ray length); ``inf`` where no mesh is hit.
        normals: ``(H, W, 3)`` float32 world-frame unit normals turned towards the camera; 0 where no hit.
        instance_ids: ``(H, W)`` int32 index of the mesh hit (order of the ``meshes`` argument), -1 for none.
    """

    rgb: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    instance_ids: np.ndarray

    def mask(self, index: int) -> np.ndarray:
        """``(H, W)`` bool pixels where mesh ``index`` is the first surface hit."""
        return self.instance_ids == index


def pixel_rays(camera: Camera) -> np.ndarray:
    """``(H, W, 6)`` float32 rays (origin, direction) through the pixel centres; directions have camera z = 1."""
    rows, cols = np.meshgrid(np.arange(camera.height), np.arange(camera.width), indexing="ij")
    pixels = np.stack([cols + 0.5, rows + 0.5, np.ones_like(rows, dtype=np.float64)], -1)
    directions = pixels @ np.linalg.inv(camera.K).T @ camera.R  # K^-1 [u, v, 1] rotated into the world frame
    origins = np.broadcast_to(camera.center, directions.shape)
    return np.concatenate([origins, directions], -1).astype(np.float32)


def _face_colors(mesh: trimesh.Trimesh) -> np.ndarray | None:
    """``(F, 3)`` uint8 face colours when the mesh has face colours, else None."""
    if mesh.visual.kind == "face":
        return np.asarray(mesh.visual.face_colors)[:, :3]
    return None


def _hit_colors(mesh: trimesh.Trimesh, faces: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Colours of the hit points ``(N, 3)`` float from face or vertex colours (barycentric interpolation)."""
    face_colors = _face_colors(mesh)
    if face_colors is not None:
        return face_colors[faces].astype(np.float64)
    if mesh.visual.kind == "vertex":
        corners = np.asarray(mesh.visual.vertex_colors)[:, :3].astype(np.float64)[mesh.faces[faces]]
        u, v = uvs[:, :1], uvs[:, 1:2]
        return (1.0 - u - v) * corners[:, 0] + u * corners[:, 1] + v * corners[:, 2]
    return np.tile(np.array(DEFAULT_COLOR, dtype=np.float64), (len(faces), 1))


def render(
    meshes: Sequence,
    camera: Camera,
    *,
    background: tuple[int, int, int] = (255, 255, 255),
    ambient: float = 0.35,
) -> RenderedView:
    """Render ``meshes`` (trimesh / Open3D meshes or paths) from ``camera``.

    Args:
        meshes: the scene; index i of ``instance_ids`` is ``meshes[i]``.
        camera: a p2g3d camera.
        background: RGB where no mesh is hit.
        ambient: share of the colour lit regardless of the surface orientation.
    """
    o3d = import_open3d()
    if not meshes:
        raise InputError("nothing to render: meshes is empty")
    trimeshes = [as_trimesh(mesh) for mesh in meshes]
    scene = o3d.t.geometry.RaycastingScene()
    geometry_to_index = {scene.add_triangles(as_tensor_mesh(mesh)): i for i, mesh in enumerate(trimeshes)}
    rays = pixel_rays(camera)
    hits = scene.cast_rays(o3d.core.Tensor(rays))
    t_hit = hits["t_hit"].numpy()
    hit = np.isfinite(t_hit)
    geometry_ids = hits["geometry_ids"].numpy()
    instance_ids = np.full(t_hit.shape, -1, dtype=np.int32)
    instance_ids[hit] = np.vectorize(geometry_to_index.get)(geometry_ids[hit]) if hit.any() else []

    directions = rays[..., 3:]
    normals = hits["primitive_normals"].numpy().astype(np.float64)
    facing = np.sign(-(normals * directions).sum(-1, keepdims=True))
    normals = np.where(hit[..., None], normals * np.where(facing == 0, 1.0, facing), 0.0)
    view = -directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    lambert = np.abs((normals * view).sum(-1))

    rgb = np.empty((*t_hit.shape, 3), dtype=np.float64)
    rgb[:] = background
    primitive_ids, uvs = hits["primitive_ids"].numpy(), hits["primitive_uvs"].numpy()
    for index, mesh in enumerate(trimeshes):
        selected = instance_ids == index
        if selected.any():
            base = _hit_colors(mesh, primitive_ids[selected], uvs[selected])
            rgb[selected] = base * (ambient + (1.0 - ambient) * lambert[selected])[:, None]
    depth = np.where(hit, t_hit, np.inf).astype(np.float32)  # directions have camera z = 1, so t is the depth
    return RenderedView(
        rgb=np.clip(np.round(rgb), 0, 255).astype(np.uint8),
        depth=depth,
        normals=normals.astype(np.float32),
        instance_ids=instance_ids,
    )
