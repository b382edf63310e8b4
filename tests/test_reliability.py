"""Reliability cases whose exit status is not 2: partial batch failures (3), interruptions (130), corrupt run
records, reruns into the same folder, notes on stderr, GLB buffer-view targets, the embedded default models."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import trimesh
from conftest import requires_3d

from p2g3d.cli import main

H, W = 30, 44


@pytest.fixture()
def scene(tmp_path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(tmp_path / "scene.png")
    paths = {"scene": tmp_path / "scene.png"}
    for index, box in enumerate(((slice(5, 20), slice(5, 20)), (slice(10, 25), slice(24, 40)))):
        mask = np.zeros((H, W), np.uint8)
        mask[box] = 255
        paths[f"mask{index}"] = tmp_path / f"mask{index}.png"
        PIL.Image.fromarray(mask).save(paths[f"mask{index}"])
    return paths


def batch_argv(source, output, model, *extra) -> list[str]:
    common = ["--model", str(model), "--steps", "2", "--samples", "1", "--device", "cpu"]
    return ["batch", str(source), "-o", str(output), *common, *extra]


def test_coco_items_with_empty_or_short_segmentations_fail_alone(tiny_model_dir, scene, tmp_path, capsys):
    """Real COCOA / BSDS-A files hold empty and degenerate segmentations: such an item is recorded as failed with
    its reason, the others are completed, and the run exits 3 naming the count and the reasons' file."""
    images = [
        {"id": k, "file_name": "scene.png" if k == 1 else f"copy{k}.png", "height": H, "width": W} for k in (1, 2, 3)
    ]
    for k in (2, 3):
        (tmp_path / f"copy{k}.png").write_bytes(scene["scene"].read_bytes())
    good = [[5, 5, 20, 5, 20, 20, 5, 20]]
    annotations = [
        {"id": 10, "image_id": 1, "inmodal_seg": good},
        {"id": 20, "image_id": 2, "inmodal_seg": []},  # empty
        {"id": 30, "image_id": 3, "inmodal_seg": [[5, 5, 20, 5]]},  # fewer than 3 points
    ]
    (tmp_path / "coco.json").write_text(json.dumps({"images": images, "annotations": annotations}))
    output = tmp_path / "out"
    code = main(batch_argv(tmp_path / "coco.json", output, tiny_model_dir, "--images", str(tmp_path)))
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("p2g3d")]  # not the bar
    assert code == 3 and err == [f"p2g3d batch: 2 of 3 items failed; the reasons are in {output / 'errors.jsonl'}"]
    reasons = {e["id"]: e["reason"] for e in map(json.loads, (output / "errors.jsonl").read_text().splitlines())}
    assert set(reasons) == {"copy2", "copy3"} and all("at least 3 points" in r for r in reasons.values())
    assert (output / "items" / "scene" / "done.json").is_file()


@pytest.mark.parametrize("record", ["batch.json", "done.json"])
def test_a_corrupt_run_record_is_named_with_what_to_do(tiny_model_dir, scene, tmp_path, capsys, record):
    source = tmp_path / "data"
    source.mkdir()
    (source / "a.png").write_bytes(scene["scene"].read_bytes())
    (source / "a_mask0.png").write_bytes(scene["mask0"].read_bytes())
    output = tmp_path / "out"
    assert main(batch_argv(source, output, tiny_model_dir)) == 0
    broken = output / record if record == "batch.json" else output / "items" / "a" / record
    broken.write_text("{not json")
    capsys.readouterr()
    assert main(batch_argv(source, output, tiny_model_dir)) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert str(broken) in line and "is not valid JSON" in line
    assert ("start the run again" if record == "batch.json" else "delete it to redo that item") in line


@pytest.mark.parametrize("command, resumes", [("batch", True), ("evaluate", False)])
def test_ctrl_c_is_one_line_and_exit_130(monkeypatch, capsys, tmp_path, command, resumes):
    import p2g3d.jobs.batch.job as batch_job
    import p2g3d.jobs.evaluate as evaluate_job

    def interrupted(settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch_job, "run_batch_job", interrupted)
    monkeypatch.setattr(evaluate_job, "run_evaluate", interrupted)
    argv = ["batch", str(tmp_path), "-o", str(tmp_path / "o")] if command == "batch" else ["evaluate", "a", "b"]
    assert main(argv) == 130
    hint = "; rerun the same command to resume" if resumes else ""
    assert capsys.readouterr().err.strip().splitlines() == [f"p2g3d {command}: interrupted{hint}"]


@requires_3d
def test_image_to_3d_rerun_with_fewer_masks_replaces_the_outputs(tiny_z123_dir, scene, tmp_path):
    output = tmp_path / "out"
    base = ["image-to-3d", str(scene["scene"]), "-o", str(output), "--no-complete", "--backend-model"]
    base += [str(tiny_z123_dir), "--backend-steps", "2", "--views", "3", "--device", "cpu"]
    assert main([*base, "--mask", str(scene["mask0"]), "--mask", str(scene["mask1"])]) == 0
    assert (output / "object_01.glb").is_file()
    assert main([*base, "--mask", str(scene["mask0"])]) == 0
    files = sorted(p.name for p in output.iterdir())
    assert files == ["object_00.glb", "object_00_preview.png", "summary.json"]
    summary = json.loads((output / "summary.json").read_text())
    assert [o["object"] for o in summary["objects"]] == [0] and summary["model"] is None  # --no-complete


def test_complete_without_a_model_says_so_once_and_records_embedded(scene, tmp_path, caplog):
    argv = ["complete", str(scene["scene"]), "--mask", str(scene["mask0"]), "-o", str(tmp_path / "out")]
    assert main([*argv, "--steps", "2", "--samples", "1", "--device", "cpu"]) == 0
    notes = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]  # the command prints it on stderr
    assert len(notes) == 1 and "embedded demonstration model" in notes[0]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["model"] == "embedded"


def test_pipelines_load_their_embedded_models_without_a_path():
    from p2g3d import Pix2GestaltPipeline, Zero123Pipeline

    assert Pix2GestaltPipeline.from_pretrained().unet.config.in_channels == 12
    assert Zero123Pipeline.from_pretrained().unet.config.in_channels == 8


def test_glb_buffer_views_carry_their_targets(tmp_path):
    from p2g3d.meshes import export_mesh

    mesh = trimesh.creation.icosphere(subdivisions=1)
    mesh.visual.vertex_colors = [200, 10, 10, 255]
    data = export_mesh(mesh, tmp_path / "m.glb").read_bytes()
    length = struct.unpack_from("<I", data, 12)[0]
    document = json.loads(data[20 : 20 + length])
    targets = [view.get("target") for view in document["bufferViews"]]
    assert targets.count(34963) == 1 and targets.count(34962) == len(targets) - 1  # indices, then attributes
    assert struct.unpack_from("<I", data, 8)[0] == len(data) and length % 4 == 0
    loaded = trimesh.load(tmp_path / "m.glb", force="mesh")
    np.testing.assert_allclose(np.sort(loaded.vertices, 0), np.sort(mesh.vertices, 0), atol=1e-6)
