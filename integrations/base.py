"""The small protocol every multi-view reconstruction backend follows: posed, masked views in, a mesh out.

Views use the p2g3d camera convention (:mod:`p2g3d.cameras`). A views folder is what ``p2g3d views`` writes (and
what :func:`save_views` writes): a ``cameras.json`` whose ``views`` entries name an image, a mask and a camera.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import trimesh

from p2g3d.cameras import Camera
from p2g3d.io import load_image, load_mask, save_json, save_png


@dataclass(frozen=True, eq=False)
class MaskedView:
    """``image`` ``(H, W, 3)`` uint8, ``mask`` ``(H, W)`` bool (the object), ``camera`` of size ``(W, H)``."""

    image: np.ndarray
    mask: np.ndarray
    camera: Camera

    def __post_init__(self):
        if self.image.shape[:2] != self.mask.shape or self.mask.shape != (self.camera.height, self.camera.width):
            raise ValueError(
                f"image {self.image.shape[:2]}, mask {self.mask.shape} and camera "
                f"({self.camera.height}, {self.camera.width}) must have the same size"
            )


@runtime_checkable
class Reconstructor(Protocol):
    """Anything that turns posed, masked views of one object into a mesh (world frame of the cameras)."""

    def reconstruct(self, views: Sequence[MaskedView]) -> trimesh.Trimesh: ...


def check_views(views: Sequence[MaskedView], minimum: int = 2) -> None:
    """Raise ValueError unless there are at least ``minimum`` views, each with a non-empty mask."""
    if len(views) < minimum:
        raise ValueError(f"need at least {minimum} views, got {len(views)}")
    for index, view in enumerate(views):
        if not isinstance(view, MaskedView):
            raise TypeError(f"view {index} is a {type(view).__name__}, expected MaskedView")
        if not view.mask.any():
            raise ValueError(f"view {index} has an empty mask")


def load_views(folder: str | os.PathLike) -> list[MaskedView]:
    """Read a views folder (``cameras.json`` + images + masks)."""
    folder = Path(folder)
    index_file = folder / "cameras.json"
    if not index_file.is_file():
        raise FileNotFoundError(f"{folder} has no cameras.json (expected the output of `p2g3d views` or save_views)")
    try:
        entries = json.loads(index_file.read_text())["views"]
    except (json.JSONDecodeError, KeyError) as error:
        raise ValueError(f"{index_file} is not a views index (needs a 'views' list): {error}") from error
    views = []
    for entry in entries:
        for key in ("file", "mask", "camera"):
            if key not in entry:
                raise ValueError(f"{index_file}: a view entry lacks '{key}'")
        views.append(
            MaskedView(load_image(folder / entry["file"]), load_mask(folder / entry["mask"]), Camera.from_dict(entry["camera"]))
        )
    return views


def save_views(views: Sequence[MaskedView], folder: str | os.PathLike) -> Path:
    """Write views as a views folder that :func:`load_views` and ``p2g3d reconstruct`` read."""
    folder = Path(folder)
    entries = []
    for index, view in enumerate(views):
        image, mask = f"view_{index:03d}.png", f"view_{index:03d}_mask.png"
        save_png(folder / image, view.image)
        save_png(folder / mask, view.mask)
        entries.append({"file": image, "mask": mask, "camera": view.camera.to_dict()})
    save_json(folder / "cameras.json", {"views": entries})
    return folder


def paint_vertices(mesh: trimesh.Trimesh, views: Sequence[MaskedView]) -> trimesh.Trimesh:
    """Colour ``mesh``'s vertices from the views: each vertex takes the mean colour of the pixels it projects to in
    the views that see it (unoccluded, facing the camera, inside the mask), weighted by the cosine of the viewing
    angle. Vertices no view sees stay grey. Returns the same mesh, coloured."""
    from p2g3d.geometry import as_tensor_mesh, import_open3d

    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(as_tensor_mesh(mesh))
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64)
    total = np.zeros((len(vertices), 3))
    weight = np.zeros(len(vertices))
    for view in views:
        camera = view.camera
        to_vertex = vertices - camera.center
        rays = np.concatenate([np.broadcast_to(camera.center, to_vertex.shape), to_vertex], 1).astype(np.float32)
        first_hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
        visible = first_hit > 1.0 - 1e-3  # nothing in front of the vertex along the ray (t = 1 at the vertex)
        cosine = -(normals * to_vertex).sum(1) / np.linalg.norm(to_vertex, axis=1)
        uv, depth = camera.project(vertices)
        cols, rows = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        inside = (depth > 0) & (cols >= 0) & (rows >= 0) & (cols < camera.width) & (rows < camera.height)
        usable = visible & inside & (cosine > 0)
        usable[usable] &= view.mask[rows[usable], cols[usable]]
        total[usable] += view.image[rows[usable], cols[usable]].astype(np.float64) * cosine[usable, None]
        weight[usable] += cosine[usable]
    colors = np.full((len(vertices), 3), 128.0)
    seen = weight > 0
    colors[seen] = total[seen] / weight[seen, None]
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.c_[np.round(colors).astype(np.uint8), np.full(len(colors), 255, np.uint8)])
    return mesh
