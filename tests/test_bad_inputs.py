"""Every command's bad inputs: exit status 2, one line on stderr, no traceback, nothing left behind."""

from __future__ import annotations

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
import torch

from p2g3d.cli import main
from p2g3d.datasets import GestaltSample, write_dataset

H, W = 30, 44


class RunsCode:
    """A pickle that would run a shell command when unpickled."""

    def __reduce__(self):
        return (os.system, ("touch pwned",))


def png_file(path: Path, width: int, height: int, bit_depth: int, rows: bytes) -> None:
    """A PNG written by hand (RGB), so that headers PIL would never write can be tested."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tiny_model_dir, tiny_z123_dir) -> dict[str, str]:
    root = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "scene.png")
    mask = np.zeros((H, W), np.uint8)
    mask[5:20, 5:25] = 255
    PIL.Image.fromarray(mask).save(root / "mask.png")
    PIL.Image.fromarray(np.zeros((H, W), np.uint8)).save(root / "empty.png")
    PIL.Image.fromarray(mask // 2).save(root / "soft.png")
    PIL.Image.fromarray(mask[:10, :10]).save(root / "small.png")
    (root / "notes.txt").write_text("not an image")
    (root / "truncated.png").write_bytes((root / "scene.png").read_bytes()[:60])
    png_file(root / "deep.png", W, H, 16, b"".join(b"\x00" + np.full((W, 3), 40000, ">u2").tobytes() for _ in range(H)))
    png_file(root / "huge.png", 15000, 15000, 8, b"\x00" * 64)  # the header alone claims 225 million pixels
    (root / "a_file").write_text("in the way")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "callback": RunsCode()}, root / "evil.ckpt")
    (root / "garbage.ckpt").write_bytes(b"\x00" * 100)
    (root / "mesh.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    (root / "nan.obj").write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3\nf 1 2 4\nf 1 3 4\nf 2 3 4\n")
    for name, index in (
        ("views_null", {"views": None}),
        ("views_list", [1, 2]),
        ("views_camera", {"views": [{"file": "a.png", "mask": "b.png", "camera": "front"}]}),
    ):
        (root / name).mkdir()
        (root / name / "cameras.json").write_text(json.dumps(index))
    (root / "transforms_no_mask").mkdir()
    frame = {"file_path": "scene.png", "transform_matrix": np.eye(4).tolist()}
    intrinsics = {"fl_x": 50.0, "fl_y": 50.0, "cx": W / 2, "cy": H / 2, "w": W, "h": H}
    (root / "transforms_no_mask" / "transforms.json").write_text(json.dumps({**intrinsics, "frames": [frame] * 2}))
    (root / "cocoa.json").write_text('{"images": 3}')
    (root / "no_objects.json").write_text(
        json.dumps({"images": [{"id": 1, "file_name": "scene.png", "height": H, "width": W}], "annotations": []})
    )
    (root / "images_only").mkdir()
    PIL.Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(root / "images_only" / "a.png")
    factors = [{"shape": "disc", "held_out": "none"}] * 2
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("mine")
    blank = np.zeros((32, 32, 3), np.uint8)
    write_dataset(
        [GestaltSample(blank, blank, blank[..., 0] > 0, blank[..., 0] == 0, f) for f in factors], root / "data"
    )
    paths = {
        name: str(root / name)
        for name in (
            "scene.png",
            "huge.png",
            "mask.png",
            "empty.png",
            "soft.png",
            "small.png",
            "notes.txt",
            "truncated.png",
            "deep.png",
            "a_file",
            "evil.ckpt",
            "garbage.ckpt",
            "mesh.obj",
            "nan.obj",
            "views_null",
            "views_list",
            "views_camera",
            "transforms_no_mask",
            "cocoa.json",
            "no_objects.json",
            "images_only",
            "foreign",
            "data",
        )
    }
    return {**paths, "model": str(tiny_model_dir), "z123": str(tiny_z123_dir), "root": str(root)}


def complete(p, **change):
    argv = {"image": p["scene.png"], "mask": p["mask.png"], "model": p["model"], **change}
    return ["complete", argv["image"], "--mask", argv["mask"], "--model", argv["model"], "--device", "cpu"]


CASES = {
    "complete: missing image": (lambda p: complete(p, image=p["root"] + "/nope.png"), "no such file"),
    "complete: not an image": (lambda p: complete(p, image=p["notes.txt"]), "not a readable image"),
    "complete: truncated image": (lambda p: complete(p, image=p["truncated.png"]), "not a readable image"),
    "complete: 16-bit image": (lambda p: complete(p, image=p["deep.png"]), "only 8-bit"),
    "complete: huge image": (lambda p: complete(p, image=p["huge.png"]), "too large to read"),
    "complete: missing relative model path": (
        lambda p: complete(p, model="models/pix2gestalt"),
        "neither a local model folder",
    ),
    "complete: mask of another size": (lambda p: complete(p, mask=p["small.png"]), "is 10x10 but the image is 30x44"),
    "complete: empty mask": (lambda p: complete(p, mask=p["empty.png"]), "empty"),
    "complete: soft mask": (lambda p: complete(p, mask=p["soft.png"]), "binary"),
    "complete: NaN guidance": (lambda p: complete(p) + ["--guidance", "nan"], "guidance_scale must be a finite"),
    "complete: negative eta": (lambda p: complete(p) + ["--eta", "-3"], "eta must be"),
    "complete: one step": (lambda p: complete(p) + ["--steps", "1"], "num_inference_steps"),
    "complete: zero samples": (lambda p: complete(p) + ["--samples", "0"], "num_samples"),
    "complete: missing model": (lambda p: complete(p, model=p["root"] + "/models/nope"), "model folder not found"),
    "complete: Zero-1-to-3 model": (
        lambda p: complete(p, model=p["z123"]),
        "but a Pix2GestaltPipeline model is needed",
    ),
    "complete: output is a file": (lambda p: complete(p), "exists and is not a folder"),
    "views: RGB without a mask": (lambda p: ["views", p["scene.png"], "--model", p["z123"]], "no alpha channel"),
    "views: pix2gestalt model": (
        lambda p: ["views", p["scene.png"], "--mask", p["mask.png"], "--model", p["model"]],
        "but a Zero123Pipeline",
    ),
    "image-to-3d: empty mask": (lambda p: ["image-to-3d", p["scene.png"], "--mask", p["empty.png"]], "empty"),
    "image-to-3d: mask of another size": (
        lambda p: ["image-to-3d", p["scene.png"], "--mask", p["small.png"]],
        "is 10x10",
    ),
    "image-to-3d: ground truth not a mesh": (
        lambda p: ["image-to-3d", p["scene.png"], "--mask", p["mask.png"], "--ground-truth", p["notes.txt"]],
        "not a readable mesh",
    ),
    "image-to-3d: pix2gestalt model as backend": (
        lambda p: [
            "image-to-3d",
            p["scene.png"],
            "--mask",
            p["mask.png"],
            "--backend-model",
            p["model"],
            "--device",
            "cpu",
        ],
        "but a Zero123Pipeline",
    ),
    "image-to-3d: output is a file": (
        lambda p: ["image-to-3d", p["scene.png"], "--mask", p["mask.png"]],
        "exists and is not a folder",
    ),
    "convert: missing checkpoint": (lambda p: ["convert", p["root"] + "/nope.ckpt"], "checkpoint not found"),
    "convert: not a checkpoint": (lambda p: ["convert", p["garbage.ckpt"]], "not a readable PyTorch checkpoint"),
    "convert: code in the pickle": (
        lambda p: ["convert", p["evil.ckpt"]],
        "as unsafe: it references posix.system, which is not one of the globals",
    ),
    "convert: foreign folder": (
        lambda p: ["convert", p["garbage.ckpt"], p["foreign"], "--overwrite"],
        "refusing to replace",
    ),
    "convert: the working folder": (
        lambda p: ["convert", p["garbage.ckpt"], ".", "--overwrite"],
        "refusing to replace",
    ),
    "reconstruct: no views folder": (lambda p: ["reconstruct", p["root"]], "has no cameras.json"),
    "reconstruct: views null": (lambda p: ["reconstruct", p["views_null"]], "'views' list"),
    "reconstruct: top-level list": (lambda p: ["reconstruct", p["views_list"]], "'views' list"),
    "reconstruct: camera as a string": (lambda p: ["reconstruct", p["views_camera"]], "no valid camera"),
    "reconstruct: huge resolution": (
        lambda p: ["reconstruct", p["views_list"], "--resolution", "1000"],
        "resolution must be",
    ),
    "reconstruct: option the backend lacks": (
        lambda p: ["reconstruct", p["views_list"], "--iterations", "5"],
        "does not take iterations",
    ),
    "reconstruct: negative bound": (
        lambda p: ["reconstruct", p["views_list"], "--bound", "-1"],
        "bound must be a finite number in (0, inf]",
    ),
    "reconstruct: masks out without completing": (
        lambda p: ["reconstruct", p["views_list"], "--masks-out", p["root"] + "/masks"],
        "add --complete",
    ),
    "reconstruct: transforms.json without masks": (
        lambda p: ["reconstruct", p["transforms_no_mask"], "--complete"],
        "mask_path",
    ),
    "evaluate: missing mesh": (lambda p: ["evaluate", p["root"] + "/nope.obj", p["mesh.obj"]], "mesh file not found"),
    "evaluate: not a mesh": (lambda p: ["evaluate", p["scene.png"], p["mesh.obj"]], "mesh"),
    "evaluate: NaN vertices": (lambda p: ["evaluate", p["nan.obj"], p["mesh.obj"]], "non-finite"),
    "demo: one step": (lambda p: ["demo", "--steps", "1"], "num_inference_steps"),
    "demo: output is a file": (lambda p: ["demo"], "exists and is not a folder"),
    "make-data: foreign folder": (
        lambda p: ["make-data", p["foreign"], "--count", "2", "--overwrite"],
        "refusing to replace",
    ),
    "make-data: non-empty folder": (lambda p: ["make-data", p["foreign"], "--count", "2"], "not empty"),
    "make-data: tiny images": (lambda p: ["make-data", p["root"] + "/new", "--image-size", "8"], "image_size"),
    "train: NaN learning rate": (lambda p: ["train", "--data", p["data"], "--lr", "nan"], "learning_rate"),
    "train: EMA decay above 1": (lambda p: ["train", "--data", p["data"], "--ema-decay", "2"], "ema_decay"),
    "train: no dataset": (lambda p: ["train", "--data", p["root"] + "/nope"], "not a pix2gestalt dataset folder"),
    "train: image size off the grid": (
        lambda p: ["train", "--data", p["data"], "--image-size", "63"],
        "multiple of 16",
    ),
    "eval-amodal: no data": (lambda p: ["eval-amodal"], "give exactly one"),
    "eval-amodal: unknown factor": (
        lambda p: ["eval-amodal", "--data", p["data"], "--group-by", "nosuch"],
        "'nosuch' is not a factor of the data; its factors: held_out, shape",
    ),
    "batch: missing input": (lambda p: ["batch", p["root"] + "/nope"], "no such folder or file"),
    "batch: missing --images folder": (
        lambda p: ["batch", p["no_objects.json"], "--images", p["root"] + "/nope"],
        "is not a folder",
    ),
    "batch: a COCO file without annotations": (
        lambda p: ["batch", p["no_objects.json"], "--images", p["root"]],
        "holds no object to complete",
    ),
    "batch: images without masks": (lambda p: ["batch", p["images_only"]], "holds no object to complete"),
    "make-data: huge images": (
        lambda p: ["make-data", p["root"] + "/new", "--image-size", "100000"],
        "image_size must be an int in [16, 1024]",
    ),
    "image-to-3d: too many views": (
        lambda p: ["image-to-3d", p["scene.png"], "--mask", p["mask.png"], "--views", "1000"],
        "views must be a finite integer in [1, 72]",
    ),
    "image-to-3d: shap-e offline": (
        lambda p: ["image-to-3d", p["scene.png"], "--mask", p["mask.png"], "--backend", "shap-e", "--no-complete"],
        "the Shap-E weights 'openai/shap-e-img2img' could not be loaded",
    ),
    "image-to-3d: NaN ground truth": (
        lambda p: ["image-to-3d", p["scene.png"], "--mask", p["mask.png"], "--ground-truth", p["nan.obj"]],
        "non-finite",
    ),
    "views: input elevation 95": (
        lambda p: ["views", p["scene.png"], "--mask", p["mask.png"], "--input-elevation", "95"],
        "input_elevation must be a finite number in (-90, 90)",
    ),
    "views: NaN elevation": (
        lambda p: ["views", p["scene.png"], "--mask", p["mask.png"], "--elevation", "nan"],
        "elevation must be a finite number",
    ),
    "train: output is a file": (
        lambda p: ["train", "--data", p["data"], "-o", p["a_file"]],
        "exists and is not a folder",
    ),
    "complete: 1000 samples": (lambda p: [*complete(p), "--samples", "1000"], "num_samples must be"),
    "eval-amodal: annotations without images": (
        lambda p: ["eval-amodal", "--cocoa", p["cocoa.json"]],
        "--annotations needs --images",
    ),
    "eval-amodal: not an annotation file": (
        lambda p: ["eval-amodal", "--annotations", p["cocoa.json"], "--images", p["root"]],
        "fits none of the layouts: amodalapi",
    ),
    "eval-amodal: no dataset": (
        lambda p: ["eval-amodal", "--data", p["root"] + "/nope"],
        "not a pix2gestalt dataset folder",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(case, inputs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build, message = CASES[case]
    argv = build(inputs)
    command = argv[0]
    output = tmp_path / ("mesh.glb" if command == "reconstruct" else "out")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a hub id is tried offline: no network in tests
    if case.endswith("output is a file"):
        output.write_text("in the way")
    if command in ("complete", "views", "demo", "reconstruct", "train", "image-to-3d", "batch") and "-o" not in argv:
        argv += ["-o", str(output)]
    elif command == "convert" and len(argv) == 2:
        argv.append(str(output))
    foreign_before = sorted(os.listdir(inputs["foreign"]))
    code = main(argv)
    error = capsys.readouterr().err.strip().splitlines()
    assert code == 2, error
    assert len(error) == 1 and error[0].startswith(f"p2g3d {command}: error:") and message in error[0], error
    assert "Traceback" not in error[0] and "weights_only" not in error[0] and "likely succeed" not in error[0]
    assert not output.exists() or output.is_file() or not any(output.iterdir())  # nothing half-written
    assert sorted(os.listdir(inputs["foreign"])) == foreign_before  # nothing of the user's was touched
    assert not (tmp_path / "pwned").exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "out" or not case.endswith("output is a file")]
    assert leftovers == [], leftovers  # no output, staging folder or temporary file left behind
