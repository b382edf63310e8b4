"""Mesh export through trimesh: ``.glb``, ``.obj`` and ``.ply`` with vertex or face colours, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

from .geometry import as_trimesh
from .io import write_atomic

FORMATS = ("glb", "obj", "ply")


def export_mesh(mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` (trimesh, Open3D mesh or mesh file) to ``path``; the suffix picks the format.

    Colours are kept: vertex colours in all three formats (OBJ as ``v x y z r g b``), face colours in GLB and PLY.
    """
    path = Path(path)
    file_type = path.suffix.lower().lstrip(".")
    if file_type not in FORMATS:
        raise ValueError(f"unsupported mesh format {path.suffix!r}; expected one of {', '.join('.' + f for f in FORMATS)}")
    source = as_trimesh(mesh)
    if len(source.faces) == 0:
        raise ValueError("the mesh has no faces")
    kwargs = {"include_color": True} if file_type == "obj" else {}
    data = source.export(file_type=file_type, **kwargs)
    return write_atomic(path, data if isinstance(data, bytes) else data.encode())
