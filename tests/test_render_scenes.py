"""CPU renderer, synthetic scenes and visual-hull carving."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from conftest import requires_3d

from p2g3d.cameras import intrinsics_from_fov, orbit_camera
from p2g3d.integrations.base import load_views, save_views
from p2g3d.integrations.carving import VisualHullReconstructor
from p2g3d.metrics import evaluate
from p2g3d.render import pixel_rays, render
from p2g3d.scenes import TARGET_KINDS, make_scene, make_target
from p2g3d.types import MaskedView

W, H = 96, 72
K = intrinsics_from_fov(40.0, W, H)


@pytest.fixture(scope="module")
def scene():
    return make_scene(2, num_views=6, image_size=96)


@requires_3d
def test_sphere_depth_matches_ray_intersection():
    radius = 0.5
    sphere = trimesh.creation.icosphere(subdivisions=6, radius=radius)
    camera = orbit_camera(20.0, 30.0, 3.0, K, W, H)
    view = render([sphere], camera)
    rays = pixel_rays(camera).reshape(-1, 6).astype(np.float64)
    origins, directions = rays[:, :3], rays[:, 3:]
    a = (directions**2).sum(1)
    b = 2 * (origins * directions).sum(1)
    c = (origins**2).sum(1) - radius**2
    disc = b**2 - 4 * a * c
    hit = disc > 0
    t = np.where(hit, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf).reshape(H, W)
    both = np.isfinite(t) & np.isfinite(view.depth)
    assert abs(int(hit.sum()) - int(view.mask(0).sum())) <= 0.02 * hit.sum()  # tessellation at the rim
    np.testing.assert_allclose(view.depth[both], t[both], atol=2e-3)  # directions have z = 1: t is the depth
    centre = view.normals[H // 2, W // 2]
    assert np.dot(centre, camera.center / np.linalg.norm(camera.center)) > 0.99


@requires_3d
def test_pixels_follow_the_camera_convention():
    dot = trimesh.creation.icosphere(subdivisions=3, radius=0.03)
    point = np.array([0.2, -0.1, 0.15])
    dot.apply_translation(point)
    camera = orbit_camera(10.0, -40.0, 2.5, K, W, H)
    view = render([dot], camera)
    rows, cols = np.nonzero(view.mask(0))
    uv, _ = camera.project(point[None])
    u, v = uv[0]
    assert abs((cols + 0.5).mean() - u) < 0.5 and abs((rows + 0.5).mean() - v) < 0.5


@requires_3d
def test_occlusion_colours_and_ids():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    sphere.visual.face_colors = (220, 20, 20, 255)
    box = trimesh.creation.box((0.4, 0.4, 0.4))
    box.apply_translation((1.0, 0.0, 0.0))  # between the sphere and a camera on +X
    camera = orbit_camera(0.0, 0.0, 3.0, K, W, H)
    view = render([sphere, box], camera)
    assert view.instance_ids[H // 2, W // 2] == 1 and view.mask(0).any()
    assert view.rgb[0, 0].tolist() == [255, 255, 255] and np.isinf(view.depth[0, 0]) and view.instance_ids[0, 0] == -1
    red = view.rgb[view.mask(0)]
    assert (red[:, 0] > 2 * red[:, 1]).all()
    with pytest.raises(ValueError, match="empty"):
        render([], camera)


@requires_3d
@pytest.mark.parametrize("kind", TARGET_KINDS)
def test_targets_are_watertight_unit_objects(kind):
    mesh = make_target(np.random.default_rng(0), kind)
    assert mesh.is_watertight and mesh.extents.max() == pytest.approx(1.0)
    np.testing.assert_allclose(mesh.bounds.mean(0), 0.0, atol=1e-9)
    assert mesh.visual.kind == "vertex"


@requires_3d
def test_scene_views_and_determinism(scene):
    again = make_scene(2, num_views=6, image_size=96)
    np.testing.assert_array_equal(scene.views[3].image, again.views[3].image)
    occluded = scene.views[0]
    assert 0.2 <= occluded.occluded_fraction <= 0.6
    for view in scene.views:
        assert not (view.visible_mask & ~view.amodal_mask).any()  # visible is part of amodal
        assert not (view.visible_mask & view.occluder_mask).any()
        np.testing.assert_array_equal(view.foreground_mask, view.visible_mask | view.occluder_mask)
    assert scene.target.is_watertight
    other = make_scene(3, num_views=6, image_size=96)
    assert not np.array_equal(other.views[0].image, scene.views[0].image)
    with pytest.raises(ValueError, match="occlusion_range"):
        make_scene(1, occlusion_range=(0.6, 0.2))


@requires_3d
def test_cluttered_scenes_hide_the_target_in_several_views_on_textured_backgrounds():
    scene = make_scene(4, num_views=8, image_size=64, style="cluttered")
    assert scene.occluded_views == (0, 3, 5) and len(scene.occluders) == 3
    for index in scene.occluded_views:
        assert 0.2 <= scene.views[index].occluded_fraction <= 0.6
    for view in scene.views:
        assert not (view.visible_mask & ~view.amodal_mask).any() and not (view.visible_mask & view.occluder_mask).any()
        empty = ~view.amodal_mask & ~view.occluder_mask
        assert (view.image[empty] != 255).any(axis=-1).mean() > 0.5  # not a white background
        assert (view.whole_image[~view.amodal_mask] == 255).all()  # the whole object is still on white
    np.testing.assert_array_equal(
        make_scene(4, num_views=8, image_size=64, style="cluttered").views[5].image, scene.views[5].image
    )
    with pytest.raises(ValueError, match="style"):
        make_scene(4, style="busy")


@requires_3d
def test_carving_with_amodal_masks_beats_visible_masks(scene, tmp_path):
    carve = VisualHullReconstructor(resolution=64, bounds=((-1, -1, -1), (1, 1, 1)))
    results = {}
    for name in ("visible_mask", "amodal_mask"):
        views = [MaskedView(v.image, getattr(v, name), v.camera) for v in scene.views]
        mesh = carve.reconstruct(views)
        assert mesh.is_watertight and mesh.visual.kind == "vertex"
        results[name] = evaluate(mesh, scene.target, "syncdreamer", num_points=5000)
    assert results["amodal_mask"]["chamfer"] < results["visible_mask"]["chamfer"]
    assert results["amodal_mask"]["volume_iou"] > results["visible_mask"]["volume_iou"]
    # A visual hull contains the object: every ground-truth vertex is inside the amodal hull (up to a voxel).
    views = [MaskedView(v.image, v.amodal_mask, v.camera) for v in scene.views]
    save_views(views, tmp_path / "views")
    reloaded = load_views(tmp_path / "views")
    np.testing.assert_array_equal(carve.occupancy(reloaded), carve.occupancy(views))


@requires_3d
def test_carving_errors(scene):
    views = [MaskedView(v.image, v.amodal_mask, v.camera) for v in scene.views]
    with pytest.raises(ValueError, match="at least 2"):
        VisualHullReconstructor().reconstruct(views[:1])
    far = VisualHullReconstructor(bounds=((5, 5, 5), (6, 6, 6)))
    with pytest.raises(ValueError, match="carve the whole volume"):
        far.reconstruct(views)
    with pytest.raises(ValueError, match="bounds"):
        VisualHullReconstructor(bounds=((1, 1, 1), (0, 0, 0)))
    with pytest.raises(ValueError, match="same size"):
        MaskedView(views[0].image[:10], views[0].mask, views[0].camera)


@requires_3d
def test_carving_a_box_smaller_than_the_object_says_so(caplog):
    scene = make_scene(0, num_views=6, image_size=64)
    views = [MaskedView(view.image, view.amodal_mask, view.camera) for view in scene.views]
    with caplog.at_level("WARNING"):
        VisualHullReconstructor(resolution=16, bounds=((-0.2,) * 3, (0.2,) * 3), color=False).reconstruct(views)
    assert "touches the walls of the box" in caplog.text
    with pytest.raises(ValueError, match="resolution must be"):
        VisualHullReconstructor(resolution=1000)
