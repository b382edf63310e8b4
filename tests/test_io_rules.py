"""The one mask rule and image coercion: the same answer from files, arrays, PIL images, tensors and pipelines."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from p2g3d.io import as_cutout, as_image, as_mask, load_cutout, load_image, load_mask, object_masks, save_png
from p2g3d.pipelines.image_processing import preprocess_mask

MASK = np.zeros((6, 9), bool)
MASK[1:4, 2:7] = True


@pytest.mark.parametrize(
    "value",
    [
        MASK,
        MASK.astype(np.uint8),
        MASK.astype(np.uint8) * 255,
        MASK.astype(np.float32),
        MASK.astype(np.int64) * 255,
        MASK[None],
        MASK[..., None],
        torch.from_numpy(MASK),
        torch.from_numpy(MASK.astype(np.float32)),
        PIL.Image.fromarray(MASK.astype(np.uint8) * 255),
        PIL.Image.fromarray(MASK),
    ],
)
def test_every_binary_encoding_is_the_same_mask(value):
    np.testing.assert_array_equal(as_mask(value), MASK)
    if getattr(value, "shape", (6, 9))[-1] == 9:  # pipelines take (H, W), (B, H, W) or (B, 1, H, W) batches
        np.testing.assert_array_equal(preprocess_mask(value, 6, 9)[0, 0].numpy() > 0, MASK)


@pytest.mark.parametrize("value", [MASK * 0.7, MASK.astype(np.uint8) * 128, np.where(MASK, 3, 0)])
def test_non_binary_masks_are_refused_everywhere(value, tmp_path):
    with pytest.raises(ValueError, match="binary"):
        as_mask(value)
    with pytest.raises(ValueError, match="binary"):
        preprocess_mask(value, 6, 9)
    if value.dtype == np.uint8:
        save_png(tmp_path / "m.png", value)
        with pytest.raises(ValueError, match="binary"):
            load_mask(tmp_path / "m.png")


def test_alpha_carries_the_mask_of_cutouts_and_alpha_mask_files(tmp_path):
    rgba = np.zeros((6, 9, 4), np.uint8)
    rgba[..., :3] = (20, 200, 40)
    rgba[..., 3] = np.where(MASK, 200, 100)  # soft alpha: >= 128 is the object
    rgb, mask = as_cutout(rgba)
    np.testing.assert_array_equal(mask, MASK)
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 9, 3)
    save_png(tmp_path / "cut.png", rgba)
    np.testing.assert_array_equal(load_cutout(tmp_path / "cut.png")[1], MASK)
    np.testing.assert_array_equal(load_mask(tmp_path / "cut.png"), MASK)  # constant colour: the alpha is the mask
    with pytest.raises(ValueError, match="no alpha"):
        as_cutout(PIL.Image.fromarray(rgba[..., :3]))


def test_images_from_every_source_agree():
    image = np.random.default_rng(0).integers(0, 256, (6, 9, 3), dtype=np.uint8)
    for value in (image, image / 255.0, PIL.Image.fromarray(image), torch.from_numpy(image).permute(2, 0, 1)):
        np.testing.assert_array_equal(as_image(value), image)
    with pytest.raises(ValueError, match="finite"):
        as_image(np.full((2, 2, 3), np.nan))
    with pytest.raises(ValueError, match="8-bit"):
        as_image(PIL.Image.new("I;16", (4, 4)))


def test_object_masks_forms():
    labels = np.zeros((6, 9), np.int32)
    labels[MASK] = 3
    labels[5, 0] = 8
    assert [label for label, _ in object_masks(labels, 6, 9)] == [3, 8]
    assert len(object_masks(MASK[None], 6, 9)) == 1
    assert len(object_masks([MASK, MASK], 6, 9)) == 2
    with pytest.raises(ValueError, match="empty list"):
        object_masks([], 6, 9)


def test_cmyk_images_are_read_as_rgb(tmp_path):
    PIL.Image.new("CMYK", (5, 4), (0, 255, 255, 0)).save(tmp_path / "red.jpg")
    image = load_image(tmp_path / "red.jpg")
    assert image.shape == (4, 5, 3) and image[..., 0].min() > 200 and image[..., 1:].max() < 60
