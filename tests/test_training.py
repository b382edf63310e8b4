"""Synthetic training data, the training recipe (dropout, learning rates, EMA, resume) and amodal evaluation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import requires_3d

from p2g3d import Pix2GestaltPipeline
from p2g3d.cli import main
from p2g3d.completer import AmodalCompleter
from p2g3d.datasets import FOLDERS, GestaltDataset, GestaltSample, write_dataset
from p2g3d.evaluation.amodal import convex_hull, evaluate_amodal
from p2g3d.evaluation.examples import AnnotationExamples, FolderExamples
from p2g3d.io import decode_segmentation
from p2g3d.training.composite import composite_samples
from p2g3d.training.gestalt import ENCODED_DATASET
from p2g3d.training.losses import dropout_masks
from p2g3d.training.trainer import TrainConfig, latest_checkpoint, learning_rate_factor, train


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "synthetic"
    return write_dataset(composite_samples(seed=0, count=12, image_size=32), folder)


@requires_3d
def test_a_dataset_folder_reads_back_what_was_written(dataset_dir):
    dataset = GestaltDataset(dataset_dir)
    assert len(dataset) == 12 and all((dataset_dir / sub / "000000.png").is_file() for sub in FOLDERS)
    again = next(composite_samples(seed=0, count=1, image_size=32))
    np.testing.assert_array_equal(again.occluded, dataset[0].occluded)
    np.testing.assert_array_equal(again.whole_mask, dataset[0].whole_mask)
    assert dataset[0].factors == again.factors


def test_dataset_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="missing"):
        GestaltDataset(tmp_path)


def test_dropout_follows_the_official_split():
    drop_clip, drop_concat = dropout_masks(200000, 0.05, torch.Generator().manual_seed(0))
    clip_only = (drop_clip & ~drop_concat).float().mean()
    both = (drop_clip & drop_concat).float().mean()
    concat_only = (~drop_clip & drop_concat).float().mean()
    for share in (clip_only, both, concat_only):
        assert share == pytest.approx(0.05, abs=0.003)


def _config(dataset_dir, output, **overrides):
    settings = dict(
        data=str(dataset_dir),
        output_dir=str(output),
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
def test_training_resumes_exactly_and_saves_ema_weights(dataset_dir, tmp_path):
    vae_model = train(_config(dataset_dir, tmp_path / "vae", stage="vae", learning_rate=1e-3, steps=2))
    straight = train(_config(dataset_dir, tmp_path / "straight", init=str(vae_model)))
    train(_config(dataset_dir, tmp_path / "resumed", init=str(vae_model), steps=2))
    resumed = train(_config(dataset_dir, tmp_path / "resumed", init=str(vae_model)))
    a, b = Pix2GestaltPipeline.from_pretrained(straight), Pix2GestaltPipeline.from_pretrained(resumed)
    for x, y in zip(
        list(a.unet.parameters()) + list(a.cc_projection.parameters()),
        list(b.unet.parameters()) + list(b.cc_projection.parameters()),
    ):
        assert torch.equal(x, y)
    log = [json.loads(line) for line in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4] and all(np.isfinite(entry["loss"]) for entry in log)
    assert log[0]["lr"] < log[-1]["lr"] == pytest.approx(1e-4)  # warm-up, then constant
    vae_trained = Pix2GestaltPipeline.from_pretrained(vae_model).vae
    assert all(torch.equal(x, y) for x, y in zip(vae_trained.parameters(), a.vae.parameters()))  # VAE frozen
    # The saved UNet is the EMA copy: with decay 0 the EMA equals the raw weights, with decay 0.9 it does not.
    raw = Pix2GestaltPipeline.from_pretrained(
        train(_config(dataset_dir, tmp_path / "raw", init=str(vae_model), ema_decay=0.0))
    )
    assert not all(torch.equal(x, y) for x, y in zip(raw.unet.parameters(), a.unet.parameters()))
    assert all(torch.equal(x, y) for x, y in zip(raw.cc_projection.parameters(), a.cc_projection.parameters()))


@requires_3d
def test_cc_projection_learns_ten_times_faster(dataset_dir, tmp_path, monkeypatch):
    captured = {}
    original = torch.optim.AdamW

    def spy(groups, *args, **kwargs):
        captured["lrs"] = [group["lr"] for group in groups]
        return original(groups, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    train(_config(dataset_dir, tmp_path / "run", steps=1))
    assert captured["lrs"] == [1e-4, pytest.approx(1e-3)]


@requires_3d
def test_amodal_evaluation_and_baselines(dataset_dir, tiny_model_dir):
    hull = convex_hull(np.array([[1, 0, 1], [0, 0, 0], [1, 0, 1]], dtype=bool))
    assert hull.all()
    completer = AmodalCompleter.from_pretrained(tiny_model_dir, device="cpu", num_samples=2, num_inference_steps=3)
    result = evaluate_amodal(completer, FolderExamples(dataset_dir), limit=3, group_by="shape")
    assert result["objects"] == 3 and result["samples"] == 2
    shapes = [GestaltDataset(dataset_dir)[i].factors["shape"] for i in range(3)]
    assert {name: group["objects"] for name, group in result["groups"].items()} == {s: shapes.count(s) for s in shapes}
    weighted = sum(g["miou_vote"] * g["objects"] for g in result["groups"].values()) / 3
    assert weighted == pytest.approx(result["miou_vote"])
    assert result["miou_best_of_n"] >= result["miou_single"] - 1e-9
    assert 0 <= result["miou_visible"] <= result["miou_convex_hull"] <= 100


def test_cocoa_annotations(tmp_path):
    import PIL.Image

    PIL.Image.fromarray(np.full((20, 30, 3), 200, np.uint8)).save(tmp_path / "a.png")
    annotation = {
        "images": [{"id": 1, "file_name": "a.png", "height": 20, "width": 30}],
        "annotations": [
            {
                "image_id": 1,
                "segmentation": [[5, 5, 25, 5, 25, 15, 5, 15]],
                "inmodal_seg": [[5, 5, 15, 5, 15, 15, 5, 15]],
            }
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(annotation))
    (example,) = list(AnnotationExamples(tmp_path / "ann.json", tmp_path))
    assert example.amodal_mask.sum() > example.visible_mask.sum() > 0
    assert not (example.visible_mask & ~example.amodal_mask).any()
    # Polygons are decoded as the COCO tools decode them: a 20 x 10 rectangle covers exactly 200 pixels (a
    # rasteriser that adds the outline would give 21 x 11 = 231).
    assert example.amodal_mask.sum() == 200 and example.visible_mask.sum() == 100


def test_segmentations_decode_like_pycocotools_ann_to_mask():
    from pycocotools import mask as coco_mask

    rng = np.random.default_rng(0)
    for _ in range(20):
        polygon = [rng.uniform(0, 40, 12).round(1).tolist()]
        expected = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects(polygon, 32, 40))).astype(bool)
        np.testing.assert_array_equal(decode_segmentation(polygon, 32, 40), expected)
        rle = coco_mask.encode(np.asfortranarray(expected.astype(np.uint8)))
        np.testing.assert_array_equal(decode_segmentation(rle, 32, 40), expected)
    with pytest.raises(ValueError, match="COCO segmentation"):
        decode_segmentation("polygon", 32, 40)


@requires_3d
def test_a_checkpoint_counts_only_when_complete(dataset_dir, tmp_path):
    """A crash while saving leaves a partial folder (or a step folder without its state file): resume ignores it."""
    run = tmp_path / "run"
    config = _config(dataset_dir, run, steps=2, checkpoint_every=1)
    train(config)
    checkpoints = run / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_0000001", "step_0000002"]
    (checkpoints / ".step_0000003.partial").mkdir()  # killed while saving step 3
    (checkpoints / "step_0000004").mkdir()  # a half-copied folder without trainer_state.json
    (checkpoints / "step_9999999_backup").mkdir()
    assert latest_checkpoint(checkpoints) == checkpoints / "step_0000002"
    train(_config(dataset_dir, run, steps=3, checkpoint_every=1))  # resumes from step 2, does not fail
    log = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert log == [1, 2, 3]
    assert latest_checkpoint(checkpoints) == checkpoints / "step_0000003"
    assert not (checkpoints / ".step_0000003.partial").exists()
    json.loads((run / "training.json").read_text())  # written atomically, complete


@requires_3d
def test_cli_make_data_train_and_eval(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["make-data", str(data), "--count", "6", "--image-size", "32", "--seed", "3"]) == 0
    assert (
        main(
            [
                "train",
                "--data",
                str(data),
                "-o",
                str(tmp_path / "run"),
                "--steps",
                "2",
                "--batch-size",
                "2",
                "--image-size",
                "32",
                "--stage",
                "vae",
            ]
        )
        == 0
    )
    model = tmp_path / "run" / "model"
    capsys.readouterr()
    assert (
        main(
            [
                "eval-amodal",
                "--model",
                str(model),
                "--data",
                str(data),
                "--samples",
                "2",
                "--steps",
                "2",
                "--limit",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["objects"] == 2
    assert main(["eval-amodal", "--model", str(model)]) == 2


@requires_3d
def test_latent_scale_calibration_and_mode_targets(dataset_dir, tmp_path):
    from p2g3d.datasets import GestaltDataset
    from p2g3d.training.gestalt import encode_dataset
    from p2g3d.training.trainer import load_start

    config = _config(dataset_dir, tmp_path / "calibrated", steps=1, calibrate_latent_scale=True, target_latent="mode")
    model = Pix2GestaltPipeline.from_pretrained(train(config))
    start = load_start(config)
    with torch.no_grad():
        canvas = start.vae.encode(torch.ones(1, 3, 32, 32)).latent_dist.mean.mean(dim=(0, 2, 3))
    assert model.vae.config.latents_mean == pytest.approx(canvas.tolist(), abs=1e-5)
    assert model.vae.config.latents_std == [1.0] * len(canvas)
    centred = encode_dataset(start, GestaltDataset(dataset_dir), 32)["mean"] - canvas.view(1, -1, 1, 1)
    assert model.vae.config.scaling_factor == pytest.approx(1.0 / float(centred.std()), rel=1e-5)
    # The white canvas is the origin of the diffusion latents, and decoding inverts the normalisation.
    z = torch.randn(2, 4, 8, 8)
    assert model.normalize_latents(canvas.view(1, -1, 1, 1)).abs().max() < 1e-5
    assert torch.allclose(model.denormalize_latents(model.normalize_latents(z)), z, atol=1e-5)
    with pytest.raises(ValueError, match="target_latent"):
        train(_config(dataset_dir, tmp_path / "bad", target_latent="median"))


def test_make_data_replaces_only_an_earlier_dataset(tmp_path):
    blank = np.zeros((16, 16, 3), np.uint8)
    sample = GestaltSample(blank, blank, blank[..., 0] == 0, blank[..., 0] == 0)
    write_dataset([sample] * 8, tmp_path / "data")
    with pytest.raises(FileExistsError, match="not empty"):
        write_dataset([sample] * 3, tmp_path / "data")
    write_dataset([sample] * 3, tmp_path / "data", overwrite=True)
    assert len(GestaltDataset(tmp_path / "data")) == 3  # no samples of the earlier dataset left over
    assert json.loads((tmp_path / "data" / "dataset.json").read_text())["count"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@requires_3d
def test_resume_refuses_changed_settings_and_fewer_steps(dataset_dir, tmp_path):
    run = tmp_path / "run"
    train(_config(dataset_dir, run, steps=2, checkpoint_every=1))
    with pytest.raises(ValueError, match=r"learning_rate \(was 0.0001, now 0.001\)"):
        train(_config(dataset_dir, run, steps=3, learning_rate=1e-3))
    with pytest.raises(ValueError, match="already trained 2 steps"):
        train(_config(dataset_dir, run, steps=1))
    assert json.loads((run / "training.json").read_text())["learning_rate"] == 1e-4  # the record was not rewritten
    train(_config(dataset_dir, run, steps=3, learning_rate=1e-3, allow_changed_settings=True))
    assert json.loads((run / "training.json").read_text())["learning_rate"] == 1e-3


def test_learning_rate_warms_up_holds_and_decays_to_zero():
    factors = [learning_rate_factor(step, 2, 10, 4) for step in range(11)]
    assert factors[0] < factors[1] < factors[2] == 1.0
    assert factors[2:7] == [1.0] * 5 and factors[6:] == [1.0, 0.75, 0.5, 0.25, 0.0]
    assert [learning_rate_factor(step, 2, 10) for step in (5, 10)] == [1.0, 1.0]  # no decay by default
    with pytest.raises(ValueError, match="decay_steps"):
        TrainConfig(data="d", output_dir="o", steps=10, decay_steps=11)


@requires_3d
def test_a_resumed_run_can_be_annealed(dataset_dir, tmp_path):
    run = tmp_path / "run"
    train(_config(dataset_dir, run, steps=2))
    train(_config(dataset_dir, run, steps=6, decay_steps=4))  # the decay is not a conflicting setting
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4, 5, 6]
    assert [entry["lr"] for entry in log[2:]] == pytest.approx([0.75e-4, 0.5e-4, 0.25e-4, 0.0])


@requires_3d
def test_a_resumed_run_reads_its_encoded_dataset_back(dataset_dir, tmp_path, monkeypatch):
    import p2g3d.training.gestalt as gestalt

    run = tmp_path / "run"
    train(_config(dataset_dir, run, steps=2))
    assert (run / ENCODED_DATASET).is_file()
    calls = []
    encode = gestalt.encode_dataset
    monkeypatch.setattr(gestalt, "encode_dataset", lambda *args, **kwargs: calls.append(1) or encode(*args, **kwargs))
    train(_config(dataset_dir, run, steps=3))
    assert calls == []  # read back (its equality with a fresh encoding: the exact-resume test)
    sample = next((Path(dataset_dir) / "occlusion").glob("*.png"))
    os.utime(sample, ns=(sample.stat().st_atime_ns, sample.stat().st_mtime_ns + 10**9))
    train(_config(dataset_dir, run, steps=4))
    assert calls == [1]  # a changed sample file: encoded again


def test_a_run_starts_in_float32_from_a_folder_stored_in_fp16(tmp_path):
    """The embedded model ships in fp16; fine-tuning from it must not train (or encode) in fp16 on the CPU."""
    from tiny_models import make_tiny_pipeline

    from p2g3d.training.trainer import load_start

    make_tiny_pipeline().to(torch.float16).save_pretrained(tmp_path / "fp16")
    start = load_start(TrainConfig(data=str(tmp_path), output_dir=str(tmp_path / "run"), init=str(tmp_path / "fp16")))
    for name in ("unet", "vae", "image_encoder", "cc_projection"):
        assert getattr(start, name).dtype == torch.float32, name
