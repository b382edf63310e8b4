"""Metrics against analytic answers."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from conftest import requires_3d

from p2g3d.metrics import chamfer_distance, evaluate, sample_surface, unit_box_transform, volume_iou


def box_surface_distance(points: np.ndarray, center, half: float) -> np.ndarray:
    """Exact distance from points to the surface of an axis-aligned cube (inside and outside)."""
    q = np.abs(points - np.asarray(center)) - half
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    inside = np.minimum(q.max(1), 0.0)
    return np.where(q.max(1) > 0, outside, -inside)


@requires_3d
def test_concentric_spheres():
    inner = trimesh.creation.icosphere(subdivisions=6, radius=0.5)
    outer = trimesh.creation.icosphere(subdivisions=6, radius=0.6)
    result = evaluate(inner, outer, "raw", taus=(0.05, 0.15), volume_resolution=96)
    assert result["protocol"] == "raw"
    assert result["chamfer"] == pytest.approx(0.1, abs=0.003)
    assert result["f_score@0.05"] == 0.0 and result["f_score@0.15"] == 1.0
    assert result["volume_iou"] == pytest.approx((0.5 / 0.6) ** 3, abs=0.01)
    assert result["normal_consistency"] > 0.99


@requires_3d
def test_cube_against_itself_is_perfect():
    cube = trimesh.creation.box((1.0, 1.0, 1.0))
    for protocol in ("raw", "syncdreamer", "triposr"):
        result = evaluate(cube, cube.copy(), protocol)
        assert result["chamfer"] == pytest.approx(0.0, abs=1e-9 if protocol != "triposr" else 1e-6)
        assert result["volume_iou"] == pytest.approx(1.0) and result["normal_consistency"] == pytest.approx(1.0)
        assert all(result[f"f_score@{tau:g}"] == 1.0 for tau in (0.05, 0.1, 0.2))


@requires_3d
@pytest.mark.parametrize("shift", [0.05, 0.2])
def test_cube_against_a_shifted_copy(shift):
    cube = trimesh.creation.box((1.0, 1.0, 1.0))
    moved = cube.copy()
    moved.apply_translation((shift, 0.0, 0.0))
    result = evaluate(moved, cube, "raw", num_points=40000, volume_resolution=128)
    assert result["volume_iou"] == pytest.approx((1 - shift) / (1 + shift), abs=0.02)  # grid quantisation
    # Chamfer against the exact point-to-surface distances of the same samples; sampled nearest neighbours
    # overestimate small distances by a fraction of the point spacing (~0.01 at 40k points).
    pred_points, _ = sample_surface(moved, 40000, 0)
    gt_points, _ = sample_surface(cube, 40000, 0)
    exact = (
        box_surface_distance(pred_points, (0, 0, 0), 0.5).mean()
        + box_surface_distance(gt_points, (shift, 0, 0), 0.5).mean()
    ) / 2
    assert exact <= result["chamfer"] <= exact + 0.006
    # The syncdreamer protocol normalises with the GROUND TRUTH's box: a unit cube stays put, so nothing changes.
    assert evaluate(moved, cube, "syncdreamer", num_points=40000)["chamfer"] == pytest.approx(
        result["chamfer"], abs=1e-9
    )


@requires_3d
def test_chamfer_equals_a_brute_force_nearest_neighbour_search():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(1500, 3)), rng.normal(size=(1200, 3)) + 0.3
    distances = np.linalg.norm(a[:, None] - b[None], axis=2)
    naive = (distances.min(1).mean() + distances.min(0).mean()) / 2
    assert chamfer_distance(a, b) == pytest.approx(naive, rel=1e-9)


@requires_3d
def test_syncdreamer_normalisation_scales_both_by_the_ground_truth():
    small = trimesh.creation.icosphere(subdivisions=5, radius=0.25)
    big = small.copy()
    big.apply_scale(2.0)
    raw = evaluate(small, big, "raw", taus=(0.1,))
    normalised = evaluate(small, big, "syncdreamer", taus=(0.1,))
    assert raw["chamfer"] == pytest.approx(0.25, abs=0.01)
    assert normalised["chamfer"] == pytest.approx(0.25, abs=0.01)  # GT diameter 1 already: same scale
    transform = unit_box_transform(small)
    assert transform[0, 0] == pytest.approx(2.0, rel=1e-2)


@requires_3d
def test_triposr_recovers_a_known_rotation():
    body = trimesh.creation.box((1.0, 0.5, 0.3))
    post = trimesh.creation.box((0.2, 0.2, 0.6), transform=trimesh.transformations.translation_matrix((0.4, 0.15, 0.4)))
    gt = (
        trimesh.boolean.union([body, post])
        if trimesh.boolean.engines_available
        else trimesh.util.concatenate([body, post])
    )
    rotation = trimesh.transformations.rotation_matrix(
        np.radians(90), (0, 0, 1)
    ) @ trimesh.transformations.rotation_matrix(np.radians(15), (1, 0, 0))
    rotation[:3, 3] = (0.3, -0.2, 0.1)
    pred = gt.copy()
    pred.apply_transform(rotation)
    assert evaluate(pred, gt, "raw")["chamfer"] > 0.1
    result = evaluate(pred, gt, "triposr")
    assert result["chamfer"] < 0.01
    aligned = trimesh.transform_points(pred.vertices, np.array(result["alignment"]))
    expected = trimesh.transform_points(gt.vertices, unit_box_transform(gt))
    assert np.abs(aligned - expected).max() < 0.03


@requires_3d
def test_deterministic_and_validated():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    other = sphere.copy()
    other.apply_translation((0.1, 0, 0))
    assert evaluate(other, sphere, seed=3) == evaluate(other, sphere, seed=3)
    with pytest.raises(ValueError, match="protocol"):
        evaluate(other, sphere, "icp")
    with pytest.raises(FileNotFoundError):
        evaluate("missing.ply", sphere)
    assert chamfer_distance(np.zeros((1, 3)), np.ones((1, 3))) == pytest.approx(np.sqrt(3))
    assert volume_iou(sphere, sphere, 32) == pytest.approx(1.0)


@requires_3d
def test_accepts_open3d_meshes_and_files(tmp_path):
    import open3d as o3d

    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=0.5, resolution=30)
    path = tmp_path / "sphere.ply"
    trimesh.creation.icosphere(subdivisions=4, radius=0.5).export(path)
    result = evaluate(sphere, path, "raw")
    assert result["chamfer"] < 0.01 and result["volume_iou"] > 0.95


@requires_3d
def test_volume_iou_is_undefined_for_open_meshes():
    plane = trimesh.Trimesh([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], [[0, 1, 2], [0, 2, 3]])
    result = evaluate(plane, trimesh.creation.box((1, 1, 1)), "raw", num_points=2000)
    assert result["volume_iou"] is None and result["chamfer"] > 0
