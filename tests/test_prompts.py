"""Input preparation with SAM: prompts -> visible masks, on a tiny random SAM built from configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from p2g3d.prompts import Prompt, VisibleMaskPrompter

H, W = 48, 80


@pytest.fixture(scope="module")
def prompter():
    from tiny_models import make_tiny_sam

    return VisibleMaskPrompter(*make_tiny_sam())


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)


def test_masks_come_back_in_the_image_frame_with_the_best_score(prompter, image):
    """The kept mask is the best scored of SAM's three, post-processed to the original size exactly as the
    processor does it when called directly."""
    click = Prompt(points=((20, 30),))
    found = prompter(image, click)
    assert found.mask.shape == (H, W) and found.mask.dtype == bool and found.prompt is click
    inputs = prompter.processor(
        images=image, input_points=[[[[20.0, 30.0]]]], input_labels=[[[1]]], return_tensors="pt"
    )
    with torch.no_grad():
        output = prompter.model(**inputs, multimask_output=True)
    masks = prompter.processor.image_processor.post_process_masks(
        output.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"]
    )[0][0]
    best = int(output.iou_scores[0, 0].argmax())
    np.testing.assert_array_equal(found.mask, masks[best].numpy())
    assert found.score == pytest.approx(float(output.iou_scores[0, 0, best]), abs=1e-5)


def test_the_object_and_its_occluders_in_one_call(prompter, image):
    prompts = [
        Prompt(points=((20, 30),)),
        Prompt(box=(40, 5, 70, 40)),
        Prompt(points=((60, 10), (5, 5)), labels=(1, 0)),
    ]
    found = prompter.masks(image, prompts)
    assert [f.prompt for f in found] == prompts and all(f.mask.shape == (H, W) for f in found)
    single = prompter(image, prompts[1])
    np.testing.assert_array_equal(single.mask, found[1].mask)  # the image is encoded once for all prompts


@pytest.mark.parametrize(
    "prompt, message",
    [
        (Prompt(), "at least one point or a box"),
        (Prompt(points=((80, 10),)), "outside the 80x48 image"),
        (Prompt(points=((1, 1),), labels=(2,)), "one 0 or 1 per point"),
        (Prompt(box=(30, 5, 10, 20)), "x0 < x1"),
    ],
)
def test_bad_prompts_are_refused(prompter, image, prompt, message):
    with pytest.raises(ValueError, match=message):
        prompter(image, prompt)


def test_missing_weights_are_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="SAM weights .* could not be loaded.*draw or upload the visible mask"):
        VisibleMaskPrompter.from_pretrained(tmp_path / "no-sam")
