"""Optional backends: pytorch3d silhouette fitting and the nerfstudio dataset.

Both run in CI's extras environment (P2G3D_REQUIRE_EXTRAS=1: torch 2.12.0 + easypytorch3d + nerfstudio), and skip
elsewhere.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import require_extra, requires_3d

from p2g3d.cameras import to_opengl
from p2g3d.integrations.nerfstudio import NerfstudioReconstructor, write_nerfstudio_dataset
from p2g3d.render import render
from p2g3d.scenes import make_scene
from p2g3d.types import MaskedView


@pytest.fixture(scope="module")
def scene():
    return make_scene(5, num_views=6, image_size=64)


@pytest.fixture(scope="module")
def small_views():
    """48-pixel views: pytorch3d's CPU rasteriser takes about a second per step for six of them."""
    return [MaskedView(v.image, v.amodal_mask, v.camera) for v in make_scene(5, num_views=6, image_size=48).views]


@pytest.fixture(scope="module")
def amodal_views(scene):
    return [MaskedView(v.image, v.amodal_mask, v.camera) for v in scene.views]


def silhouette_iou(mesh, views) -> float:
    scores = []
    for view in views:
        rendered = render([mesh], view.camera).mask(0)
        scores.append((rendered & view.mask).sum() / (rendered | view.mask).sum())
    return float(np.mean(scores))


@requires_3d
def test_pytorch3d_fit_pulls_a_sphere_onto_the_silhouettes(small_views):
    require_extra("pytorch3d.renderer", "pytorch3d not installed (optional extra)")
    import trimesh

    from p2g3d.integrations.pytorch3d_fit import SilhouetteFitReconstructor

    backend = SilhouetteFitReconstructor(iterations=40, init="sphere", learning_rate=1.0)
    mesh = backend.reconstruct(small_views)
    assert backend.losses[-1] < 0.5 * backend.losses[0]
    start = silhouette_iou(trimesh.creation.icosphere(3, 0.5), small_views)
    assert start < 0.6 and silhouette_iou(mesh, small_views) > 0.75 and mesh.visual.kind == "vertex"


@requires_3d
def test_nerfstudio_dataset_follows_the_schema(amodal_views, tmp_path):
    path = write_nerfstudio_dataset(amodal_views, tmp_path / "dataset")
    meta = json.loads(path.read_text())
    assert meta["camera_model"] == "OPENCV" and len(meta["frames"]) == len(amodal_views)
    for frame, view in zip(meta["frames"], amodal_views):
        for key in ("file_path", "mask_path", "transform_matrix", "fl_x", "fl_y", "cx", "cy", "w", "h"):
            assert key in frame
        assert (path.parent / frame["file_path"]).is_file() and (path.parent / frame["mask_path"]).is_file()
        np.testing.assert_allclose(frame["transform_matrix"], to_opengl(view.camera))
    command = NerfstudioReconstructor(iterations=10, device="cpu").commands(tmp_path / "dataset", tmp_path / "runs")
    assert command[:2] == ["ns-train", "nerfacto"] and "--orientation-method" in command


@requires_3d
def test_nerfstudio_parser_reads_our_cameras(amodal_views, tmp_path):
    """nerfstudio's own data parser and ray generation agree with the p2g3d cameras pixel for pixel."""
    require_extra("nerfstudio", "nerfstudio not installed (optional extra)")
    import torch
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    write_nerfstudio_dataset(amodal_views, tmp_path / "dataset")
    config = NerfstudioDataParserConfig(
        data=tmp_path / "dataset",
        orientation_method="none",
        center_method="none",
        auto_scale_poses=False,
        eval_mode="all",
    )
    outputs = config.setup().get_dataparser_outputs(split="train")
    cameras = outputs.cameras
    assert len(outputs.image_filenames) == len(amodal_views) and outputs.mask_filenames is not None
    point = np.array([0.1, -0.2, 0.15])
    for index, view in enumerate(amodal_views):
        np.testing.assert_allclose(cameras.camera_to_worlds[index].numpy(), to_opengl(view.camera)[:3], atol=1e-5)
        uv, _ = view.camera.project(point[None])
        u, v = uv[0]
        rays = cameras.generate_rays(camera_indices=index, coords=torch.tensor([[v, u]], dtype=torch.float32))
        origin, direction = rays.origins[0].numpy(), rays.directions[0].numpy()
        offset = point - origin
        distance = np.linalg.norm(offset - direction * (offset @ direction))
        assert distance < 1e-4  # the ray through our pixel (u, v) passes through the point


@requires_3d
def test_nerfstudio_missing_cli_gives_an_install_hint(amodal_views, monkeypatch):
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(ImportError, match="pip install nerfstudio"):
        NerfstudioReconstructor().reconstruct(amodal_views)


@requires_3d
def test_nerfstudio_reads_a_saved_capture_as_we_read_it(amodal_views, tmp_path):
    """A capture written by save_capture (what `reconstruct --complete --masks-out` writes): nerfstudio's own parser
    finds every image and mask, and its cameras equal the ones the project reads back."""
    require_extra("nerfstudio", "nerfstudio not installed (optional extra)")
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    from p2g3d.integrations.captures import load_nerfstudio_capture, save_capture

    save_capture(amodal_views, tmp_path / "capture")
    config = NerfstudioDataParserConfig(
        data=tmp_path / "capture",
        orientation_method="none",
        center_method="none",
        auto_scale_poses=False,
        eval_mode="all",
    )
    outputs = config.setup().get_dataparser_outputs(split="train")
    assert [p.name for p in outputs.mask_filenames] == [f"view_{i:03d}_mask.png" for i in range(len(amodal_views))]
    ours = load_nerfstudio_capture(tmp_path / "capture")
    for index, view in enumerate(ours):
        np.testing.assert_allclose(
            outputs.cameras.camera_to_worlds[index].numpy(), to_opengl(view.camera)[:3], atol=1e-5
        )
        np.testing.assert_allclose(float(outputs.cameras.fx[index]), view.camera.K[0, 0], rtol=1e-6)
        np.testing.assert_allclose(float(outputs.cameras.cx[index]), view.camera.K[0, 2], rtol=1e-6)
