"""Meshes: conversion between trimesh and Open3D, lazy Open3D import with an install hint, and export through
trimesh (``.glb``, ``.obj``, ``.ply`` with vertex or face colours, written atomically)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import trimesh

from .errors import InputError, MissingDependencyError
from .io import write_atomic

logger = logging.getLogger(__name__)

FORMATS = ("glb", "obj", "ply")
INSTALL_HINT = (
    "this feature needs Open3D: pip install 'p2g3d[3d]' (CPU build open3d-cpu; on Debian also apt-get install "
    "libusb-1.0-0), or install the CUDA build 'open3d' instead, never both"
)


def import_open3d():
    """``open3d``, or an ImportError that says how to install it."""
    try:
        import open3d
    except ImportError as error:  # missing package, or a missing system library such as libusb
        raise MissingDependencyError(f"{INSTALL_HINT} ({error})") from error
    return open3d


def check_mesh(mesh: trimesh.Trimesh, name: str = "mesh") -> trimesh.Trimesh:
    """``mesh`` if it has faces and finite vertices; InputError naming it otherwise."""
    if len(mesh.faces) == 0:
        raise InputError(f"the {name} has no faces")
    if not np.isfinite(mesh.vertices).all():
        raise InputError(f"the {name} has non-finite (NaN or infinite) vertex coordinates")
    return mesh


def mesh_from_field(field: np.ndarray, low, high, level: float = 0.0) -> trimesh.Trimesh:
    """The ``level`` surface of a ``(N, N, N)`` field over the box ``low`` - ``high`` (indexed ``[x, y, z]``, sample
    ``[0, 0, 0]`` at ``low`` and ``[-1, -1, -1]`` at ``high``; inside is ``field > level``), by marching cubes
    (scikit-image), closed (the field is padded with outside values), with outward normals.

    Marching cubes can make an edge shared by four triangles where two parts touch diagonally, and such a mesh
    encloses no volume for the metrics; then the surface is taken again at a level shifted by a thousandth of the
    field's range, and at last from the field smoothed by a Gaussian of half a voxel (a warning says when even
    that stays open)."""
    try:
        from scipy.ndimage import gaussian_filter
        from skimage.measure import marching_cubes
    except ImportError as error:
        raise MissingDependencyError(f"meshing needs scikit-image: pip install 'p2g3d[3d]' ({error})") from error
    field = np.asarray(field, dtype=np.float32)
    if field.ndim != 3 or not (field > level).any():
        raise InputError(f"expected a (N, N, N) field with values above {level}, got shape {field.shape}")
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    spacing = (high - low) / (np.array(field.shape) - 1)
    shift = 1e-3 * float(field.max() - field.min())
    tries = [(field, level), (field, level + shift), (field, level - shift), (gaussian_filter(field, 0.5), level)]
    for values, surface_level in tries:
        padded = np.pad(values, 1, constant_values=min(float(values.min()), surface_level - 1.0))
        vertices, faces, _, _ = marching_cubes(padded, surface_level, spacing=tuple(spacing))
        mesh = trimesh.Trimesh(vertices - spacing + low, faces[:, ::-1], process=False)
        if mesh.is_watertight:
            break
    else:
        logger.warning("the surface has edges shared by more than two triangles: it encloses no clean volume")
    mesh.fix_normals()
    return mesh


def as_trimesh(mesh) -> trimesh.Trimesh:
    """A ``trimesh.Trimesh``, an Open3D ``TriangleMesh`` (legacy or tensor) or a mesh file path -> ``trimesh.Trimesh``.

    Scenes (e.g. multi-part GLB files) are concatenated into one mesh.
    """
    if isinstance(mesh, trimesh.Trimesh):
        return mesh
    if isinstance(mesh, (str, os.PathLike)):
        path = Path(mesh)
        if not path.is_file():
            raise FileNotFoundError(f"mesh file not found: {path}")
        try:
            loaded = trimesh.load(path, process=False)
        except Exception as error:  # trimesh's loaders raise many types for malformed files
            raise InputError(f"{path} is not a readable mesh file ({error.__class__.__name__}: {error})") from error
        if isinstance(loaded, trimesh.Scene):
            loaded = loaded.to_mesh() if hasattr(loaded, "to_mesh") else loaded.dump(concatenate=True)
        if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
            raise InputError(f"{path} holds no triangle mesh")
        return loaded
    o3d = import_open3d()
    if isinstance(mesh, o3d.t.geometry.TriangleMesh):
        mesh = mesh.to_legacy()
    if isinstance(mesh, o3d.geometry.TriangleMesh):
        colors = np.asarray(mesh.vertex_colors)
        return trimesh.Trimesh(
            vertices=np.asarray(mesh.vertices),
            faces=np.asarray(mesh.triangles),
            vertex_colors=(colors * 255).round().astype(np.uint8) if len(colors) else None,
            process=False,
        )
    raise TypeError(f"expected a trimesh.Trimesh, an Open3D TriangleMesh or a path, got {type(mesh).__name__}")


def as_open3d(mesh):
    """Any accepted mesh -> Open3D legacy ``TriangleMesh`` (float64 vertices)."""
    o3d = import_open3d()
    if isinstance(mesh, o3d.geometry.TriangleMesh):
        return mesh
    source = as_trimesh(mesh)
    result = o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.asarray(source.vertices, dtype=np.float64)),
        o3d.utility.Vector3iVector(np.asarray(source.faces, dtype=np.int32)),
    )
    return result


def as_tensor_mesh(mesh):
    """Any accepted mesh -> Open3D tensor ``TriangleMesh`` (float32), as ``RaycastingScene`` wants."""
    o3d = import_open3d()
    return o3d.t.geometry.TriangleMesh.from_legacy(as_open3d(mesh))


def export_mesh(mesh, path: str | os.PathLike) -> Path:
    """Write ``mesh`` (trimesh, Open3D mesh or mesh file) to ``path``; the suffix picks the format.

    Colours are kept: vertex colours in all three formats (OBJ as ``v x y z r g b``), face colours in GLB and PLY.
    """
    path = Path(path)
    file_type = path.suffix.lower().lstrip(".")
    if file_type not in FORMATS:
        raise InputError(
            f"unsupported mesh format {path.suffix!r}; expected one of {', '.join('.' + f for f in FORMATS)}"
        )
    source = as_trimesh(mesh)
    if len(source.faces) == 0:
        raise InputError("the mesh has no faces")
    kwargs = {"include_color": True} if file_type == "obj" else {}
    data = source.export(file_type=file_type, **kwargs)
    data = data if isinstance(data, bytes) else data.encode()
    return write_atomic(path, with_buffer_view_targets(data) if file_type == "glb" else data)


GLB_JSON_CHUNK = 0x4E4F534A
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


def with_buffer_view_targets(glb: bytes) -> bytes:
    """``glb`` with ``target`` set on the buffer views of vertex attributes (ARRAY_BUFFER) and of indices
    (ELEMENT_ARRAY_BUFFER), as glTF validators recommend; the binary chunk is unchanged."""
    import json
    import struct

    magic, version, _ = struct.unpack_from("<4sII", glb, 0)
    json_length, json_type = struct.unpack_from("<II", glb, 12)
    if magic != b"glTF" or json_type != GLB_JSON_CHUNK:
        return glb
    document = json.loads(glb[20 : 20 + json_length])
    accessors, views = document.get("accessors", []), document.get("bufferViews", [])
    for mesh in document.get("meshes", []):
        for primitive in mesh.get("primitives", []):
            for accessor in primitive.get("attributes", {}).values():
                views[accessors[accessor]["bufferView"]].setdefault("target", ARRAY_BUFFER)
            if "indices" in primitive:
                views[accessors[primitive["indices"]]["bufferView"]].setdefault("target", ELEMENT_ARRAY_BUFFER)
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned, JSON padded with spaces
    rest = glb[20 + json_length :]
    header = struct.pack("<4sII", b"glTF", version, 12 + 8 + len(text) + len(rest))
    return header + struct.pack("<II", len(text), GLB_JSON_CHUNK) + text + rest
