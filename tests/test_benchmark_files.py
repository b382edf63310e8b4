"""Amodal benchmark files in the layouts users hold (amodalAPI COCO-A / BSDS-A, KINS, COCOA-cls): detection,
malformed and fully hidden regions, and baselines checked against an independent pycocotools computation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import PIL.Image
import pytest
from pycocotools import mask as coco_mask

from p2g3d.cli import main
from p2g3d.evaluation.amodal import invisible_iou, occluded_share, occlusion_bin
from p2g3d.evaluation.examples import AnnotationExamples
from p2g3d.evaluation.readers import detect_layout, read_annotation_file

H, W = 40, 60


def rectangle(x0, y0, x1, y1) -> list[float]:
    return [x0, y0, x1, y0, x1, y1, x0, y1]


def rle(x0, y0, x1, y1) -> dict:
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = 1
    encoded = coco_mask.encode(np.asfortranarray(mask))
    return {"size": [H, W], "counts": encoded["counts"].decode("ascii")}


def write_image(folder: Path) -> None:
    rng = np.random.default_rng(0)
    PIL.Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(folder / "img.png")


AMODALAPI = {
    "images": [{"id": 7, "file_name": "img.png", "height": H, "width": W}],
    "annotations": [
        {
            "image_id": 7,
            "id": 1,
            "regions": [
                # a cup, half hidden: amodal 20 x 10, visible its left half
                {
                    "id": 11,
                    "segmentation": rectangle(5, 5, 25, 15),
                    "visible_mask": rle(5, 5, 15, 15),
                    "invisible_mask": rle(15, 5, 25, 15),
                    "order": 2,
                    "occlude_rate": 0.5,
                    "isStuff": 0,
                    "name": "cup",
                },
                # a book, in full view: no visible_mask, the visible mask is the amodal one
                {
                    "id": 12,
                    "segmentation": rectangle(30, 20, 50, 35),
                    "order": 1,
                    "occlude_rate": 0.0,
                    "isStuff": 0,
                    "name": "book",
                },
                # a malformed polygon (two points): skipped and counted
                {"id": 13, "segmentation": [1, 2, 3, 4], "order": 3, "isStuff": 0, "name": "bad"},
                # fully hidden sky: its visible mask is empty
                {
                    "id": 14,
                    "segmentation": rectangle(0, 0, 60, 4),
                    "visible_mask": rle(0, 0, 0, 0),
                    "order": 4,
                    "occlude_rate": 1.0,
                    "isStuff": 1,
                    "name": "sky",
                },
            ],
        }
    ],
}

KINS = {
    "images": [{"id": 1, "file_name": "img.png", "height": H, "width": W}],
    "annotations": [
        {
            "id": 5,
            "image_id": 1,
            "category_id": 2,
            "a_segm": [rectangle(5, 5, 25, 15)],
            "i_segm": [rectangle(5, 5, 15, 15)],
        },
        {"id": 6, "image_id": 1, "category_id": 1, "a_segm": [[1, 1, 2, 2]], "i_segm": [[1, 1, 2, 2]]},
    ],
}

COCOA_CLS = {
    "images": [{"id": 1, "file_name": "img.png", "height": H, "width": W}],
    "annotations": [
        {
            "id": 9,
            "image_id": 1,
            "category_id": 3,
            "segmentation": rectangle(5, 5, 25, 15),
            "inmodal_seg": rle(5, 5, 15, 15),
        },
    ],
}


@pytest.fixture()
def files(tmp_path) -> Path:
    write_image(tmp_path)
    for name, data in (("amodal.json", AMODALAPI), ("kins.json", KINS), ("cocoa.json", COCOA_CLS)):
        (tmp_path / name).write_text(json.dumps(data))
    return tmp_path


def test_layouts_are_detected_and_read(files):
    assert [detect_layout(d) for d in (AMODALAPI, KINS, COCOA_CLS)] == ["amodalapi", "kins", "cocoa-cls"]
    amodal = read_annotation_file(files / "amodal.json")
    assert amodal.layout == "amodalapi" and amodal.skipped == {"malformed amodal polygon": 1}
    cup, book, sky = amodal.images[0].objects
    assert (cup.category, cup.label, book.visible, sky.is_stuff) == ("cup", 11, None, True)
    kins = read_annotation_file(files / "kins.json")
    assert kins.layout == "kins" and kins.object_count == 1 and kins.skipped == {"malformed polygon": 1}
    assert read_annotation_file(files / "cocoa.json").images[0].objects[0].category == "3"
    with pytest.raises(ValueError, match="amodalapi .* kins .* cocoa-cls"):
        detect_layout({"images": [], "annotations": [{"bbox": [0, 0, 1, 1]}]})


def test_masks_and_the_empty_visible_rule(files):
    examples = AnnotationExamples(files / "amodal.json", files)
    cup, book = list(examples)
    assert (cup.amodal_mask.sum(), cup.visible_mask.sum(), cup.category) == (200, 100, "cup")
    np.testing.assert_array_equal(book.visible_mask, book.amodal_mask)  # in full view
    assert (cup.item_id, cup.object_index, book.object_index) == ("img", 0, 1)  # positions in the image
    assert examples.skipped == {"malformed amodal polygon": 1, "empty visible mask": 1}
    boxed = AnnotationExamples(files / "amodal.json", files, empty_visible="amodal-box")
    *_, sky = list(boxed)
    assert sky.visible_mask.sum() == sky.amodal_mask.sum() == 240 and boxed.replaced == {"amodal-box": 1}
    assert len(list(AnnotationExamples(files / "amodal.json", files, things_only=True))) == 2


def test_occlusion_bins_and_invisible_iou():
    visible, amodal = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    amodal[:, :2] = True
    visible[:, :1] = True
    assert occluded_share(visible, amodal) == 0.5 and occlusion_bin(0.5) == "50-100%"
    assert [occlusion_bin(s) for s in (0.0, 0.1, 0.29, 1.0)] == ["0-10%", "10-30%", "10-30%", "50-100%"]
    assert invisible_iou(visible, visible, amodal) == 0.0  # the visible mask completes nothing
    assert invisible_iou(amodal, visible, amodal) == 1.0 and invisible_iou(amodal, amodal, amodal) is None


def independent_visible_miou(data: dict) -> float:
    """The visible-mask baseline computed with pycocotools alone, following the amodalAPI rules."""
    ious = []
    for region in data["annotations"][0]["regions"]:
        if len(region["segmentation"]) < 6:
            continue
        amodal = coco_mask.decode(coco_mask.merge(coco_mask.frPyObjects([region["segmentation"]], H, W))) > 0
        visible = coco_mask.decode(region["visible_mask"]) > 0 if "visible_mask" in region else amodal
        if visible.any():
            ious.append((visible & amodal).sum() / (visible | amodal).sum())
    return 100.0 * float(np.mean(ious))


def test_eval_amodal_on_an_amodalapi_file_matches_pycocotools(files, tiny_model_dir, capsys):
    argv = ["eval-amodal", "--annotations", str(files / "amodal.json"), "--images", str(files)]
    argv += ["--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2", "--samples", "2"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["layout"] == "amodalapi" and result["objects"] == 2 and result["occluded_objects"] == 1
    assert result["miou_visible"] == pytest.approx(independent_visible_miou(AMODALAPI)) == 75.0
    assert result["miou_inv_visible"] == 0.0
    assert result["skipped"] == {"malformed amodal polygon": 1, "empty visible mask": 1}
    assert set(result["by_occlusion"]) == {"0-10%", "50-100%"} and set(result["by_category"]) == {"book", "cup"}
    assert result["by_category"]["cup"]["miou_visible"] == pytest.approx(50.0)
    for layout in ("kins", "cocoa"):
        argv[2] = str(files / f"{layout}.json")
        assert main(argv) == 0
        assert json.loads(capsys.readouterr().out)["miou_visible"] == pytest.approx(50.0)


def test_the_report_folder_resumes_to_the_numbers_of_an_uninterrupted_run(files, tiny_model_dir, capsys):
    """-o writes the page, tables, plots and the best/worst sheet; a run cut short (here: one image's records
    deleted, as a kill before its last write leaves it) continues to the numbers of an uninterrupted run; a preset
    fixes the samples and is recorded; other settings in the same folder are refused."""
    base = ["eval-amodal", "--annotations", str(files / "amodal.json"), "--images", str(files)]
    base += ["--model", str(tiny_model_dir), "--device", "cpu", "--steps", "2", "--preset", "pix2gestalt-best-of-3"]
    assert main([*base, "-o", str(files / "straight")]) == 0
    straight = json.loads(capsys.readouterr().out)
    report = files / "straight"
    expected = {"index.html", "report.md", "result.json", "objects.jsonl", "evaluation.json", "best_worst.png", "items"}
    assert expected | {"miou_by_occlusion.png", "miou_by_samples.png"} == {p.name for p in report.iterdir()}
    assert (
        "<table>" in (report / "index.html").read_text()
        and "| By occlusion rate" not in (report / "report.md").read_text()
    )
    assert "## By occlusion rate" in (report / "report.md").read_text()
    assert straight["samples"] == 3 and straight["protocol"]["name"] == "pix2gestalt-best-of-3"
    assert straight["miou_best_by_n"][-1] == pytest.approx(straight["miou_best_of_n"])
    assert straight["miou_vote_by_n"][-1] == pytest.approx(straight["miou_vote"])
    import shutil

    shutil.copytree(report, files / "resumed")
    (files / "resumed" / "items" / "img" / "records.json").unlink()
    capsys.readouterr()
    assert main([*base, "-o", str(files / "resumed")]) == 0
    assert json.loads(capsys.readouterr().out) == straight
    assert main([*base, "-o", str(files / "resumed"), "--seed", "1"]) == 2
    assert "other settings (seed: was 0, now 1)" in capsys.readouterr().err


@pytest.mark.parametrize("layout", ["cocoa-cls", "kins", "amodalapi"])
def test_a_dataset_folder_written_in_each_layout_reads_back(tmp_path, layout):
    """The same objects through every reader: RLE layouts exactly, polygon layouts up to their traced edges."""
    from p2g3d.datasets import GestaltDataset, write_dataset
    from p2g3d.evaluation.writers import write_annotation_file
    from p2g3d.masks import mask_iou
    from p2g3d.training.composite import composite_samples

    folder = write_dataset(composite_samples(seed=3, count=4, image_size=48), tmp_path / "data")
    write_annotation_file(folder, layout, tmp_path / "ann.json")
    examples = list(AnnotationExamples(tmp_path / "ann.json", folder))
    dataset = GestaltDataset(folder)
    assert [e.item_id for e in examples] == [Path(n).stem for n in dataset.names]
    for example, sample in zip(examples, dataset):
        if layout == "cocoa-cls":
            np.testing.assert_array_equal(example.amodal_mask, sample.whole_mask)
        assert mask_iou(example.amodal_mask, sample.whole_mask) > 0.85
        assert mask_iou(example.visible_mask, sample.visible_mask) > (0.999 if layout != "kins" else 0.8)


def test_eval_amodal_resumes_and_the_engines_agree(tmp_path, tiny_model_dir, capsys):
    """Four images: two records deleted (a killed run) are redone and the others reused, to the numbers of an
    uninterrupted run; the accelerate engine (one process, no launcher) and packs of 3 give the same numbers."""
    import shutil

    from p2g3d.datasets import write_dataset
    from p2g3d.training.composite import composite_samples

    folder = write_dataset(composite_samples(seed=5, count=4, image_size=48), tmp_path / "data")
    base = ["eval-amodal", "--data", str(folder), "--model", str(tiny_model_dir), "--device", "cpu"]
    base += ["--steps", "2", "--samples", "2", "--pack", "2"]  # packs [0, 1] and [2, 3]: a pack is redone whole
    assert main([*base, "-o", str(tmp_path / "straight")]) == 0
    straight = json.loads(capsys.readouterr().out)
    assert straight["objects"] == 4
    shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
    kept = sorted((tmp_path / "resumed" / "items").iterdir())
    for item in kept[:2]:
        (item / "records.json").unlink()
    before = {item.name: (item / "records.json").stat().st_mtime_ns for item in kept[2:]}
    assert main([*base, "-o", str(tmp_path / "resumed")]) == 0
    assert json.loads(capsys.readouterr().out) == straight
    assert before == {item.name: (item / "records.json").stat().st_mtime_ns for item in kept[2:]}  # reused
    assert main([*base[:-1], "3", "--engine", "accelerate"]) == 2  # the processes need a shared report folder
    assert "needs -o REPORT" in capsys.readouterr().err
    assert main([*base[:-1], "3", "--engine", "accelerate", "-o", str(tmp_path / "accelerate")]) == 0
    accelerated = json.loads(capsys.readouterr().out)
    assert accelerated["miou_vote"] == pytest.approx(straight["miou_vote"], abs=0.5)
    assert accelerated["miou_visible"] == straight["miou_visible"]


def test_evaluate_amodal_packs_objects_without_changing_their_noise(tmp_path, tiny_model_dir, capsys):
    """In-process packs (the benchmarks' way) score as one object per call does and as ``eval-amodal`` does; the
    baselines exactly, the samples up to batch-size rounding. A pack below 1 is refused."""
    from p2g3d import AmodalCompleter
    from p2g3d.datasets import write_dataset
    from p2g3d.errors import InputError
    from p2g3d.evaluation.amodal import evaluate_amodal
    from p2g3d.evaluation.examples import FolderExamples
    from p2g3d.training.composite import composite_samples

    folder = write_dataset(composite_samples(seed=5, count=5, image_size=48), tmp_path / "data")
    completer = AmodalCompleter.from_pretrained(str(tiny_model_dir), device="cpu", num_samples=2, num_inference_steps=2)
    alone = evaluate_amodal(completer, FolderExamples(folder))
    packed = evaluate_amodal(completer, FolderExamples(folder), pack=3)  # packs of 3 and 2
    assert packed["objects"] == alone["objects"] == 5
    assert packed["miou_visible"] == alone["miou_visible"]
    assert packed["miou_vote"] == pytest.approx(alone["miou_vote"], abs=0.5)
    argv = ["eval-amodal", "--data", str(folder), "--model", str(tiny_model_dir), "--device", "cpu"]
    assert main([*argv, "--steps", "2", "--samples", "2", "--pack", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["miou_vote"] == pytest.approx(packed["miou_vote"], abs=1e-6)
    for bad in (0, 1.5, True):
        with pytest.raises(InputError, match="pack must be an integer >= 1"):
            evaluate_amodal(completer, FolderExamples(folder), pack=bad)
