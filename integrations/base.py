"""What every multi-view reconstruction backend shares: the protocol, the ONE views-folder format, and colouring.

Views use the p2g3d camera convention (:mod:`p2g3d.cameras`) and are :class:`p2g3d.types.MaskedView`. A views
folder is a ``cameras.json`` whose ``views`` entries name an image, a mask and a camera (plus any extra fields a
writer adds, such as the Zero-1-to-3 relative pose); :func:`save_views` is its only writer and :func:`load_views`
its reader, so everything ``p2g3d views`` or a script writes, ``p2g3d reconstruct`` reads.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import trimesh

from p2g3d.cameras import Camera
from p2g3d.errors import InputError
from p2g3d.io import load_image, load_mask, save_json, save_png
from p2g3d.meshes import as_tensor_mesh, import_open3d
from p2g3d.types import MaskedView, check_views

VIEWS_INDEX = "cameras.json"
__all__ = ["Reconstructor", "check_views", "load_views", "paint_vertices", "save_views", "VIEWS_INDEX"]


@runtime_checkable
class Reconstructor(Protocol):
    """Anything that turns posed, masked views of one object into a mesh (world frame of the cameras)."""

    def reconstruct(self, views: Sequence[MaskedView]) -> trimesh.Trimesh: ...


def save_views(
    views: Sequence[MaskedView],
    folder: str | os.PathLike,
    *,
    names: Sequence[str] | None = None,
    extra: Sequence[dict] | None = None,
    header: dict | None = None,
) -> Path:
    """Write a views folder: ``NAME.png``, ``NAME_mask.png`` per view and ``cameras.json``.

    Args:
        views: the views.
        folder: where to write.
        names: file stems per view (default ``view_000``, ``view_001``, ...).
        extra: per-view fields added to its ``cameras.json`` entry (e.g. the Zero-1-to-3 pose).
        header: top-level fields of ``cameras.json`` besides ``convention`` and ``views`` (inputs, settings).
    """
    folder = Path(folder)
    names = list(names) if names is not None else [f"view_{index:03d}" for index in range(len(views))]
    extra = list(extra) if extra is not None else [{} for _ in views]
    if not len(names) == len(extra) == len(views):
        raise InputError(f"got {len(views)} views, {len(names)} names and {len(extra)} extra entries")
    entries = []
    for view, name, fields in zip(views, names, extra):
        save_png(folder / f"{name}.png", view.image)
        save_png(folder / f"{name}_mask.png", view.mask)
        entries.append({"file": f"{name}.png", "mask": f"{name}_mask.png", "camera": view.camera.to_dict(), **fields})
    convention = entries[0]["camera"]["convention"] if entries else None
    save_json(folder / VIEWS_INDEX, {"convention": convention, **(header or {}), "views": entries})
    return folder


def load_views(folder: str | os.PathLike) -> list[MaskedView]:
    """Read a views folder written by :func:`save_views` (``cameras.json`` + images + masks)."""
    folder = Path(folder)
    index_file = folder / VIEWS_INDEX
    if not index_file.is_file():
        raise FileNotFoundError(f"{folder} has no {VIEWS_INDEX} (expected the output of `p2g3d views` or save_views)")
    try:
        index = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{index_file} is not valid JSON ({error})") from error
    entries = index.get("views") if isinstance(index, dict) else None
    if not isinstance(entries, list):
        raise InputError(
            f"{index_file} must be a JSON object with a 'views' list, got {type(entries or index).__name__}"
        )
    views = []
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise InputError(f"{index_file}: view entry {number} must be an object, got {type(entry).__name__}")
        missing = [key for key in ("file", "mask", "camera") if key not in entry]
        if missing:
            raise InputError(f"{index_file}: view entry {number} lacks {', '.join(repr(k) for k in missing)}")
        try:
            camera = Camera.from_dict(entry["camera"])
        except (KeyError, TypeError, ValueError) as error:
            raise InputError(
                f"{index_file}: view entry {number} has no valid camera ({error.__class__.__name__}: {error})"
            ) from error
        image, mask = load_image(folder / str(entry["file"])), load_mask(folder / str(entry["mask"]))
        views.append(MaskedView(image, mask, camera))
    return views


def paint_vertices(mesh: trimesh.Trimesh, views: Sequence[MaskedView]) -> trimesh.Trimesh:
    """Colour ``mesh``'s vertices from the views: each vertex takes the mean colour of the pixels it projects to in
    the views that see it (unoccluded, facing the camera, inside the mask), weighted by the cosine of the viewing
    angle. Vertices no view sees stay grey. Returns the same mesh, coloured."""
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
        unoccluded = first_hit > 1.0 - 1e-3  # nothing in front of the vertex along the ray (t = 1 at the vertex)
        cosine = -(normals * to_vertex).sum(1) / np.linalg.norm(to_vertex, axis=1)
        rows, cols, _ = camera.pixel_indices(vertices)
        usable = unoccluded & (cosine > 0) & camera.points_in_mask(view.mask, vertices)
        total[usable] += view.image[rows[usable], cols[usable]].astype(np.float64) * cosine[usable, None]
        weight[usable] += cosine[usable]
    colors = np.full((len(vertices), 3), 128.0)
    seen = weight > 0
    colors[seen] = total[seen] / weight[seen, None]
    alpha = np.full(len(colors), 255, np.uint8)
    mesh.visual = trimesh.visual.ColorVisuals(mesh, vertex_colors=np.c_[np.round(colors).astype(np.uint8), alpha])
    return mesh
