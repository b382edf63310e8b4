"""The project camera convention, pinned: known points land on known pixels in every convention."""

from __future__ import annotations

import math

import numpy as np
import pytest

from p2g3d.cameras import (
    Camera,
    camera_from_zero123,
    from_opencv,
    from_opengl,
    from_pytorch3d,
    intrinsics_from_fov,
    look_at,
    orbit_camera,
    orbit_cameras,
    position_to_spherical,
    to_nerfstudio_frame,
    to_opencv,
    to_opengl,
    to_pytorch3d,
    zero123_relative_pose,
)

W, H = 100, 80
K = intrinsics_from_fov(90.0, W, H)  # fx = fy = 50, principal point (50, 40)


@pytest.fixture()
def camera_on_x():
    """At (2, 0, 0) looking at the origin, world +Z up: world +Y is image right, world +Z is image up."""
    return orbit_camera(0.0, 0.0, 2.0, K, W, H)


# World points and where they must land (corner-origin pixels): centre, 0.5 to the right (+Y), 0.5 up (+Z).
POINTS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5]])
PIXELS = np.array([[50.0, 40.0], [62.5, 40.0], [50.0, 27.5]])


def test_project_convention(camera_on_x):
    uv, depth = camera_on_x.project(POINTS)
    np.testing.assert_allclose(uv, PIXELS, atol=1e-12)
    np.testing.assert_allclose(depth, [2.0, 2.0, 2.0])
    np.testing.assert_allclose(camera_on_x.center, [2.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(camera_on_x.world_to_camera, look_at([2.0, 0.0, 0.0]), atol=1e-12)
    assert math.isclose(K[0, 0], 50.0) and tuple(K[:2, 2]) == (50.0, 40.0)


def test_opencv(camera_on_x):
    K_cv, R, t = to_opencv(camera_on_x)
    camera_points = POINTS @ R.T + t
    uv = (camera_points @ K_cv.T)[:, :2] / camera_points[:, 2:]
    np.testing.assert_allclose(uv, PIXELS - 0.5, atol=1e-12)  # OpenCV: pixel centres at integers
    back = from_opencv(K_cv, R, t, W, H)
    np.testing.assert_allclose(back.K, camera_on_x.K)
    np.testing.assert_allclose(back.world_to_camera, camera_on_x.world_to_camera)


def test_opengl_and_nerfstudio(camera_on_x):
    c2w = to_opengl(camera_on_x)
    np.testing.assert_allclose(c2w[:3, 3], [2.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(c2w[:3, 2], [1.0, 0.0, 0.0], atol=1e-12)  # camera +Z points backward (away)
    np.testing.assert_allclose(c2w[:3, 1], [0.0, 0.0, 1.0], atol=1e-12)  # camera +Y is world up
    w2c = np.linalg.inv(c2w)
    gl_points = POINTS @ w2c[:3, :3].T + w2c[:3, 3]
    u = K[0, 2] + K[0, 0] * gl_points[:, 0] / -gl_points[:, 2]
    v = K[1, 2] - K[1, 1] * gl_points[:, 1] / -gl_points[:, 2]
    np.testing.assert_allclose(np.stack([u, v], 1), PIXELS, atol=1e-12)
    back = from_opengl(c2w, K, W, H)
    np.testing.assert_allclose(back.world_to_camera, camera_on_x.world_to_camera, atol=1e-12)
    frame = to_nerfstudio_frame(camera_on_x, "images/0.png")
    assert frame["cx"] == 50.0 and frame["w"] == W and np.allclose(frame["transform_matrix"], c2w)


def _pytorch3d_pixels(params: dict, points: np.ndarray) -> np.ndarray:
    """pytorch3d's documented projection: row-vector view transform, NDC (+X left, +Y up), NDC -> screen."""
    view = points @ params["R"][0] + params["T"][0]
    ndc = params["focal_length"][0] * view[:, :2] / view[:, 2:] + params["principal_point"][0]
    height, width = params["image_size"][0]
    scale = min(width, height) / 2.0
    return np.stack([width / 2.0 - ndc[:, 0] * scale, height / 2.0 - ndc[:, 1] * scale], 1)


def test_pytorch3d(camera_on_x):
    params = to_pytorch3d(camera_on_x)
    np.testing.assert_allclose(_pytorch3d_pixels(params, POINTS), PIXELS, atol=1e-12)
    view = POINTS @ params["R"][0] + params["T"][0]
    assert view[1, 0] < 0 and view[2, 1] > 0  # world right -> pytorch3d -X (left is +X); world up -> +Y
    back = from_pytorch3d(params["R"], params["T"], params["focal_length"], params["principal_point"], W, H)
    np.testing.assert_allclose(back.K, camera_on_x.K, atol=1e-12)
    np.testing.assert_allclose(back.world_to_camera, camera_on_x.world_to_camera, atol=1e-12)


def test_pytorch3d_library_agrees(camera_on_x):
    import torch
    from conftest import require_extra

    utils = require_extra("pytorch3d.utils", "pytorch3d not installed (optional extra)")
    K_cv, R, t = camera_on_x.K, camera_on_x.R, camera_on_x.t  # pytorch3d treats K's principal point as corner-origin
    cameras = utils.cameras_from_opencv_projection(
        torch.tensor(R[None]).float(),
        torch.tensor(t[None]).float(),
        torch.tensor(K_cv[None]).float(),
        torch.tensor([[H, W]]),
    )
    ours = to_pytorch3d(camera_on_x)
    np.testing.assert_allclose(cameras.R.numpy(), ours["R"], atol=1e-6)
    np.testing.assert_allclose(cameras.T.numpy(), ours["T"], atol=1e-6)
    screen = cameras.transform_points_screen(torch.tensor(POINTS).float())[..., :2].numpy().reshape(-1, 2)
    np.testing.assert_allclose(screen, PIXELS, atol=1e-4)


def test_orbit_and_spherical_round_trip():
    for elevation, azimuth in [(0.0, 0.0), (30.0, 45.0), (-20.0, -135.0), (89.0, 170.0), (90.0, 10.0)]:
        camera = orbit_camera(elevation, azimuth, 1.5, K, W, H)
        el, az, radius = position_to_spherical(camera.center)
        assert math.isclose(el, elevation, abs_tol=1e-9) and math.isclose(radius, 1.5)
        if abs(elevation) < 90:
            assert math.isclose((az - azimuth + 180) % 360 - 180, 0.0, abs_tol=1e-9)
        uv, depth = camera.project(np.zeros((1, 3)))
        np.testing.assert_allclose(uv, [[50.0, 40.0]], atol=1e-9)  # the origin is always in the image centre
        up_uv, _ = camera.project(np.array([[0.0, 0.0, 0.1]]))
        if abs(elevation) < 89.5:
            assert up_uv[0, 1] < 40.0  # world up is image up
    ring = orbit_cameras(4, 30.0, 2.0, K, W, H)
    azimuths = [position_to_spherical(c.center)[1] for c in ring]
    np.testing.assert_allclose(azimuths, [0.0, 90.0, 180.0, -90.0], atol=1e-9)


def _official_get_T(target_w2c: np.ndarray, cond_w2c: np.ndarray) -> np.ndarray:
    """Zero-1-to-3's training-time pose (``ldm/data/simple.py`` ``get_T``), on 3x4 world-to-camera matrices."""

    def spherical(xyz):
        xy = xyz[0] ** 2 + xyz[1] ** 2
        return np.arctan2(np.sqrt(xy), xyz[2]), np.arctan2(xyz[1], xyz[0]), np.sqrt(xy + xyz[2] ** 2)

    theta_t, az_t, z_t = spherical(-target_w2c[:3, :3].T @ target_w2c[:3, 3])
    theta_c, az_c, z_c = spherical(-cond_w2c[:3, :3].T @ cond_w2c[:3, 3])
    d_az = (az_t - az_c) % (2 * math.pi)
    return np.array([theta_t - theta_c, math.sin(d_az), math.cos(d_az), z_t - z_c])


@pytest.mark.parametrize(
    "source, target",
    [
        ((0.0, 0.0, 1.5), (0.0, 90.0, 1.5)),
        ((30.0, 10.0, 1.5), (0.0, -50.0, 2.0)),
        ((10.0, 170.0, 1.8), (40.0, -170.0, 1.6)),
    ],
)
def test_zero123_relative_pose_matches_training_definition(source, target):
    source_camera, target_camera = orbit_camera(*source, K, W, H), orbit_camera(*target, K, W, H)
    polar, azimuth, radius = zero123_relative_pose(source_camera, target_camera)
    T = np.array([math.radians(polar), math.sin(math.radians(azimuth)), math.cos(math.radians(azimuth)), radius])
    np.testing.assert_allclose(
        T, _official_get_T(target_camera.world_to_camera, source_camera.world_to_camera), atol=1e-12
    )
    # The OpenGL axes that the official Blender renders used give the same pose: only the centres matter.
    gl_w2c = lambda c: np.linalg.inv(to_opengl(c))  # noqa: E731
    np.testing.assert_allclose(T, _official_get_T(gl_w2c(target_camera), gl_w2c(source_camera)), atol=1e-12)
    back = camera_from_zero123(polar, azimuth, radius, source_camera)
    np.testing.assert_allclose(back.world_to_camera, target_camera.world_to_camera, atol=1e-9)


def test_zero123_signs():
    source = orbit_camera(0.0, 0.0, 1.5, K, W, H)
    # Counter-clockwise seen from above (+90 degrees of atan2) is delta azimuth +90: sin(T) = +1.
    polar, azimuth, radius = zero123_relative_pose(source, orbit_camera(0.0, 90.0, 1.5, K, W, H))
    assert math.isclose(azimuth, 90.0) and polar == 0.0 and radius == 0.0
    # Moving the camera UP by 30 degrees is a NEGATIVE delta polar.
    assert math.isclose(zero123_relative_pose(source, orbit_camera(30.0, 0.0, 1.5, K, W, H))[0], -30.0)


def test_nerf_pose_spherical_turns_the_other_way():
    """The classic NeRF ``pose_spherical(theta, phi, r)``: its theta turns clockwise seen from +Z."""

    def pose_spherical(theta, phi, radius):
        trans = np.eye(4)
        trans[2, 3] = radius
        p, t = math.radians(phi), math.radians(theta)
        rot_phi = np.array(
            [[1, 0, 0, 0], [0, math.cos(p), -math.sin(p), 0], [0, math.sin(p), math.cos(p), 0], [0, 0, 0, 1]]
        )
        rot_theta = np.array(
            [[math.cos(t), 0, -math.sin(t), 0], [0, 1, 0, 0], [math.sin(t), 0, math.cos(t), 0], [0, 0, 0, 1]]
        )
        swap = np.array([[-1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
        return swap @ rot_theta @ rot_phi @ trans

    nerf_c2w = [pose_spherical(theta, -30.0, 4.0) for theta in (0.0, 30.0)]
    cameras = [from_opengl(c2w, K, W, H) for c2w in nerf_c2w]
    assert math.isclose(position_to_spherical(cameras[0].center)[0], 30.0)
    assert math.isclose(zero123_relative_pose(cameras[0], cameras[1])[1], 330.0)  # +30 theta = -30 azimuth


def test_invalid_cameras():
    with pytest.raises(ValueError, match="rotation"):
        Camera(K, np.diag([1.0, 1.0, -1.0, 1.0]), W, H)
    with pytest.raises(ValueError, match="shape"):
        Camera(np.eye(2), np.eye(4), W, H)
    with pytest.raises(ValueError, match="fov"):
        intrinsics_from_fov(180.0, W, H)
    with pytest.raises(ValueError, match="parallel"):
        look_at([0, 0, 2])
    camera = orbit_camera(10.0, 20.0, 1.0, K, W, H)
    restored = Camera.from_dict(camera.to_dict())
    np.testing.assert_array_equal(restored.world_to_camera, camera.world_to_camera)
    np.testing.assert_array_equal(restored.K, camera.K)
    assert (restored.width, restored.height) == (W, H)
