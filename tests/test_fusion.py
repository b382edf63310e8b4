"""Multi-view consistent completion: silhouette evidence, fusion in 3D, consistent masks, captures in and out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from conftest import requires_3d

from p2g3d.cameras import intrinsics_from_fov, orbit_cameras, to_opengl
from p2g3d.fusion import MultiViewCompleter, SilhouetteFusion, VoxelGrid, fuse_views, silhouette_probability
from p2g3d.masks import mask_iou
from p2g3d.types import MaskedView

RADIUS = 0.4


def sphere_views(count: int = 8, size: int = 64) -> list[MaskedView]:
    """A ring of views of the sphere of radius :data:`RADIUS` at the origin, masks rendered exactly."""
    from p2g3d.render import render

    sphere = trimesh.creation.icosphere(4, RADIUS)
    cameras = orbit_cameras(count, 20.0, 2.5, intrinsics_from_fov(40.0, size, size), size, size)
    views = []
    for camera in cameras:
        rendered = render([sphere], camera)
        views.append(MaskedView(rendered.rgb, rendered.mask(0), camera))
    return views


def occupied_volume(field: np.ndarray, grid: VoxelGrid) -> float:
    return float((field > 0).sum()) * float(np.prod((np.array(grid.high) - np.array(grid.low)) / grid.resolution))


def test_silhouette_probability_takes_hard_evidence_first():
    visible = np.zeros((4, 5), bool)
    visible[1, 1] = True
    samples = np.zeros((4, 4, 5), bool)
    samples[:3, 2, 2] = True  # 3 of 4 samples cover (2, 2)
    samples[:, 1, 1] = False  # no sample covers a visible pixel: visible wins
    samples[0, 3, 4] = True  # one sample covers (3, 4)
    share = silhouette_probability(visible, samples, evidence="share")
    assert share.dtype == np.float32 and share.shape == (4, 5)
    assert share[1, 1] == 1.0 and share[2, 2] == 0.75 and share[3, 4] == 0.25
    vote = silhouette_probability(visible, samples)  # the majority vote, as the completer's amodal mask
    assert vote[1, 1] == 1.0 and vote[2, 2] == 1.0 and vote[3, 4] == 0.0 and set(np.unique(vote)) == {0.0, 1.0}
    occluder = np.zeros((4, 5), bool)
    occluder[2, 2] = True
    known = silhouette_probability(visible, samples, occluder, evidence="share")
    assert known[2, 2] == 0.75 and known[3, 4] == 0.0 and known[1, 1] == 1.0  # background outside the occluder
    with pytest.raises(ValueError, match="evidence"):
        silhouette_probability(visible, samples, evidence="mean")
    np.testing.assert_array_equal(silhouette_probability(visible), visible.astype(np.float32))
    with pytest.raises(ValueError, match="sample_masks must be"):
        silhouette_probability(visible, samples[:, :3])
    with pytest.raises(ValueError, match="occluder_mask must be"):
        silhouette_probability(visible, samples, occluder[:3])


def test_settings_are_checked():
    with pytest.raises(ValueError, match="method"):
        SilhouetteFusion(method="mean")
    with pytest.raises(ValueError, match="detection"):
        SilhouetteFusion(detection=0.4, false_alarm=0.5)  # a silhouette must say more about occupied voxels
    with pytest.raises(ValueError, match="resolution"):
        VoxelGrid(resolution=4)
    with pytest.raises(ValueError, match="box"):
        VoxelGrid(32, (0, 0, 0), (1, -1, 1))
    with pytest.raises(ValueError, match="half_side"):
        VoxelGrid.cube(0.0)
    assert VoxelGrid.cube(0.5, 16).centres().shape == (16**3, 3)


@requires_3d
def test_log_odds_outvotes_one_wrong_view_where_intersection_cuts():
    """A sphere seen by 8 views: one view's silhouette loses its left half (an under-completion). The visual hull
    of the per-view masks loses what that view misses; the log-odds fusion keeps it, as the other 7 views hold it,
    and two views that both leave a region out still carve it."""
    views = sphere_views()
    grid = VoxelGrid.cube(0.6, 48)
    true_volume = 4 / 3 * np.pi * RADIUS**3
    correct = [view.mask.astype(np.float32) for view in views]
    cut = [p.copy() for p in correct]
    cut[0][:, : cut[0].shape[1] // 2] = 0.0
    hull = SilhouetteFusion(method="intersection", smoothing=0)
    log_odds = SilhouetteFusion(smoothing=0)
    cameras = [view.camera for view in views]
    assert occupied_volume(hull.field(correct, cameras, grid), grid) == pytest.approx(true_volume, rel=0.25)
    assert occupied_volume(hull.field(cut, cameras, grid), grid) < 0.7 * true_volume
    kept = occupied_volume(log_odds.field(cut, cameras, grid), grid)
    assert kept == pytest.approx(occupied_volume(log_odds.field(correct, cameras, grid), grid), rel=0.05)
    two_cut = [p.copy() for p in cut]
    two_cut[1][:, : two_cut[1].shape[1] // 2] = 0.0  # the next view (45 degrees on) misses most of the same half
    assert occupied_volume(log_odds.field(two_cut, cameras, grid), grid) < 0.8 * kept
    k_of_n = SilhouetteFusion(method="k-of-n", smoothing=0)
    assert occupied_volume(k_of_n.field(cut, cameras, grid), grid) == pytest.approx(kept, rel=0.1)


@requires_3d
def test_fused_mesh_and_consistent_masks_agree_with_the_true_silhouettes():
    views = sphere_views()
    probabilities = [view.mask.astype(np.float32) for view in views]
    probabilities[2][:, :20] = 0.0  # one wrong view
    field, mesh, masks = fuse_views(views, probabilities, VoxelGrid.cube(0.6, 48), SilhouetteFusion())
    assert field.shape == (48, 48, 48) and mesh.is_watertight
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * RADIUS**3, rel=0.25)
    assert masks.shape == (8, 64, 64) and masks.dtype == bool
    assert all((mask >= view.mask).all() for mask, view in zip(masks, views))  # visible pixels stay
    assert min(mask_iou(mask, view.mask) for mask, view in zip(masks, views)) > 0.85
    with pytest.raises(ValueError, match="share no voxel"):
        fuse_views(views, [np.zeros((64, 64), np.float32)] * 8, VoxelGrid.cube(0.6, 16), SilhouetteFusion())


class MissingRightHalf:
    """A completer stand-in whose samples are the true silhouettes, except in the views ``wrong``: there they
    miss the right half (the hidden part stays uncompleted)."""

    def __init__(self, views, wrong: tuple[int, ...]):
        self.truth = [view.mask for view in views]
        self.wrong, self.calls = wrong, []

    def __call__(self, image, visible, *, seed, item, show_progress=True):
        from p2g3d.types import AmodalObject

        index = len(self.calls)
        self.calls.append((seed, item))
        mask = self.truth[index].copy()
        if index in self.wrong:
            mask[:, mask.shape[1] // 2 :] = False
        samples = np.stack([mask] * 3)
        empty = np.zeros_like(visible)
        rgb = np.zeros((*visible.shape, 3), np.uint8)
        return [
            AmodalObject(
                0,
                rgb,
                np.zeros((*visible.shape, 4), np.uint8),
                mask | visible,
                visible,
                empty,
                np.stack([rgb] * 3),
                samples,
                1.0,
                0,
            )
        ]


@requires_3d
def test_the_stage_completes_each_view_once_and_its_masks_beat_the_per_view_completions():
    views = sphere_views()
    visible = []
    for view in views:  # the right third of every silhouette (columns 18 to 46) is hidden
        mask = view.mask.copy()
        mask[:, 37:] = False
        visible.append(MaskedView(view.image, mask, view.camera))
    completer = MissingRightHalf(views, wrong=(2, 6))  # opposite views: no voxel missed twice
    result = MultiViewCompleter(completer, VoxelGrid.cube(0.6, 48))(visible, seed=5, show_progress=False)
    assert completer.calls == [(5, f"view_{index:03d}") for index in range(8)]
    per_view = np.mean([mask_iou(c.amodal_mask, v.mask) for c, v in zip(result.completions, views)])
    consistent = np.mean([mask_iou(m, v.mask) for m, v in zip(result.masks, views)])
    assert consistent > per_view and consistent > 0.9
    assert result.occupancy.shape == (48, 48, 48) and set(result.seconds) == {"completion", "fusion"}
    assert all((v.mask == m).all() for v, m in zip(result.consistent_views(visible), result.masks, strict=True))
    with pytest.raises(ValueError, match="at least 2 views"):
        MultiViewCompleter(completer)(visible[:1])
    empty = MaskedView(views[0].image, np.zeros_like(views[0].mask), views[0].camera)
    with pytest.raises(ValueError, match="empty visible mask"):
        MultiViewCompleter(completer)([empty, *visible[1:]])
    with pytest.raises(ValueError, match="item ids"):
        MultiViewCompleter(completer)(visible, items=["a"])


@requires_3d
def test_a_capture_round_trips_as_views_folder_and_nerfstudio_capture(tmp_path):
    from p2g3d.integrations.captures import load_capture, load_nerfstudio_capture, save_capture

    views = sphere_views(4, 48)
    save_capture(views, tmp_path / "capture")
    for loaded in (load_capture(tmp_path / "capture"), load_nerfstudio_capture(tmp_path / "capture")):
        for view, back in zip(views, loaded, strict=True):
            np.testing.assert_allclose(back.camera.K, view.camera.K, rtol=0, atol=1e-12)
            np.testing.assert_allclose(back.camera.world_to_camera, view.camera.world_to_camera, rtol=0, atol=1e-12)
            np.testing.assert_array_equal(back.mask, view.mask)
            np.testing.assert_array_equal(back.image, view.image)
    meta = json.loads((tmp_path / "capture" / "transforms.json").read_text())
    assert [frame["mask_path"] for frame in meta["frames"]] == [f"view_{i:03d}_mask.png" for i in range(4)]
    np.testing.assert_allclose(meta["frames"][1]["transform_matrix"], to_opengl(views[1].camera))


def nerfstudio_meta(views, **top) -> dict:
    """A capture in the usual nerfstudio layout: shared intrinsics at the top level, 3x4 poses, images/ + masks/."""
    camera = views[0].camera
    frames = [
        {
            "file_path": f"images/{i}.png",
            "mask_path": f"masks/{i}.png",
            "transform_matrix": to_opengl(v.camera)[:3].tolist(),
        }
        for i, v in enumerate(views)
    ]
    intrinsics = {"fl_x": camera.K[0, 0], "fl_y": camera.K[1, 1], "cx": camera.K[0, 2], "cy": camera.K[1, 2]}
    return {"camera_model": "OPENCV", **intrinsics, "w": camera.width, "h": camera.height, **top, "frames": frames}


@requires_3d
def test_nerfstudio_captures_in_the_usual_layout_and_their_errors(tmp_path):
    from p2g3d.integrations.captures import load_capture
    from p2g3d.io import save_png

    views = sphere_views(3, 32)
    for index, view in enumerate(views):
        save_png(tmp_path / "images" / f"{index}.png", view.image)
        save_png(tmp_path / "masks" / f"{index}.png", view.mask)
    index_file = tmp_path / "transforms.json"
    index_file.write_text(json.dumps(nerfstudio_meta(views)))
    for view, back in zip(views, load_capture(tmp_path), strict=True):
        np.testing.assert_allclose(back.camera.world_to_camera, view.camera.world_to_camera, atol=1e-12)
    cases = {
        "distortion": (nerfstudio_meta(views, k1=0.1), "undistort"),
        "fisheye": (nerfstudio_meta(views, camera_model="OPENCV_FISHEYE"), "camera_model"),
        "no mask": ({**nerfstudio_meta(views), "frames": [{"file_path": "images/0.png"}]}, "mask_path"),
        "wrong size": (nerfstudio_meta(views, w=64), "must match"),
        "no intrinsics": ({"frames": nerfstudio_meta(views)["frames"]}, "lacks fl_x"),
        "no frames": ({"frames": []}, "non-empty 'frames'"),
    }
    for meta, message in cases.values():
        index_file.write_text(json.dumps(meta))
        with pytest.raises(ValueError, match=message):
            load_capture(tmp_path)
    index_file.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_capture(tmp_path)
    with pytest.raises(FileNotFoundError, match="transforms.json"):
        load_capture(tmp_path / "images")


@requires_3d
def test_reconstruct_complete_writes_the_mesh_and_the_consistent_masks(tiny_model_dir, tmp_path, capsys):
    from p2g3d.cli import main
    from p2g3d.integrations.captures import load_capture, load_nerfstudio_capture, save_capture
    from p2g3d.scenes import make_scene

    scene = make_scene(3, num_views=4, image_size=48, style="cluttered", occluded_views=(0, 1))
    save_capture([MaskedView(v.image, v.visible_mask, v.camera) for v in scene.views], tmp_path / "views")
    argv = [
        "reconstruct",
        str(tmp_path / "views"),
        "--complete",
        "--samples",
        "2",
        "--steps",
        "2",
        "--resolution",
        "32",
        "--bound",
        "0.8",
        "-o",
        str(tmp_path / "mesh.glb"),
    ]
    assert main([*argv, "--model", str(tiny_model_dir), "--masks-out", str(tmp_path / "masks")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["views"] == 4 and set(summary["seconds"]) == {"completion", "fusion"}
    assert trimesh.load(tmp_path / "mesh.glb", force="mesh").is_watertight
    consistent = load_capture(tmp_path / "masks")
    assert len(consistent) == 4 and all((c.mask >= v.visible_mask).all() for c, v in zip(consistent, scene.views))
    via_nerfstudio = load_nerfstudio_capture(tmp_path / "masks")
    assert all((a.mask == b.mask).all() for a, b in zip(consistent, via_nerfstudio))
    assert main(["reconstruct", str(tmp_path / "views"), "-o", str(tmp_path / "m.glb"), "--masks-out", "x"]) == 2
    assert "add --complete" in capsys.readouterr().err
