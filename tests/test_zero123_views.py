"""The Zero-1-to-3 integration end to end on a tiny Zero-1-to-3 built from configs (CPU, no reference bundle)."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch

from p2g3d.cameras import Camera, position_to_spherical, zero123_relative_pose
from p2g3d.cli import main
from p2g3d.framing import frame_on_white
from p2g3d.integrations.base import load_views
from p2g3d.io import load_mask
from p2g3d.masks import amodal_mask_from_whole
from p2g3d.novel_views import NovelViewGenerator
from p2g3d.sampling import derive_seed
from p2g3d.types import AmodalObject, MaskedView


@pytest.fixture(scope="module")
def generator(tiny_z123_dir):
    return NovelViewGenerator.from_pretrained(tiny_z123_dir, device="cpu", num_inference_steps=4, batch_size=3)


@pytest.fixture(scope="module")
def cutout():
    rgba = np.zeros((50, 40, 4), np.uint8)
    rgba[10:40, 5:25] = (200, 40, 30, 255)
    return rgba


def test_object_framing_matches_zero123_training(cutout):
    framed = frame_on_white(cutout, 256).image
    rows, cols = np.nonzero((framed < 250).any(axis=2))
    assert framed.shape == (256, 256, 3) and framed[0, 0].tolist() == [255, 255, 255]
    assert rows.max() + 1 - rows.min() == 200  # long side (30 px tall) -> 200
    assert abs((cols.max() + 1 - cols.min()) - round(20 * 200 / 30)) <= 1
    assert abs((rows.min() + rows.max() + 1) / 2 - 128) <= 1 and abs((cols.min() + cols.max() + 1) / 2 - 128) <= 1
    mask = cutout[..., 3] > 0
    as_object = AmodalObject(
        label=0,
        whole_rgb=cutout[..., :3].copy(),
        whole_rgba=cutout.copy(),
        amodal_mask=mask,
        visible_mask=mask,
        occluded_mask=np.zeros_like(mask),
        sample_images=cutout[None, ..., :3].copy(),
        sample_masks=mask[None],
        confidence=1.0,
        best_sample=0,
    )
    np.testing.assert_array_equal(frame_on_white(as_object, 256).image, framed)
    np.testing.assert_array_equal(frame_on_white(PIL.Image.fromarray(cutout), 256).image, framed)
    np.testing.assert_array_equal(frame_on_white((cutout[..., :3], mask), 256).image, framed)
    with pytest.raises(ValueError, match="empty"):
        frame_on_white((cutout[..., :3], np.zeros_like(mask)), 256)
    with pytest.raises(TypeError):
        frame_on_white("cutout.png", 256)


def test_views_come_with_their_cameras(generator, cutout):
    targets = generator.orbit(4, elevation_deg=20.0)
    views = generator(cutout, targets, input_elevation=20.0, num_samples=2, seed=3, show_progress=False)
    assert [(v.view_index, v.sample_index) for v in views] == [(i, s) for i in range(4) for s in range(2)]
    source = generator.input_camera(20.0)
    for view in views:
        assert view.camera is targets[view.view_index]
        assert view.image.shape == (64, 64, 3) and view.mask.shape == (64, 64)
        np.testing.assert_array_equal(view.mask, amodal_mask_from_whole(view.image))
        assert view.relative_pose == pytest.approx(zero123_relative_pose(source, view.camera))
    assert [round(v.relative_pose[1]) for v in views[::2]] == [0, 90, 180, 270]
    assert position_to_spherical(views[2].camera.center)[1] == pytest.approx(90.0)


def test_views_equal_direct_pipeline_calls_and_ignore_batching(generator, cutout):
    targets = generator.orbit(3, elevation_deg=-10.0)
    views = generator(cutout, targets, input_elevation=0.0, num_samples=1, seed=5, show_progress=False)
    single = NovelViewGenerator(generator.pipeline, num_inference_steps=4, batch_size=1)
    again = single(cutout, targets, input_elevation=0.0, num_samples=1, seed=5, show_progress=False)
    for a, b in zip(views, again):
        assert np.abs(a.image.astype(int) - b.image).max() <= 1
    # View 2 by hand: the same relative pose and noise through the pipeline directly.
    pipe = generator.pipeline
    noise = torch.Generator().manual_seed(derive_seed(5, 2, 0))
    latents = torch.randn((4, 8, 8), generator=noise)[None]
    polar, azimuth, radius = views[2].relative_pose
    assert polar == pytest.approx(10.0)  # 10 degrees lower is +10 delta polar
    direct = pipe(
        frame_on_white(cutout, 64).image,
        polar,
        azimuth,
        radius,
        num_inference_steps=4,
        guidance_scale=3.0,
        eta=1.0,
        generator=[noise],
        latents=latents,
        output_type="np",
    ).images[0]
    assert np.abs((255.0 * direct).astype(np.uint8).astype(int) - views[2].image).max() <= 1


def test_bad_requests(generator, cutout):
    with pytest.raises(ValueError, match="at least one"):
        generator(cutout, [], show_progress=False)
    with pytest.raises(ValueError, match="num_samples"):
        generator(cutout, generator.orbit(1), num_samples=0, show_progress=False)


def test_cli_views_write_a_folder_that_reconstruct_reads(tiny_z123_dir, tiny_model_dir, cutout, tmp_path, capsys):
    PIL.Image.fromarray(cutout).save(tmp_path / "object.png")
    out = tmp_path / "views"
    argv = ["views", str(tmp_path / "object.png"), "--model", str(tiny_z123_dir), "-o", str(out), "--views", "3"]
    assert main(argv + ["--steps", "3", "--samples", "2", "--input-elevation", "15", "--device", "cpu"]) == 0
    cameras = json.loads((out / "cameras.json").read_text())
    assert len(cameras["views"]) == 6 and (out / "input.png").is_file()
    for entry in cameras["views"]:
        assert (out / entry["file"]).is_file() and (out / entry["mask"]).is_file()
        camera = Camera.from_dict(entry["camera"])
        elevation, _, radius = position_to_spherical(camera.center)
        assert elevation == pytest.approx(15.0) and radius == pytest.approx(1.5)
    assert cameras["views"][2]["zero123_pose"]["delta_azimuth_deg"] == pytest.approx(120.0)
    views = load_views(out)  # the one views-folder format: what `p2g3d views` writes, `p2g3d reconstruct` reads
    assert len(views) == 6 and all(isinstance(v, MaskedView) for v in views)
    np.testing.assert_array_equal(views[3].mask, load_mask(out / cameras["views"][3]["mask"]))
    PIL.Image.fromarray(cutout[..., :3]).save(tmp_path / "rgb.png")
    assert main(["views", str(tmp_path / "rgb.png"), "--model", str(tiny_z123_dir), "-o", str(out)]) == 2
    assert "no alpha channel" in capsys.readouterr().err
    assert main(["views", str(tmp_path / "object.png"), "--model", str(tiny_model_dir), "-o", str(out)]) == 2
    assert "Pix2GestaltPipeline model, but a Zero123Pipeline model is needed" in capsys.readouterr().err


def test_novel_views_become_masked_views(generator, cutout):
    (view,) = generator(cutout, generator.orbit(1), num_samples=1, show_progress=False)
    masked = view.masked_view()
    assert isinstance(masked, MaskedView) and masked.camera is view.camera
    np.testing.assert_array_equal(masked.image, view.image)
    np.testing.assert_array_equal(masked.mask, view.mask)
