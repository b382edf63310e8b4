"""The ONE camera convention of p2g3d, and converters to the conventions of other tools.

Convention (every camera in p2g3d follows it; other conventions appear only in the converters below):

* World frame: right-handed, **+Z up**. Objects sit at the origin.
* Camera frame: OpenCV axes: **+X right, +Y down, +Z forward** (the viewing direction; visible points have z > 0).
* Extrinsics: ``world_to_camera`` 4x4 ``[[R, t], [0, 0, 0, 1]]``, so ``x_cam = R @ x_world + t``. The camera centre
  is ``-R.T @ t``; ``camera_to_world`` is the inverse.
* Intrinsics: ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` in **pixels**. Pixel coordinates ``(u, v)``: u to the
  right (column), v down (row), origin at the top-left CORNER of the image: pixel ``(row i, col j)`` covers
  ``[j, j + 1) x [i, i + 1)``, its centre is ``(j + 0.5, i + 0.5)``, and the image centre is ``(W / 2, H / 2)``.
* Spherical (orbit) parameters: ``elevation`` in degrees above the XY plane, ``azimuth`` in degrees
  counter-clockwise seen from +Z with 0 on +X (the camera centre is
  ``r * (cos(el) cos(az), cos(el) sin(az), sin(el))``), ``radius``; the camera looks at the origin with world +Z
  pointing up in the image.

Other conventions:

============  ========================================  ================================================
convention    camera axes                               extrinsics / intrinsics
============  ========================================  ================================================
OpenCV        +X right, +Y down, +Z forward (= ours)    world->camera R, t; pixel CENTRES at integers:
                                                        ``cx_cv = cx - 0.5``, ``cy_cv = cy - 0.5``
OpenGL /      +X right, +Y up, +Z backward              camera->world ``c2w = ours_c2w @ diag(1, -1, -1, 1)``;
nerfstudio                                              pixel centres at +0.5 like ours (fl_x, cx unchanged)
pytorch3d     +X left, +Y up, +Z forward; row vectors   ``X_view = X_world @ R + T``; NDC focal length and
              (``cameras_from_opencv_projection``)      principal point, the short image side spans [-1, 1]
Zero-1-to-3   relative spherical pose                   ``delta polar`` (polar = 90 - elevation; positive
                                                        moves the camera DOWN), ``delta azimuth`` = change
                                                        of ``atan2(y, x)`` of the centre (counter-clockwise
                                                        from above, as ours; the classic NeRF
                                                        ``pose_spherical`` theta turns the other way),
                                                        ``delta radius``
============  ========================================  ================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

OPENGL_FROM_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
# Zero-1-to-3's Objaverse renders: Blender's default 35 mm lens on a 32 mm sensor, cameras 1.5 units (and more) from
# objects normalised to a unit cube; the project's novel-view cameras and training renders use the same.
ZERO123_FOV_DEG = 2.0 * math.degrees(math.atan(16.0 / 35.0))
ZERO123_RADIUS = 1.5


def _as_matrix(value, shape: tuple[int, ...], name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.shape != shape:
        raise InputError(f"{name} must have shape {shape}, got {array.shape}")
    if not np.isfinite(array).all():
        raise InputError(f"{name} must be finite")
    return array


@dataclass(frozen=True, eq=False)
class Camera:
    """A pinhole camera in the p2g3d convention (module docstring).

    Attributes:
        K: ``(3, 3)`` intrinsics in pixels (corner-origin pixel coordinates).
        world_to_camera: ``(4, 4)`` extrinsics, OpenCV camera axes, world +Z up.
        width, height: image size in pixels.
    """

    K: np.ndarray
    world_to_camera: np.ndarray
    width: int
    height: int

    def __post_init__(self):
        object.__setattr__(self, "K", _as_matrix(self.K, (3, 3), "K"))
        object.__setattr__(self, "world_to_camera", _as_matrix(self.world_to_camera, (4, 4), "world_to_camera"))
        rotation = self.world_to_camera[:3, :3]
        if not np.allclose(rotation @ rotation.T, np.eye(3), atol=1e-6) or np.linalg.det(rotation) < 0:
            raise InputError("world_to_camera must hold a proper rotation (orthonormal, det +1)")
        if int(self.width) < 1 or int(self.height) < 1:
            raise InputError(f"image size must be positive, got {self.width}x{self.height}")
        for array in (self.K, self.world_to_camera):
            array.flags.writeable = False

    @property
    def R(self) -> np.ndarray:
        """``(3, 3)`` world->camera rotation."""
        return self.world_to_camera[:3, :3]

    @property
    def t(self) -> np.ndarray:
        """``(3,)`` world->camera translation."""
        return self.world_to_camera[:3, 3]

    @property
    def camera_to_world(self) -> np.ndarray:
        """``(4, 4)`` inverse of ``world_to_camera``."""
        inverse = np.eye(4)
        inverse[:3, :3] = self.R.T
        inverse[:3, 3] = -self.R.T @ self.t
        return inverse

    @property
    def center(self) -> np.ndarray:
        """``(3,)`` camera centre in world coordinates."""
        return -self.R.T @ self.t

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points ``(N, 3)`` -> pixel coordinates ``(N, 2)`` (u, v) and depths ``(N,)`` (camera z)."""
        points = np.asarray(points, dtype=np.float64).reshape(-1, 3)
        camera_points = points @ self.R.T + self.t
        depth = camera_points[:, 2]
        uv = (camera_points @ self.K.T)[:, :2] / depth[:, None]
        return uv, depth

    def pixel_indices(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points ``(N, 3)`` -> ``(rows, cols, inside)``: the ``(N,)`` int pixel each point projects into
        (pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``) and ``(N,)`` bool, in front of the camera and within
        the image. ``rows`` / ``cols`` are only meaningful where ``inside``."""
        uv, depth = self.project(points)
        with np.errstate(invalid="ignore"):
            cols, rows = np.floor(uv[:, 0]), np.floor(uv[:, 1])
            inside = (depth > 0) & (cols >= 0) & (rows >= 0) & (cols < self.width) & (rows < self.height)
        return np.where(inside, rows, 0).astype(int), np.where(inside, cols, 0).astype(int), inside

    def points_in_mask(self, mask: np.ndarray, points: np.ndarray) -> np.ndarray:
        """``(N,)`` bool: world points ``(N, 3)`` whose pixel lies inside ``mask`` ``(H, W)`` (outside the image and
        behind the camera count as outside the mask)."""
        rows, cols, inside = self.pixel_indices(points)
        return inside & mask[rows, cols]

    def to_dict(self) -> dict:
        """JSON-ready dict (the format of ``cameras.json``)."""
        return {
            "convention": "p2g3d: world +Z up; OpenCV camera axes; world_to_camera; K in pixels, corner origin",
            "width": int(self.width),
            "height": int(self.height),
            "K": self.K.tolist(),
            "world_to_camera": self.world_to_camera.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Camera:
        return cls(np.array(data["K"]), np.array(data["world_to_camera"]), int(data["width"]), int(data["height"]))


def intrinsics_from_fov(fov_deg: float, width: int, height: int) -> np.ndarray:
    """``K`` of a camera whose horizontal field of view is ``fov_deg``, square pixels, centred principal point."""
    if not 0.0 < fov_deg < 180.0:
        raise InputError(f"fov_deg must be in (0, 180), got {fov_deg}")
    focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def spherical_to_position(elevation_deg: float, azimuth_deg: float, radius: float) -> np.ndarray:
    """Orbit parameters -> camera centre ``(3,)`` in world coordinates."""
    el, az = math.radians(elevation_deg), math.radians(azimuth_deg)
    return radius * np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])


def position_to_spherical(position: np.ndarray) -> tuple[float, float, float]:
    """Camera centre ``(3,)`` -> ``(elevation_deg, azimuth_deg in (-180, 180], radius)``."""
    x, y, z = np.asarray(position, dtype=np.float64)
    radius = math.sqrt(x * x + y * y + z * z)
    if radius == 0.0:
        raise InputError("a camera at the origin has no spherical coordinates")
    return math.degrees(math.asin(max(-1.0, min(1.0, z / radius)))), math.degrees(math.atan2(y, x)), radius


def orbit_camera(
    elevation_deg: float, azimuth_deg: float, radius: float, K: np.ndarray, width: int, height: int
) -> Camera:
    """Camera on the orbit sphere looking at the origin, world +Z up in the image (also at the poles)."""
    if radius <= 0:
        raise InputError(f"radius must be positive, got {radius}")
    position = spherical_to_position(elevation_deg, azimuth_deg, radius)
    az = math.radians(azimuth_deg)
    forward = -position / radius
    right = np.array([-math.sin(az), math.cos(az), 0.0])  # tangent of the azimuth circle, counter-clockwise
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = rotation
    world_to_camera[:3, 3] = -rotation @ position
    return Camera(K, world_to_camera, width, height)


def orbit_cameras(
    num_views: int,
    elevation_deg: float,
    radius: float,
    K: np.ndarray,
    width: int,
    height: int,
    start_azimuth_deg: float = 0.0,
) -> list[Camera]:
    """``num_views`` cameras evenly spaced counter-clockwise around +Z at one elevation."""
    if num_views < 1:
        raise InputError(f"num_views must be positive, got {num_views}")
    return [
        orbit_camera(elevation_deg, start_azimuth_deg + 360.0 * k / num_views, radius, K, width, height)
        for k in range(num_views)
    ]


def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """``world_to_camera`` of a camera at ``eye`` looking at ``target`` with ``up`` pointing up in the image."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    forward = target - eye
    if np.linalg.norm(forward) == 0:
        raise InputError("eye and target coincide")
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-9:
        raise InputError("up is parallel to the viewing direction; pass another up vector")
    right /= np.linalg.norm(right)
    rotation = np.stack([right, np.cross(forward, right), forward])
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = rotation
    world_to_camera[:3, 3] = -rotation @ eye
    return world_to_camera


# ---- OpenCV ---------------------------------------------------------------------------------------------------------


def to_opencv(camera: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> ``(K_cv, R, t)`` for ``cv2.projectPoints``: same axes; principal point shifted by -0.5 because OpenCV puts
    pixel centres at integer coordinates."""
    K = camera.K.copy()
    K[0, 2] -= 0.5
    K[1, 2] -= 0.5
    return K, camera.R.copy(), camera.t.copy()


def from_opencv(K_cv: np.ndarray, R: np.ndarray, t: np.ndarray, width: int, height: int) -> Camera:
    """Inverse of :func:`to_opencv`."""
    K = _as_matrix(K_cv, (3, 3), "K").copy()
    K[0, 2] += 0.5
    K[1, 2] += 0.5
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = _as_matrix(R, (3, 3), "R")
    world_to_camera[:3, 3] = _as_matrix(t, (3,), "t")
    return Camera(K, world_to_camera, width, height)


# ---- OpenGL / nerfstudio --------------------------------------------------------------------------------------------


def to_opengl(camera: Camera) -> np.ndarray:
    """-> ``(4, 4)`` camera-to-world with OpenGL camera axes (+Y up, looking along -Z), as nerfstudio's
    ``transforms.json`` ``transform_matrix`` and Blender use. Intrinsics carry over unchanged."""
    return camera.camera_to_world @ OPENGL_FROM_OPENCV


def from_opengl(camera_to_world_gl: np.ndarray, K: np.ndarray, width: int, height: int) -> Camera:
    """Inverse of :func:`to_opengl`."""
    camera_to_world = _as_matrix(camera_to_world_gl, (4, 4), "camera_to_world") @ OPENGL_FROM_OPENCV
    return Camera(K, np.linalg.inv(camera_to_world), width, height)


def to_nerfstudio_frame(camera: Camera, file_path: str) -> dict:
    """One ``frames`` entry of a nerfstudio ``transforms.json`` (per-frame intrinsics, OpenGL camera-to-world)."""
    return {
        "file_path": file_path,
        "transform_matrix": to_opengl(camera).tolist(),
        "fl_x": float(camera.K[0, 0]),
        "fl_y": float(camera.K[1, 1]),
        "cx": float(camera.K[0, 2]),
        "cy": float(camera.K[1, 2]),
        "w": int(camera.width),
        "h": int(camera.height),
    }


# ---- pytorch3d ------------------------------------------------------------------------------------------------------

_PYTORCH3D_FLIP = np.diag([-1.0, -1.0, 1.0])  # OpenCV camera axes -> pytorch3d view axes (+X left, +Y up)


def to_pytorch3d(camera: Camera) -> dict:
    """-> keyword arguments of ``pytorch3d.renderer.PerspectiveCameras`` (batch of one, NDC intrinsics), the same
    values ``pytorch3d.utils.cameras_from_opencv_projection`` computes: ``R`` ``(1, 3, 3)`` and ``T`` ``(1, 3)``
    for row vectors (``X_view = X_world @ R + T``), ``focal_length`` and ``principal_point`` ``(1, 2)`` in NDC
    units where the short image side spans [-1, 1], ``image_size`` ``(1, 2)`` as (height, width), ``in_ndc``."""
    scale = min(camera.width, camera.height) / 2.0
    half_size = np.array([camera.width / 2.0, camera.height / 2.0])
    focal = np.array([camera.K[0, 0], camera.K[1, 1]]) / scale
    principal_point = -(np.array([camera.K[0, 2], camera.K[1, 2]]) - half_size) / scale
    return {
        "R": ((_PYTORCH3D_FLIP @ camera.R).T)[None],
        "T": (_PYTORCH3D_FLIP @ camera.t)[None],
        "focal_length": focal[None],
        "principal_point": principal_point[None],
        "image_size": np.array([[camera.height, camera.width]]),
        "in_ndc": True,
    }


def from_pytorch3d(R: np.ndarray, T: np.ndarray, focal_length, principal_point, width: int, height: int) -> Camera:
    """Inverse of :func:`to_pytorch3d` (one camera; accepts ``(1, ...)`` batches)."""
    R = _as_matrix(np.asarray(R).reshape(3, 3), (3, 3), "R")
    T = _as_matrix(np.asarray(T).reshape(3), (3,), "T")
    scale = min(width, height) / 2.0
    fx, fy = np.asarray(focal_length, dtype=np.float64).reshape(2) * scale
    cx, cy = -np.asarray(principal_point, dtype=np.float64).reshape(2) * scale + np.array([width / 2.0, height / 2.0])
    world_to_camera = np.eye(4)
    world_to_camera[:3, :3] = _PYTORCH3D_FLIP @ R.T
    world_to_camera[:3, 3] = _PYTORCH3D_FLIP @ T
    return Camera(np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]), world_to_camera, width, height)


# ---- Zero-1-to-3 ----------------------------------------------------------------------------------------------------


def zero123_relative_pose(source: Camera, target: Camera) -> tuple[float, float, float]:
    """Relative pose from ``source`` to ``target`` exactly as Zero-1-to-3 was trained on it.

    Returns ``(delta_polar_deg, delta_azimuth_deg in [0, 360), delta_radius)`` computed from the camera centres
    (the official ``get_T``: polar from +Z, ``atan2(y, x)`` azimuth, distance to the origin). Both cameras should
    look at the origin, where Zero-1-to-3 assumes the object is.
    """
    el_s, az_s, r_s = position_to_spherical(source.center)
    el_t, az_t, r_t = position_to_spherical(target.center)
    return (90.0 - el_t) - (90.0 - el_s), (az_t - az_s) % 360.0, r_t - r_s


def camera_from_zero123(
    delta_polar_deg: float, delta_azimuth_deg: float, delta_radius: float, source: Camera
) -> Camera:
    """The camera a Zero-1-to-3 relative pose leads to from ``source`` (same intrinsics, looking at the origin)."""
    elevation, azimuth, radius = position_to_spherical(source.center)
    return orbit_camera(
        elevation - delta_polar_deg,
        azimuth + delta_azimuth_deg,
        radius + delta_radius,
        source.K,
        source.width,
        source.height,
    )


def zero123_relative_poses(source_centers: np.ndarray, target_centers: np.ndarray) -> np.ndarray:
    """``(N, 3)`` Zero-1-to-3 relative poses (delta polar deg, delta azimuth deg in [0, 360), delta radius) between
    camera centres ``(N, 3)``, as the official ``get_T`` computes them."""

    def spherical(centers):
        x, y, z = np.asarray(centers, dtype=np.float64).T
        radius = np.sqrt(x**2 + y**2 + z**2)
        return np.degrees(np.arctan2(np.sqrt(x**2 + y**2), z)), np.degrees(np.arctan2(y, x)), radius

    polar_s, azimuth_s, radius_s = spherical(source_centers)
    polar_t, azimuth_t, radius_t = spherical(target_centers)
    return np.stack([polar_t - polar_s, (azimuth_t - azimuth_s) % 360.0, radius_t - radius_s], -1)
