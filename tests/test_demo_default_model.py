"""The embedded demonstration model and the README's main command."""

from __future__ import annotations

import json

import numpy as np
from conftest import requires_3d

from p2g3d.cli import main
from p2g3d.completer import AmodalCompleter
from p2g3d.loading import default_model_path, validate_model_folder


def test_embedded_model_is_shipped_small_and_loads_by_default():
    folder = default_model_path()
    validate_model_folder(folder)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 25 * 2**20
    training = json.loads((folder / "training.json").read_text())
    assert training["init"] != "scratch" or training["stage"] == "diffusion"
    completer = AmodalCompleter.from_pretrained(device="cpu")
    assert completer.size == 64


@requires_3d
def test_main_command_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--scenes", "1", "--steps", "4", "--samples", "1", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "Protocol: syncdreamer" in printed and "pix2gestalt (completed)" in printed
    for name in ("visible", "all-foreground", "amodal", "pix2gestalt", "ground_truth"):
        assert (out / "scene_0" / f"{name}.glb").is_file()
    assert (out / "scene_0" / "preview.png").is_file() and (out / "metrics.md").is_file()
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert {row["method"] for row in rows} == {
        "visible",
        "all-foreground",
        "amodal (oracle)",
        "pix2gestalt (completed)",
    }


def test_cli_complete_uses_the_embedded_model_without_model(tmp_path):
    import numpy as np
    import PIL.Image

    image = np.full((40, 40, 3), 255, np.uint8)
    image[10:30, 12:28] = (200, 40, 40)
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 12:20] = 255
    PIL.Image.fromarray(image).save(tmp_path / "scene.png")
    PIL.Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    assert (
        main(
            [
                "complete",
                str(tmp_path / "scene.png"),
                "--mask",
                str(tmp_path / "mask.png"),
                "-o",
                str(out),
                "--steps",
                "3",
                "--samples",
                "1",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert (out / "object_00_rgba.png").is_file()


def _scores(folder, **settings):
    from p2g3d.evaluation.amodal import evaluate_amodal
    from p2g3d.evaluation.examples import FolderExamples

    completer = AmodalCompleter.from_pretrained(device="cpu", num_samples=3, num_inference_steps=20, **settings)
    return evaluate_amodal(completer, FolderExamples(folder))


@requires_3d
def test_embedded_model_beats_the_baselines_on_held_out_synthetic_objects(tmp_path):
    from p2g3d.training.composite import write_synthetic_dataset

    folder = write_synthetic_dataset(tmp_path / "heldout", count=8, seed=1000, image_size=64)
    scores = _scores(folder)
    assert scores["miou_vote"] > max(scores["miou_visible"], scores["miou_convex_hull"]) + 3.0


@requires_3d
def test_embedded_model_beats_the_visible_masks_on_fresh_out_of_distribution_objects(tmp_path):
    """Objects with a factor the model never saw in training (shape family, background or occluder type). The
    vote beats the visible masks there, but NOT their convex hull (README: 66.2 vs 69.2 on 300 such objects)."""
    from p2g3d.training.composite import write_synthetic_dataset

    folder = write_synthetic_dataset(tmp_path / "ood", count=12, seed=4321, image_size=64, factors="held-out")
    scores = _scores(folder)
    assert scores["miou_vote"] > scores["miou_visible"] + 3.0


@requires_3d
def test_completed_masks_have_no_detached_specks_and_keep_the_true_box():
    """The decoded images' dark corners once became 2 x 2 specks in every mask, so the amodal box was the whole
    image; the completed box must not reach more than a few pixels beyond the true one (falling short of it is
    incomplete completion, measured by the mIoU tables, not a speck)."""
    from p2g3d.training.composite import composite_samples

    completer = AmodalCompleter.from_pretrained(device="cpu", num_samples=3, num_inference_steps=20)
    for index, sample in enumerate(composite_samples(seed=99, count=6, image_size=64, factors="held-out")):
        (result,) = completer(sample.occluded, sample.visible_mask, seed=index, show_progress=False)
        top, left, bottom, right = _box(result.amodal_mask)
        true_top, true_left, true_bottom, true_right = _box(sample.whole_mask)
        outside = max(true_top - top, true_left - left, bottom - true_bottom, right - true_right)
        assert outside <= 6, (sample.factors, _box(result.amodal_mask), _box(sample.whole_mask))


def _box(mask):
    rows, cols = np.nonzero(mask)
    return None if len(rows) == 0 else (rows.min(), cols.min(), rows.max(), cols.max())
