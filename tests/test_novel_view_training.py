"""Zero-1-to-3 training: multi-view data in the official render layout, pairs, the recipe's dropout, resume, and the
novel-view evaluation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import requires_3d

from p2g3d import Zero123Pipeline
from p2g3d.cameras import (
    ZERO123_FOV_DEG,
    Camera,
    intrinsics_from_fov,
    look_at,
    zero123_relative_pose,
    zero123_relative_poses,
)
from p2g3d.evaluation.novel_views import evaluate_novel_views
from p2g3d.training.multiview import (
    HELD_OUT_KINDS,
    TRAIN_KINDS,
    MultiViewDataset,
    synthetic_objects,
    write_multiview_dataset,
)
from p2g3d.training.trainer import TrainConfig, load_start, train


@pytest.fixture(scope="module")
def views_dir(tmp_path_factory):
    return write_multiview_dataset(tmp_path_factory.mktemp("views") / "objects", 4, seed=3, num_views=3, image_size=32)


def _config(data, output, **overrides):
    settings = dict(
        data=str(data),
        output_dir=str(output),
        pipeline="zero123",
        image_size=32,
        batch_size=4,
        checkpoint_every=2,
        log_every=1,
        warmup_steps=2,
        ema_decay=0.9,
        steps=4,
    )
    settings.update(overrides)
    return TrainConfig(**settings)


@requires_3d
def test_the_render_layout_reads_back_and_poses_follow_the_camera_convention(views_dir):
    dataset = MultiViewDataset(views_dir)
    first, _ = next(synthetic_objects(1, seed=3, num_views=3, image_size=32))
    assert len(dataset) == 4 and dataset[0].images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(dataset[0].images, first.images)
    np.testing.assert_allclose(dataset[0].centers, first.centers, atol=1e-12)
    assert np.linalg.norm(first.centers, axis=1) == pytest.approx([1.5] * 3)
    assert (first.images[:, 0, 0] == 255).all() and (first.images.min(-1) <= 250).any()  # objects on white
    # The official get_T from camera centres equals the project's conversion from its cameras.
    K = intrinsics_from_fov(ZERO123_FOV_DEG, 32, 32)
    cameras = [Camera(K, look_at(center), 32, 32) for center in first.centers]
    expected = np.array([zero123_relative_pose(cameras[0], camera) for camera in cameras[1:]])
    np.testing.assert_allclose(
        zero123_relative_poses(first.centers[:1].repeat(2, 0), first.centers[1:]), expected, atol=1e-9
    )
    assert [f["kind"] for f in dataset.factors] == list(TRAIN_KINDS[:4])


@requires_3d
def test_held_out_kinds_never_train_and_layout_errors(tmp_path):
    assert not set(HELD_OUT_KINDS) & set(TRAIN_KINDS)
    kinds = [views.factors["kind"] for views, _ in synthetic_objects(4, num_views=2, image_size=16, kinds="held-out")]
    assert set(kinds) == set(HELD_OUT_KINDS)
    with pytest.raises(ValueError, match="kinds"):
        next(synthetic_objects(1, kinds="test"))
    with pytest.raises(ValueError, match="no object folder"):
        MultiViewDataset(tmp_path)
    single = tmp_path / "lonely"
    single.mkdir()
    np.save(single / "000.npy", np.eye(4)[:3])
    with pytest.raises(ValueError, match="no object folder"):
        MultiViewDataset(tmp_path)  # one view is no pair
    write_multiview_dataset(tmp_path / "data", 1, num_views=2, image_size=16)
    np.save(tmp_path / "data" / "000000" / "001.npy", np.eye(3))
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        MultiViewDataset(tmp_path / "data")[0]
    with pytest.raises(FileExistsError):
        write_multiview_dataset(tmp_path / "data", 1, num_views=2, image_size=16)


@requires_3d
def test_zero123_training_starts_like_the_official_model_and_resumes_exactly(views_dir, tmp_path):
    start = load_start(_config(views_dir, tmp_path / "x"))
    assert isinstance(start, Zero123Pipeline) and start.unet.config.in_channels == 8
    weight = start.cc_projection.projection.weight
    assert torch.equal(weight[:, :64], torch.eye(64)) and not weight[:, 64:].any()  # identity on CLIP, zero on pose
    straight = train(_config(views_dir, tmp_path / "straight"))
    train(_config(views_dir, tmp_path / "resumed", steps=2))
    resumed = train(_config(views_dir, tmp_path / "resumed"))
    a, b = Zero123Pipeline.from_pretrained(straight), Zero123Pipeline.from_pretrained(resumed)
    assert all(torch.equal(x, y) for x, y in zip(a.unet.parameters(), b.unet.parameters()))
    log = [json.loads(line) for line in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4] and all(np.isfinite(entry["loss"]) for entry in log)
    # --autoencoder: the VAE and CLIP tower of another model, frozen.
    borrowed = train(_config(views_dir, tmp_path / "borrowed", steps=1, autoencoder=str(straight)))
    c = Zero123Pipeline.from_pretrained(borrowed)
    for name in ("vae", "image_encoder"):
        assert all(torch.equal(x, y) for x, y in zip(getattr(a, name).parameters(), getattr(c, name).parameters()))
    with pytest.raises(ValueError, match="vae/ and image_encoder/"):
        train(_config(views_dir, tmp_path / "bad", steps=1, autoencoder=str(tmp_path)))
    vae_run = train(_config(views_dir, tmp_path / "vae", stage="vae", steps=1))
    assert not all(
        torch.equal(x, y)
        for x, y in zip(start.vae.parameters(), Zero123Pipeline.from_pretrained(vae_run).vae.parameters())
    )


@requires_3d
def test_dropout_zeroes_the_clip_embedding_before_the_projection_and_keeps_the_pose(views_dir, monkeypatch):
    from p2g3d.training.novel_view import EncodedViews, novel_view_loss
    from p2g3d.training.trainer import step_generators

    pipe = load_start(_config(views_dir, "unused"))
    views = EncodedViews(pipe, MultiViewDataset(views_dir), 32)
    assert views.mean.shape == (12, 4, 8, 8) and views.clip.shape == (12, 1, 64)
    rng, generator = step_generators(0, 0)
    condition, target = views.draw_pairs(np.random.default_rng(0), 500)
    assert (condition != target).all() and ((condition // 3) == (target // 3)).all()  # two views of one object
    seen = {}
    original = pipe.cc_projection.forward

    def spy(embedding):
        seen["input"] = embedding
        return original(embedding)

    monkeypatch.setattr(pipe.cc_projection, "forward", spy)
    novel_view_loss(pipe, views, rng, generator, 64, rate=1 / 3)
    clip, pose = seen["input"][:, 0, :64], seen["input"][:, 0, 64:]
    dropped = ~clip.any(dim=1)
    assert 0.4 < dropped.float().mean() < 0.9  # r < 2p with p = 1/3
    assert pose[:, 1:3].pow(2).sum(1) == pytest.approx(1.0, abs=1e-5)  # sin^2 + cos^2: the pose always stays


@requires_3d
def test_novel_view_evaluation_scores_generated_views_and_the_silhouette_baseline(views_dir):
    from tiny_models import make_tiny_zero123_pipeline

    from p2g3d.masks import amodal_mask_from_whole, mask_iou

    dataset = MultiViewDataset(views_dir)
    pipe = make_tiny_zero123_pipeline()
    result = evaluate_novel_views(pipe, dataset, targets_per_object=2, num_inference_steps=2, limit=2)
    assert result["objects"] == 2 and result["views"] == 4
    baseline = [
        mask_iou(amodal_mask_from_whole(dataset[i].images[0]), amodal_mask_from_whole(dataset[i].images[t]))
        for i in range(2)
        for t in (1, 2)
    ]
    assert result["miou_input_silhouette"] == pytest.approx(100 * np.mean(baseline))
    assert 0.0 <= result["miou_generated"] <= 100.0
    again = evaluate_novel_views(pipe, dataset, targets_per_object=2, num_inference_steps=2, limit=2)
    assert again == result  # seeded per object and view
