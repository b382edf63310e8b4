"""File input validation, model-folder validation and the command line."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import PIL.Image
import pytest

from p2g3d.cli import main
from p2g3d.io import load_image, load_mask, save_png
from p2g3d.loading import ModelFolderError, validate_model_folder


@pytest.fixture()
def files(tmp_path):
    rng = np.random.default_rng(0)
    image = tmp_path / "scene.png"
    PIL.Image.fromarray(rng.integers(0, 256, (30, 44, 3), dtype=np.uint8)).save(image)
    masks = []
    for k, (rows, cols) in enumerate(((slice(4, 14), slice(3, 20)), (slice(12, 28), slice(22, 40)))):
        mask = np.zeros((30, 44), np.uint8)
        mask[rows, cols] = 255
        masks.append(tmp_path / f"mask{k}.png")
        PIL.Image.fromarray(mask).save(masks[-1])
    return image, masks


def test_load_image_conventions(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (10, 20, 30, 255)
    PIL.Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.shape == (2, 2, 3) and tuple(loaded[0, 0]) == (10, 20, 30) and tuple(loaded[1, 1]) == (255, 255, 255)
    PIL.Image.fromarray(np.full((2, 2), 77, np.uint8)).save(tmp_path / "gray.png")
    assert (load_image(tmp_path / "gray.png") == 77).all()


def test_non_image_and_16_bit_are_refused(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(tmp_path / "notes.png")
    PIL.Image.fromarray(np.full((4, 4), 4000, np.uint16)).save(tmp_path / "deep.png")
    assert PIL.Image.open(tmp_path / "deep.png").mode.startswith("I")
    with pytest.raises(ValueError, match="8-bit"):
        load_image(tmp_path / "deep.png")
    with pytest.raises(ValueError, match="8-bit"):
        load_mask(tmp_path / "deep.png")
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "missing.png")


def test_mask_files(tmp_path):
    PIL.Image.fromarray(np.array([[0, 128], [255, 0]], np.uint8)).save(tmp_path / "soft.png")
    with pytest.raises(ValueError, match="binary"):
        load_mask(tmp_path / "soft.png")
    PIL.Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(ValueError, match="empty"):
        load_mask(tmp_path / "empty.png")
    save_png(tmp_path / "ok.png", np.eye(3, dtype=bool))
    np.testing.assert_array_equal(load_mask(tmp_path / "ok.png"), np.eye(3, dtype=bool))


def test_broken_model_folders(tiny_model_dir, tmp_path):
    assert validate_model_folder(tiny_model_dir) == tiny_model_dir
    with pytest.raises(ModelFolderError, match="not found"):
        validate_model_folder(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelFolderError, match="model_index.json"):
        validate_model_folder(tmp_path / "empty")
    half = tmp_path / "half"
    shutil.copytree(tiny_model_dir, half)
    weights = half / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelFolderError, match="truncated"):
        validate_model_folder(half)
    weights.unlink()
    with pytest.raises(ModelFolderError, match="no weights"):
        validate_model_folder(half)
    no_vae = tmp_path / "no_vae"
    shutil.copytree(tiny_model_dir, no_vae)
    shutil.rmtree(no_vae / "vae")
    with pytest.raises(ModelFolderError, match="vae/"):
        validate_model_folder(no_vae)
    (no_vae / "model_index.json").write_text('{"_class_name": "Pix2Ges')
    with pytest.raises(ModelFolderError, match="half-written"):
        validate_model_folder(no_vae)


def test_cli_complete_writes_every_output(tiny_model_dir, files, tmp_path):
    image, masks = files
    out = tmp_path / "out"
    argv = ["complete", str(image), "--mask", str(masks[0]), "--mask", str(masks[1]), "--model", str(tiny_model_dir)]
    assert main(argv + ["-o", str(out), "--samples", "2", "--steps", "3", "--seed", "4", "--device", "cpu"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [o["label"] for o in summary["objects"]] == [0, 1]
    for obj in summary["objects"]:
        for name in obj["files"].values():
            assert (out / name).is_file()
        assert obj["amodal_area"] >= obj["visible_area"]
        assert PIL.Image.open(out / obj["files"]["rgba"]).mode == "RGBA"
        assert PIL.Image.open(out / obj["files"]["whole"]).size == (44, 30)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # atomic writes leave no temp files


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image": "notes"}, "not a readable image"),
        ({"mask": "small"}, "is 10x10 but the image is 30x44"),
        ({"model": "missing"}, "model folder not found"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_cli_errors_are_one_line(tiny_model_dir, files, tmp_path, capsys, change, message):
    image, masks = files
    (tmp_path / "notes.txt").write_text("hello")
    PIL.Image.fromarray(np.full((10, 10), 255, np.uint8)).save(tmp_path / "small.png")
    argv = {
        "image": str(tmp_path / "notes.txt") if change.get("image") else str(image),
        "mask": str(tmp_path / "small.png") if change.get("mask") else str(masks[0]),
        "model": str(tmp_path / "missing") if change.get("model") else str(tiny_model_dir),
        "device": change.get("device", "cpu"),
    }
    code = main(
        [
            "complete",
            argv["image"],
            "--mask",
            argv["mask"],
            "--model",
            argv["model"],
            "--device",
            argv["device"],
            "-o",
            str(tmp_path / "out"),
            "--steps",
            "2",
            "--samples",
            "1",
        ]
    )
    error = capsys.readouterr().err.strip()
    assert code == 2 and message in error and "\n" not in error and error.startswith("p2g3d complete: error:")


def test_cli_convert(p2g_reference, tmp_path, capsys):
    out = tmp_path / "model"
    ckpt, config = str(p2g_reference / "pix2gestalt_tiny.ckpt"), str(p2g_reference / "pix2gestalt_tiny.yaml")
    assert main(["convert", ckpt, str(out), "--config", config, "--dtype", "fp16"]) == 0
    assert validate_model_folder(out) == out
    assert main(["convert", ckpt, str(out), "--config", config]) == 2
    assert "not empty" in capsys.readouterr().err


@pytest.mark.parametrize("bug", [TypeError("bug"), KeyError("bug"), ImportError("bug"), ValueError("bug")])
def test_a_bug_is_one_line_with_exit_1_and_its_traceback_under_verbose(monkeypatch, capsys, bug):
    """Anything but the project's input errors is a bug (a plain ValueError too): one line that says so, exit 1;
    -v adds the traceback."""
    import p2g3d.jobs.evaluate as job

    monkeypatch.setattr(job, "run_evaluate", lambda settings: (_ for _ in ()).throw(bug))
    assert main(["evaluate", "a.glb", "b.glb"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error" in err and "rerun with -v" in err
    assert main(["-v", "evaluate", "a.glb", "b.glb"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


@pytest.mark.parametrize("mistake", ["InputError", "MissingDependencyError", "FileNotFoundError"])
def test_a_mistake_of_the_user_is_one_line_with_exit_2(monkeypatch, capsys, mistake):
    import p2g3d.errors
    import p2g3d.jobs.evaluate as job

    error = getattr(p2g3d.errors, mistake, None) or FileNotFoundError
    monkeypatch.setattr(job, "run_evaluate", lambda settings: (_ for _ in ()).throw(error("expected x, got y")))
    assert main(["evaluate", "a.glb", "b.glb"]) == 2
    assert capsys.readouterr().err.strip() == "p2g3d evaluate: error: expected x, got y"
    assert issubclass(p2g3d.errors.InputError, ValueError)  # callers' `except ValueError` keeps working


def test_rerun_with_fewer_masks_leaves_no_stale_objects(tiny_model_dir, files, tmp_path):
    image, masks = files
    out = tmp_path / "out"
    base = [
        "complete",
        str(image),
        "--model",
        str(tiny_model_dir),
        "-o",
        str(out),
        "--steps",
        "2",
        "--samples",
        "1",
        "--device",
        "cpu",
    ]
    assert main(base + ["--mask", str(masks[0]), "--mask", str(masks[1])]) == 0
    (out / "notes.txt").write_text("the user's own file")
    assert main(base + ["--mask", str(masks[1])]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "object_00_amodal_mask.png",
        "object_00_preview.png",
        "object_00_rgba.png",
        "object_00_whole.png",
        "summary.json",
    ]
    assert len(json.loads((out / "summary.json").read_text())["objects"]) == 1


def test_files_of_one_object_appear_together_or_not_at_all(tmp_path, monkeypatch):
    """A disk that fills up on the third of four files leaves none of them (and no temporary file)."""
    from p2g3d import io

    real_fdopen, opened = os.fdopen, []

    def fdopen_until_the_disk_is_full(handle, mode):
        opened.append(handle)
        if len(opened) == 3:
            os.close(handle)
            raise OSError(28, "No space left on device")
        return real_fdopen(handle, mode)

    monkeypatch.setattr(io.os, "fdopen", fdopen_until_the_disk_is_full)
    with pytest.raises(OSError, match="No space"):
        io.write_files_atomic({tmp_path / f"part{i}.png": b"data" for i in range(4)})
    assert list(tmp_path.iterdir()) == []


def test_outputs_follow_the_umask(tmp_path):
    from p2g3d.io import save_png, write_files_atomic

    old = os.umask(0o022)
    try:
        save_png(tmp_path / "a.png", np.zeros((2, 2), np.uint8))
        write_files_atomic({tmp_path / "b.bin": b"x"})
    finally:
        os.umask(old)
    assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {"0o644"}


def test_quiet_completion_prints_nothing(tiny_pipeline, capsys):
    from p2g3d.completer import AmodalCompleter

    completer = AmodalCompleter(tiny_pipeline, num_samples=1, num_inference_steps=3)
    tiny_pipeline.set_progress_bar_config(disable=False)
    mask = np.zeros((32, 32), bool)
    mask[4:20, 4:20] = True
    completer(np.full((32, 32, 3), 200, np.uint8), mask, show_progress=False)
    assert capsys.readouterr().err == ""
