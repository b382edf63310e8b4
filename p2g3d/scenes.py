"""Synthetic occluded-object scenes: the project's 3D occlusion benchmark (and the 3D objects of the training data).

A scene is a procedural target object at the origin (world +Z up, bounding box centred, largest side 1, one
watertight coloured mesh), occluders placed between chosen cameras and the target so that they hide a chosen
share of the target there (standing 0.7 to 1.1 units in front of the target's centre, never touching it, like
clutter in front of an object), and a ring of cameras (:mod:`p2g3d.cameras` convention). Two styles: ``"simple"``
(one grey box hiding the target in view 0, white background) and ``"cluttered"`` (an occluder of any colour or
shape for each of several views, seen from the other views too, textured backgrounds). For every view the scene
holds the rendered image, the target's visible mask, its amodal mask (target rendered alone), the occluders' mask
and the camera; the target mesh is the ground truth. Everything is deterministic given the seed.

Targets are unions of primitive signed-distance functions (boxes, spheres, cylinders, tori, cones) meshed by
marching cubes, so that each is ONE watertight surface (a concatenation of overlapping parts would break solid
metrics such as volume IoU). Vertex colours come from the nearest part.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import trimesh

from .cameras import Camera, intrinsics_from_fov, orbit_cameras
from .errors import InputError
from .render import RenderedView, render
from .textures import BACKGROUND_STYLES, background

TARGET_KINDS = ("table", "mug", "lamp", "chair", "dumbbell", "snowman", "L-block", "arch")
SCENE_STYLES = ("simple", "cluttered")
COMPOSITE_KIND = "composite"  # a random union of 2-5 primitives, optionally mirror-symmetric (never drawn by default)
Part = tuple[Callable[[np.ndarray], np.ndarray], tuple[int, int, int]]


# ---- signed distance functions (negative inside) --------------------------------------------------------------------


def _box(center, half, yaw: float = 0.0):
    center, half = np.asarray(center, float), np.asarray(half, float)
    c, s = math.cos(yaw), math.sin(yaw)

    def sdf(p):
        q = p - center
        q = np.stack([c * q[..., 0] + s * q[..., 1], -s * q[..., 0] + c * q[..., 1], q[..., 2]], -1)
        d = np.abs(q) - half
        return np.linalg.norm(np.maximum(d, 0.0), axis=-1) + np.minimum(d.max(-1), 0.0)

    return sdf


def _ellipsoid(center, radii):
    center, radii = np.asarray(center, float), np.asarray(radii, float)
    return lambda p: (np.linalg.norm((p - center) / radii, axis=-1) - 1.0) * radii.min()


def _cylinder(center, radius: float, half_height: float, axis: int = 2):
    center = np.asarray(center, float)

    def sdf(p):
        q = p - center
        radial = np.linalg.norm(np.delete(q, axis, axis=-1), axis=-1) - radius
        along = np.abs(q[..., axis]) - half_height
        outside = np.linalg.norm(np.maximum(np.stack([radial, along], -1), 0.0), axis=-1)
        return outside + np.minimum(np.maximum(radial, along), 0.0)

    return sdf


def _torus(center, major: float, minor: float):
    """Torus in the XZ plane (a handle standing up beside a Z-axis body)."""
    center = np.asarray(center, float)

    def sdf(p):
        q = p - center
        ring = np.linalg.norm(q[..., [0, 2]], axis=-1) - major
        return np.sqrt(ring**2 + q[..., 1] ** 2) - minor

    return sdf


def _cone(base_center, radius: float, height: float):
    """Cone standing on ``base_center`` along +Z (approximate distance, exact zero set)."""
    base_center = np.asarray(base_center, float)
    slope = radius / height

    def sdf(p):
        q = p - base_center
        radial = np.linalg.norm(q[..., :2], axis=-1)
        side = (radial - slope * (height - q[..., 2])) / math.sqrt(1.0 + slope**2)
        return np.maximum(side, np.maximum(-q[..., 2], q[..., 2] - height))

    return sdf


# ---- procedural targets ---------------------------------------------------------------------------------------------


def _color(rng: np.random.Generator) -> tuple[int, int, int]:
    hue = rng.uniform()
    rgb = np.clip(np.abs((hue * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0.0, 1.0)
    value, saturation = rng.uniform(0.45, 0.85), rng.uniform(0.5, 0.9)
    return tuple(int(round(255 * value * (1 - saturation + saturation * c))) for c in rgb)


def _composite_parts(rng: np.random.Generator) -> list[Part]:
    """2-5 random primitives chained so that each overlaps an earlier one; mirrored in x half of the time."""
    u = rng.uniform
    colors = [_color(rng) for _ in range(2)]
    parts: list[Part] = []
    centers = [np.zeros(3)]
    for index in range(int(rng.integers(2, 6))):
        center = centers[int(rng.integers(len(centers)))] + (u(-0.25, 0.25, 3) if index else 0.0)
        size = u(0.08, 0.3, 3)
        color = colors[int(rng.integers(2))]
        kind = int(rng.integers(5))
        if kind == 0:
            sdf = _box(center, size, u(0, math.pi))
        elif kind == 1:
            sdf = _ellipsoid(center, size)
        elif kind == 2:
            sdf = _cylinder(center, size[0], size[2], axis=int(rng.integers(3)))
        elif kind == 3:
            sdf = _cone(center - (0, 0, size[2]), size[0], 2 * size[2])
        else:
            sdf = _torus(center, size[0] + 0.05, min(size[1], size[0]) / 2 + 0.02)
        parts.append((sdf, color))
        centers.append(center)
    if u() < 0.5:
        mirror = np.array([-1.0, 1.0, 1.0])
        parts += [(lambda p, sdf=sdf: sdf(p * mirror), color) for sdf, color in parts]
    return parts


def _target_parts(kind: str, rng: np.random.Generator) -> list[Part]:
    if kind == COMPOSITE_KIND:
        return _composite_parts(rng)
    u = rng.uniform
    a, b = _color(rng), _color(rng)
    if kind == "table":
        w, d, h = u(0.35, 0.5), u(0.25, 0.4), u(0.25, 0.4)
        leg = u(0.03, 0.06)
        parts = [(_box((0, 0, h), (w, d, 0.04)), a)]
        parts += [
            (_box((sx * (w - leg), sy * (d - leg), h / 2 - 0.02), (leg, leg, h / 2)), b)
            for sx in (-1, 1)
            for sy in (-1, 1)
        ]
        return parts
    if kind == "mug":
        r, h = u(0.18, 0.3), u(0.25, 0.4)
        return [(_cylinder((0, 0, 0), r, h), a), (_torus((r + 0.08, 0, 0), u(0.1, 0.15), u(0.03, 0.05)), b)]
    if kind == "lamp":
        return [
            (_cylinder((0, 0, -0.4), u(0.15, 0.25), 0.04), a),
            (_cylinder((0, 0, -0.1), 0.03, 0.3), b),
            (_cone((0, 0, 0.15), u(0.2, 0.3), u(0.2, 0.3)), a),
        ]
    if kind == "chair":
        s, h = u(0.22, 0.3), u(0.2, 0.3)
        parts = [(_box((0, 0, 0), (s, s, 0.04)), a), (_box((-s + 0.03, 0, h), (0.03, s, h)), b)]
        parts += [
            (_box((sx * (s - 0.03), sy * (s - 0.03), -h / 2 - 0.02), (0.03, 0.03, h / 2)), b)
            for sx in (-1, 1)
            for sy in (-1, 1)
        ]
        return parts
    if kind == "dumbbell":
        r, half = u(0.15, 0.22), u(0.25, 0.35)
        return [
            (_ellipsoid((-half, 0, 0), (r, r, r)), a),
            (_ellipsoid((half, 0, 0), (r, r, r)), a),
            (_cylinder((0, 0, 0), 0.05, half, axis=0), b),
        ]
    if kind == "snowman":
        r1, r2 = u(0.22, 0.3), u(0.14, 0.2)
        return [
            (_ellipsoid((0, 0, -0.15), (r1, r1, r1)), a),
            (_ellipsoid((0, 0, -0.15 + r1 + r2 * 0.7), (r2, r2, r2)), a),
            (_cone((r2 * 0.7, 0, -0.15 + r1 + r2 * 0.7), 0.04, 0.1), b),
        ]
    if kind == "L-block":
        yaw = u(0, math.pi)
        return [
            (_box((0, 0, 0), (u(0.3, 0.45), 0.12, 0.12), yaw), a),
            (_box((0.2, 0, 0.2), (0.12, 0.12, u(0.2, 0.3)), yaw), b),
        ]
    if kind == "arch":
        w, h = u(0.3, 0.45), u(0.25, 0.35)
        return [
            (_box((-w, 0, 0), (0.08, 0.12, h)), a),
            (_box((w, 0, 0), (0.08, 0.12, h)), a),
            (_box((0, 0, h), (w + 0.08, 0.12, 0.08)), b),
        ]
    raise InputError(f"unknown target kind {kind!r}; expected one of {(*TARGET_KINDS, COMPOSITE_KIND)}")


def _mesh_from_parts(parts: Sequence[Part], resolution: int) -> trimesh.Trimesh:
    from skimage.measure import marching_cubes

    extent = 0.85
    axis = np.linspace(-extent, extent, resolution)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    distances = np.stack([sdf(grid) for sdf, _ in parts])
    field = distances.min(0)
    spacing = axis[1] - axis[0]
    vertices, faces, _, _ = marching_cubes(np.pad(field, 1, constant_values=1.0), 0.0, spacing=(spacing,) * 3)
    vertices = vertices - extent - spacing
    owner = np.stack([sdf(vertices) for sdf, _ in parts]).argmin(0)
    colors = np.array([color for _, color in parts], dtype=np.uint8)[owner]
    mesh = trimesh.Trimesh(vertices, faces[:, ::-1], vertex_colors=np.c_[colors, np.full(len(colors), 255, np.uint8)])
    mesh.fix_normals()
    low, high = mesh.bounds
    mesh.apply_translation(-(low + high) / 2)
    mesh.apply_scale(1.0 / (high - low).max())
    return mesh


def make_target(rng: np.random.Generator, kind: str | None = None, resolution: int = 72) -> trimesh.Trimesh:
    """A procedural coloured object: one watertight mesh, bounding box centred at the origin, largest side 1.

    ``kind``: one of ``TARGET_KINDS`` or ``COMPOSITE_KIND``; a random one of ``TARGET_KINDS`` when None.
    """
    kind = kind or TARGET_KINDS[rng.integers(len(TARGET_KINDS))]
    return _mesh_from_parts(_target_parts(kind, rng), resolution)


def make_occluder(
    rng: np.random.Generator,
    camera: Camera,
    distance: float,
    offset: np.ndarray,
    kind: str = "box",
    colorful: bool = False,
) -> trimesh.Trimesh:
    """An occluder ``distance`` from the origin towards ``camera``, shifted by ``offset`` (image right / down, world
    units), facing the camera: clutter standing just in front of the object.

    ``kind="box"``: a panel or pillar, grey-ish unless ``colorful``; ``kind="object"``: another procedural object
    (:func:`make_target`, 0.35-0.6 units across) in its own colours.
    """
    toward_camera = camera.center / np.linalg.norm(camera.center)
    center = toward_camera * distance + camera.R.T @ np.array([offset[0], offset[1], 0.0])
    direction = -toward_camera
    if kind == "object":
        occluder = make_target(
            rng, (*TARGET_KINDS, COMPOSITE_KIND)[int(rng.integers(len(TARGET_KINDS) + 1))], resolution=40
        )
        occluder.apply_scale(rng.uniform(0.35, 0.6))
    elif rng.uniform() < 0.5:
        occluder = trimesh.creation.box((rng.uniform(0.15, 0.35), 0.06, rng.uniform(0.4, 0.9)))  # pillar-ish panel
    else:
        occluder = trimesh.creation.box((rng.uniform(0.35, 0.7), 0.06, rng.uniform(0.15, 0.35)))  # low wall
    yaw = math.atan2(direction[1], direction[0]) + math.pi / 2
    occluder.apply_transform(trimesh.transformations.rotation_matrix(yaw, (0, 0, 1)))
    occluder.apply_translation(center)
    if kind == "box" and colorful:
        occluder.visual.face_colors = (*_color(rng), 255)
    elif kind == "box":
        gray = int(rng.integers(70, 150))
        occluder.visual.face_colors = (gray, gray, int(min(255, gray + rng.integers(0, 40))), 255)
    return occluder


def place_occluder(
    rng: np.random.Generator,
    target: trimesh.Trimesh,
    cameras: Sequence[Camera],
    occlusion_range: tuple[float, float],
    *,
    max_tries: int = 200,
    touches: Callable[[trimesh.Trimesh], bool] | None = None,
) -> tuple[trimesh.Trimesh, list[RenderedView], list[RenderedView]] | None:
    """An occluder standing in front of ``target`` as seen from ``cameras[0]`` that hides a share in
    ``occlusion_range`` of the target's silhouette in EVERY camera, never touching the target.

    Returns ``(occluder, scene renders, target-alone renders)`` per camera, or None when ``max_tries`` random
    placements all fail. ``touches`` is the target's :func:`contact_test` (built here when not given).
    """
    low, high = occlusion_range
    touches = touches or contact_test(target)
    alone = [render([target], camera) for camera in cameras]
    for _ in range(max_tries):
        offset = rng.uniform(-0.35, 0.35, size=2)
        occluder = make_occluder(rng, cameras[0], rng.uniform(0.7, 1.0), offset)
        if touches(occluder):
            continue
        scenes = [render([target, occluder], camera) for camera in cameras]
        shares = [1.0 - s.mask(0).sum() / max(1, a.mask(0).sum()) for s, a in zip(scenes, alone)]
        if all(low <= share <= high for share in shares):
            return occluder, scenes, alone
    return None


# ---- scenes ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class SceneView:
    """One view of a scene. Arrays are ``(H, W, 3)`` uint8 / ``(H, W)`` bool in the view's pixel frame;
    ``whole_image`` is the target rendered alone on white (the whole object, pix2gestalt's training target)."""

    image: np.ndarray
    visible_mask: np.ndarray
    amodal_mask: np.ndarray
    occluder_mask: np.ndarray
    camera: Camera
    whole_image: np.ndarray  # the target rendered alone on white: pix2gestalt's training target

    @property
    def occluded_fraction(self) -> float:
        """Share of the target's silhouette that the occluder hides in this view."""
        area = int(self.amodal_mask.sum())
        return 0.0 if area == 0 else 1.0 - float(self.visible_mask.sum()) / area

    @property
    def foreground_mask(self) -> np.ndarray:
        """Target or occluder: what a generic foreground segmenter would give."""
        return self.visible_mask | self.occluder_mask


@dataclass(frozen=True, eq=False)
class OccludedScene:
    """A target, its occluders, and the views. ``target`` is the ground-truth mesh."""

    target: trimesh.Trimesh
    occluders: tuple[trimesh.Trimesh, ...]
    views: tuple[SceneView, ...]
    occluded_views: tuple[int, ...]
    seed: int


def contact_test(target: trimesh.Trimesh) -> Callable[[trimesh.Trimesh], bool]:
    """A test of whether a mesh touches the target: its vertices and surface samples against the target's solid."""
    from .meshes import as_tensor_mesh, import_open3d

    o3d = import_open3d()
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(as_tensor_mesh(target))

    def touches(mesh: trimesh.Trimesh) -> bool:
        points = np.concatenate([mesh.vertices, trimesh.sample.sample_surface(mesh, 2000, seed=0)[0]])
        query = o3d.core.Tensor(points.astype(np.float32))
        inside = scene.compute_occupancy(query).numpy() > 0.5
        return bool(inside.any() or (scene.compute_distance(query).numpy() < 0.02).any())

    return touches


def place_clutter(
    rng: np.random.Generator,
    target: trimesh.Trimesh,
    cameras: Sequence[Camera],
    occluded_views: Sequence[int],
    occlusion_range: tuple[float, float],
    *,
    max_tries: int = 200,
) -> list[trimesh.Trimesh] | None:
    """One occluder per view in ``occluded_views`` (boxes of any colour or other procedural objects), each hiding a
    share in ``occlusion_range`` of the target in its view together with the occluders placed before it; none
    touches the target. None when a view's ``max_tries`` placements all fail."""
    low, high = occlusion_range
    touches = contact_test(target)
    occluders: list[trimesh.Trimesh] = []
    for view in occluded_views:
        camera = cameras[view]
        area = max(1, int(render([target], camera).mask(0).sum()))
        for _ in range(max_tries):
            kind = "object" if rng.uniform() < 0.5 else "box"
            occluder = make_occluder(
                rng, camera, rng.uniform(0.7, 1.1), rng.uniform(-0.4, 0.4, size=2), kind, colorful=True
            )
            if touches(occluder):
                continue
            share = 1.0 - render([target, *occluders, occluder], camera).mask(0).sum() / area
            if low <= share <= high:
                occluders.append(occluder)
                break
        else:
            return None
    return occluders


def make_scene(
    seed: int,
    *,
    num_views: int = 8,
    elevation_deg: float = 25.0,
    radius: float = 2.8,
    image_size: int = 128,
    fov_deg: float = 40.0,
    occluded_views: Sequence[int] | None = None,
    occlusion_range: tuple[float, float] = (0.2, 0.6),
    target_kind: str | None = None,
    style: str = "simple",
    max_tries: int = 200,
) -> OccludedScene:
    """Build a deterministic occluded scene.

    Args:
        seed: all randomness (target, occluders, placement, backgrounds) comes from ``numpy.random.default_rng(seed)``.
        num_views, elevation_deg, radius: the camera ring (evenly spaced azimuths starting at 0).
        image_size, fov_deg: square images and the horizontal field of view.
        occluded_views: views in which occluders must hide ``occlusion_range`` of the target (default: view 0 for
            ``"simple"``, views 0, 3 and 5 of 8 (spread over the ring) for ``"cluttered"``).
        occlusion_range: accepted share of the target's silhouette hidden in each occluded view.
        target_kind: one of ``TARGET_KINDS``; random when None.
        style: ``"simple"``: one grey box occluder that hides the target in every occluded view, white background;
            ``"cluttered"``: one occluder per occluded view (boxes of any colour and other objects), visible in the
            other views too, and a textured background per view (:mod:`p2g3d.textures`).
        max_tries: occluder placements tried before giving up (ValueError).
    """
    if style not in SCENE_STYLES:
        raise InputError(f"style must be one of {SCENE_STYLES}, got {style!r}")
    if occluded_views is None:
        occluded_views = (0,) if style == "simple" else tuple(v * num_views // 8 for v in (0, 3, 5))
    low, high = occlusion_range
    if not 0.0 <= low < high <= 1.0:
        raise InputError(f"occlusion_range must satisfy 0 <= low < high <= 1, got {occlusion_range}")
    if not occluded_views or any(not 0 <= v < num_views for v in occluded_views):
        raise InputError(f"occluded_views must be non-empty indices below num_views={num_views}, got {occluded_views}")
    rng = np.random.default_rng(seed)
    target = make_target(rng, target_kind)
    K = intrinsics_from_fov(fov_deg, image_size, image_size)
    cameras = orbit_cameras(num_views, elevation_deg, radius, K, image_size, image_size)
    if style == "simple":
        placed = place_occluder(rng, target, [cameras[v] for v in occluded_views], occlusion_range, max_tries=max_tries)
        occluders = None if placed is None else [placed[0]]
    else:
        occluders = place_clutter(rng, target, cameras, occluded_views, occlusion_range, max_tries=max_tries)
    if occluders is None:
        raise InputError(
            f"no occluder placement hid {occlusion_range} of the target in views {occluded_views} (seed {seed})"
        )
    backdrop = None if style == "simple" else BACKGROUND_STYLES[1 + int(rng.integers(len(BACKGROUND_STYLES) - 1))]

    views = []
    for camera in cameras:
        full, whole = render([target, *occluders], camera), render([target], camera)
        image = full.rgb
        if backdrop is not None:
            empty = (full.instance_ids < 0)[..., None]
            image = np.where(
                empty, np.clip(background(backdrop, rng, *image.shape[:2]), 0, 255).astype(np.uint8), image
            )
        views.append(
            SceneView(
                image=image,
                visible_mask=full.mask(0),
                amodal_mask=whole.mask(0),
                occluder_mask=full.instance_ids > 0,
                camera=camera,
                whole_image=whole.rgb,
            )
        )
    return OccludedScene(target, tuple(occluders), tuple(views), tuple(occluded_views), seed)
