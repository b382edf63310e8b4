"""`p2g3d batch`: inputs, resumability, bad items, changed settings, COCO output, and a SIGKILL in the middle."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from conftest import require_extra

from p2g3d.cli import main
from p2g3d.io import decode_segmentation
from p2g3d.jobs.batch import read_items

H, W = 30, 44


def write_folder(folder: Path, count: int = 4) -> Path:
    """``count`` images with one or two visible masks each, and one item whose mask is empty (a bad item)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for index in range(count):
        PIL.Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(folder / f"img{index}.png")
        for k in range(1 + index % 2):
            mask = np.zeros((H, W), np.uint8)
            mask[4 + 10 * k : 14 + 10 * k, 5 + index : 25 + index] = 255
            PIL.Image.fromarray(mask).save(folder / f"img{index}_mask{k}.png")
    PIL.Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(folder / "broken.png")
    PIL.Image.fromarray(np.zeros((H, W), np.uint8)).save(folder / "broken_mask0.png")
    return folder


def batch_argv(source: Path, output: Path, model: Path) -> list[str]:
    return [
        "batch",
        str(source),
        "-o",
        str(output),
        "--model",
        str(model),
        "--steps",
        "2",
        "--samples",
        "2",
        "--device",
        "cpu",
        "--seed",
        "3",
    ]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_inputs_of_three_kinds(tmp_path):
    folder = write_folder(tmp_path / "folder", count=2)
    assert [(i.item_id, len(i.masks)) for i in read_items(folder)] == [("broken", 1), ("img0", 1), ("img1", 2)]
    manifest = tmp_path / "folder" / "list.jsonl"
    manifest.write_text('{"image": "img1.png", "masks": ["img1_mask0.png", "img1_mask1.png"], "id": "a b"}\n\n')
    (item,) = read_items(manifest)
    assert item.item_id == "a_b" and item.masks[1] == tmp_path / "folder" / "img1_mask1.png"
    coco = {
        "images": [{"id": 7, "file_name": "img0.png", "height": H, "width": W}],
        "annotations": [{"id": 70, "image_id": 7, "inmodal_seg": [[5, 4, 25, 4, 25, 14, 5, 14]], "segmentation": []}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    (item,) = read_items(tmp_path / "coco.json", tmp_path / "folder")
    assert item.labels == (70,) and item.size == (H, W) and dict(item.image_info)["id"] == 7
    with pytest.raises(ValueError, match="--images"):
        read_items(tmp_path / "coco.json")


def test_batch_resumes_records_bad_items_and_writes_coco(tiny_model_dir, tmp_path, capsys):
    source = write_folder(tmp_path / "data")
    output = tmp_path / "out"
    assert main(batch_argv(source, output, tiny_model_dir)) == 3  # finished, one item failed
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert (summary["done"], summary["failed"], summary["objects"], summary["processed"]) == (4, 1, 6, 4)
    last = captured.err.strip().splitlines()[-1]  # after the progress bar
    assert last == f"p2g3d batch: 1 of 5 items failed; the reasons are in {output / 'errors.jsonl'}"
    errors = [json.loads(line) for line in (output / "errors.jsonl").read_text().splitlines()]
    assert [e["id"] for e in errors] == ["broken"] and "empty" in errors[0]["reason"]
    results = [json.loads(line) for line in (output / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == ["img0", "img1", "img2", "img3"]
    coco = json.loads((output / "amodal_annotations.json").read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == 6
    first = coco["annotations"][0]
    amodal = decode_segmentation(first["segmentation"], H, W)
    png = np.asarray(PIL.Image.open(output / "items" / "img0" / "object_00_amodal_mask.png")) > 0
    np.testing.assert_array_equal(amodal, png)
    assert first["area"] == int(amodal.sum()) and 0 <= first["score"] <= 1
    before = tree(output)
    assert main(batch_argv(source, output, tiny_model_dir)) == 3  # everything settled: nothing is redone
    assert json.loads(capsys.readouterr().out)["skipped"] == 5  # 4 done, 1 failed with its reason
    assert tree(output) == before
    changed = batch_argv(source, output, tiny_model_dir)
    changed[changed.index("--steps") + 1] = "3"
    assert main(changed) == 2
    assert "other settings" in capsys.readouterr().err and tree(output) == before


@pytest.mark.parametrize("engine", ["in-process", "ray"])
def test_killed_batch_reruns_to_the_same_outputs(engine, tiny_model_dir, tmp_path, monkeypatch):
    """SIGKILL once the first item is finished, rerun the same command, compare with an uninterrupted run."""
    if engine == "ray":
        require_extra("ray", "ray is not installed (optional extra p2g3d[ray])")
        monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    source = write_folder(tmp_path / "data", count=6)
    argv = batch_argv(source, tmp_path / "killed", tiny_model_dir) + ["--engine", engine]
    process = subprocess.Popen(
        [sys.executable, "-m", "p2g3d.cli", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "killed").glob("items/*/done.json")) and time.monotonic() < deadline:
        time.sleep(0.002)
    process.kill()
    process.wait()
    assert list((tmp_path / "killed").glob("items/*/done.json")), "the run ended before it could be killed"
    assert subprocess.run([sys.executable, "-m", "p2g3d.cli", *argv], capture_output=True).returncode == 3
    straight = batch_argv(source, tmp_path / "straight", tiny_model_dir) + ["--engine", engine]
    assert subprocess.run([sys.executable, "-m", "p2g3d.cli", *straight], capture_output=True).returncode == 3
    killed, straight = tree(tmp_path / "killed"), tree(tmp_path / "straight")
    assert killed.keys() == straight.keys() and not [name for name in killed if Path(name).name.startswith(".")]
    batch_record = "batch.json"
    for name in killed:
        if name != batch_record:
            assert killed[name] == straight[name], name


def test_ray_engine_gives_the_outputs_of_the_in_process_engine(tiny_model_dir, tmp_path, monkeypatch, capsys):
    """Ray Data with a local actor pool: the same files as the in-process engine run as a command (a small,
    CPU-only cluster). Both sides run in fresh processes (Ray's actors, the command), like users run them."""
    ray = require_extra("ray", "ray is not installed (optional extra p2g3d[ray])")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    source = write_folder(tmp_path / "data", count=3)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2**20)
        assert main(batch_argv(source, tmp_path / "ray", tiny_model_dir) + ["--engine", "ray", "--pack", "2"]) == 3
    finally:
        ray.shutdown()
    summary = json.loads(capsys.readouterr().out)
    assert (summary["done"], summary["failed"], summary["processed"]) == (3, 1, 3)
    local = batch_argv(source, tmp_path / "local", tiny_model_dir) + ["--pack", "2"]
    assert subprocess.run([sys.executable, "-m", "p2g3d.cli", *local], capture_output=True).returncode == 3
    ray_files, local_files = tree(tmp_path / "ray"), tree(tmp_path / "local")
    assert ray_files.keys() == local_files.keys()
    assert [name for name in ray_files if ray_files[name] != local_files[name]] == []


def test_accelerate_engine_in_one_process_matches_in_process(tiny_model_dir, tmp_path):
    """The accelerate engine's sharding and main-process indexes, run as one process (no launcher needed)."""
    from p2g3d.completer import AmodalCompleter
    from p2g3d.jobs.batch import run_batch

    source = write_folder(tmp_path / "data", count=2)
    settings = {"num_inference_steps": 2, "num_samples": 1}

    def make_completer():
        return AmodalCompleter.from_pretrained(str(tiny_model_dir), device="cpu", **settings)

    summary = run_batch(source, tmp_path / "acc", make_completer, {"settings": settings}, seed=1, engine="accelerate")
    assert (summary["done"], summary["failed"]) == (2, 1)
    run_batch(source, tmp_path / "local", make_completer, {"settings": settings}, seed=1)
    assert tree(tmp_path / "acc") == tree(tmp_path / "local")


def test_items_travel_as_json_unchanged(tmp_path):
    """The Ray engine's rows carry the items themselves, as JSON: folder and COCO items come back equal."""
    from p2g3d.jobs.batch import BatchItem

    folder = write_folder(tmp_path / "folder", count=2)
    coco = {
        "images": [{"id": 7, "file_name": "img0.png", "height": H, "width": W}],
        "annotations": [{"id": 70, "image_id": 7, "inmodal_seg": {"size": [H, W], "counts": "a1b2"}}],
    }
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    for item in [*read_items(folder), *read_items(tmp_path / "coco.json", folder)]:
        assert BatchItem.from_json(item.to_json()) == item


def test_a_bad_item_in_a_pack_is_recorded_and_the_others_finish(tiny_model_dir, tmp_path):
    """A mask that vanishes at the model's size only shows inside the packed call; its item is recorded as failed
    and the other items of the pack are completed (before, the whole run stopped)."""
    source = tmp_path / "data"
    source.mkdir()
    rng = np.random.default_rng(1)
    for name, box in (("good", (slice(40, 140), slice(30, 160))), ("speck", (slice(5, 6), slice(7, 8)))):
        PIL.Image.fromarray(rng.integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(source / f"{name}.png")
        mask = np.zeros((200, 200), np.uint8)
        mask[box] = 255
        PIL.Image.fromarray(mask).save(source / f"{name}_mask0.png")
    argv = batch_argv(source, tmp_path / "out", tiny_model_dir)
    assert main([*argv, "--pack", "2"]) == 3
    assert (tmp_path / "out" / "items" / "good" / "done.json").is_file()
    error = json.loads((tmp_path / "out" / "items" / "speck" / "error.json").read_text())
    assert "vanishes" in error["reason"]


def test_complete_and_batch_give_the_same_object_the_same_completion(tiny_model_dir, tmp_path):
    """The one seed rule: the item id of an image file is its stem in both commands."""
    source = write_folder(tmp_path / "data", count=2)
    common = ["--model", str(tiny_model_dir), "--steps", "2", "--samples", "2", "--device", "cpu", "--seed", "3"]
    mask = str(source / "img1_mask1.png")
    argv = ["complete", str(source / "img1.png"), "--mask", str(source / "img1_mask0.png"), "--mask", mask]
    assert main([*argv, "-o", str(tmp_path / "one"), *common]) == 0
    assert main(batch_argv(source, tmp_path / "many", tiny_model_dir)) == 3  # the broken item of write_folder
    for index in (0, 1):
        name = f"object_{index:02d}_amodal_mask.png"
        single = np.asarray(PIL.Image.open(tmp_path / "one" / name))
        batched = np.asarray(PIL.Image.open(tmp_path / "many" / "items" / "img1" / name))
        np.testing.assert_array_equal(single, batched)
