"""The embedded demonstration model and the README's main command."""

from __future__ import annotations

import json

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
    assert {row["method"] for row in rows} == {"visible", "all-foreground", "amodal (oracle)", "pix2gestalt (completed)"}


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
    assert main(["complete", str(tmp_path / "scene.png"), "--mask", str(tmp_path / "mask.png"), "-o", str(out),
                 "--steps", "3", "--samples", "1", "--device", "cpu"]) == 0  # fmt: skip
    assert (out / "object_00_rgba.png").is_file()


@requires_3d
def test_embedded_model_beats_the_baselines_on_held_out_synthetic_objects(tmp_path):
    from p2g3d.training.data import write_synthetic_dataset
    from p2g3d.training.evaluation import evaluate_amodal, examples_from_folder

    folder = write_synthetic_dataset(tmp_path / "heldout", count=8, seed=1000, image_size=64)
    completer = AmodalCompleter.from_pretrained(device="cpu", num_samples=3, num_inference_steps=20)
    scores = evaluate_amodal(completer, examples_from_folder(folder))
    assert scores["miou_vote"] > max(scores["miou_visible"], scores["miou_convex_hull"]) + 3.0
