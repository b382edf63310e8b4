"""Pure functions: gray rules, voting, agreement, framing round trips."""

from __future__ import annotations

import numpy as np
import pytest

from p2g3d.framing import frame_image, frame_mask, make_frame, unframe_image, unframe_mask
from p2g3d.masks import amodal_mask_from_whole, attached_parts, majority_vote, mask_iou, sample_agreement, to_gray


def test_gray_rules_weigh_channels_as_opencv():
    red = np.array([[[255, 0, 0]]], dtype=np.uint8)
    blue = np.array([[[0, 0, 255]]], dtype=np.uint8)
    assert to_gray(red, "rgb")[0, 0] == 76 and to_gray(blue, "rgb")[0, 0] == 29  # 0.299 R, 0.114 B
    assert to_gray(red, "official")[0, 0] == 29 and to_gray(blue, "official")[0, 0] == 76  # swapped
    white = np.full((2, 2, 3), 255, dtype=np.uint8)
    assert not amodal_mask_from_whole(white).any()
    almost_white = np.full((1, 1, 3), 250, dtype=np.uint8)
    assert amodal_mask_from_whole(almost_white)[0, 0]  # gray <= 250 is object


def test_gray_rejects_bad_input():
    with pytest.raises(ValueError, match="rule"):
        to_gray(np.zeros((1, 1, 3), np.uint8), "bgr")
    with pytest.raises(ValueError, match="uint8"):
        to_gray(np.zeros((1, 1, 3), np.float32))


def test_majority_vote_is_strict():
    masks = np.array([[[1, 1, 0, 0]], [[1, 0, 1, 0]], [[1, 0, 0, 0]], [[1, 1, 0, 0]]], dtype=bool)
    np.testing.assert_array_equal(majority_vote(masks), [[True, False, False, False]])  # 2 of 4 is no majority
    np.testing.assert_array_equal(majority_vote(masks[:3]), [[True, False, False, False]])
    with pytest.raises(ValueError):
        majority_vote(np.zeros((0, 2, 2), bool))


def test_only_parts_attached_to_the_visible_mask_are_kept():
    visible = np.zeros((12, 12), bool)
    visible[4:8, 2:5] = True
    mask = np.zeros((12, 12), bool)
    mask[4:9, 4:9] = True  # the completion, overlapping the visible part
    mask[9, 3] = True  # diagonal neighbour of the completion: attached
    specks = np.zeros((12, 12), bool)
    specks[0:2, 0:2] = specks[10:12, 10:12] = True  # corner specks
    kept = attached_parts(mask | specks, visible)
    np.testing.assert_array_equal(kept, mask | visible)
    split = np.zeros((12, 12), bool)
    split[:, 0] = split[:, 11] = True  # an object cut in two by an occluder: both visible parts are kept
    np.testing.assert_array_equal(attached_parts(np.zeros((12, 12), bool), split), split)


def test_agreement():
    a = np.zeros((4, 4), bool)
    a[:2] = True
    b = np.zeros((4, 4), bool)
    b[:1] = True
    assert mask_iou(a, a) == 1.0 and mask_iou(a, b) == 0.5 and mask_iou(~a & a, ~a & a) == 1.0
    np.testing.assert_allclose(sample_agreement(np.stack([a, b]), a), [1.0, 0.5])


@pytest.mark.parametrize("framing", ["squash", "pad"])
@pytest.mark.parametrize("shape", [(40, 40), (30, 70), (90, 20)])
def test_frame_then_unframe_keeps_the_frame(framing, shape):
    height, width = shape
    frame = make_frame(height, width, 64, framing)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros(shape, bool)
    mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    assert frame_image(image, frame).shape == (64, 64, 3)
    framed_mask = frame_mask(mask, frame)
    assert framed_mask.shape == (64, 64)
    back = unframe_mask(framed_mask, frame)
    assert back.shape == shape and mask_iou(back, mask) > 0.8
    assert unframe_image(frame_image(image, frame), frame).shape == (height, width, 3)


def test_identity_when_already_at_size():
    frame = make_frame(64, 64, 64, "squash")
    image = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    np.testing.assert_array_equal(unframe_image(frame_image(image, frame), frame), image)


def test_pad_keeps_aspect_and_pads_white():
    frame = make_frame(20, 40, 40, "pad")
    assert frame.square == (40, 40) and frame.box == (0, 10, 40, 30)
    framed = frame_image(np.zeros((20, 40, 3), np.uint8), frame)
    assert (framed[:8] == 255).all() and (framed[12:28] == 0).all()
    with pytest.raises(ValueError, match="framing"):
        make_frame(20, 40, 40, "crop")


@pytest.mark.parametrize("rule", ["rgb", "official"])
def test_masks_read_on_device_equal_the_numpy_rule(rule):
    import torch

    from p2g3d.masks import amodal_masks_on_device

    images = np.random.default_rng(0).integers(240, 256, (3, 9, 11, 3), dtype=np.uint8)  # around the threshold
    on_device = amodal_masks_on_device(torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), rule)
    np.testing.assert_array_equal(on_device.numpy(), amodal_mask_from_whole(images, rule))
    with pytest.raises(ValueError, match="uint8"):
        amodal_masks_on_device(torch.zeros(1, 3, 4, 4), rule)
