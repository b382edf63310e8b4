"""Composited synthetic data: held-out factors stay out of training, samples are valid pairs, seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import requires_3d
from scipy import ndimage

from p2g3d.datasets import GestaltDataset
from p2g3d.masks import amodal_mask_from_whole, mask_iou
from p2g3d.training.composite import HELD_OUT, OCCLUSION_RANGE, composite_samples, write_synthetic_dataset

pytestmark = requires_3d


@pytest.fixture(scope="module")
def train_samples():
    return list(composite_samples(seed=3, count=48, image_size=48))


def test_training_data_never_shows_a_held_out_factor(train_samples):
    for sample in train_samples:
        assert sample.factors["shape"] not in HELD_OUT["shape"], sample.factors
        assert sample.factors["background"] not in HELD_OUT["background"], sample.factors
        assert not set(sample.factors["occluders"]) & set(HELD_OUT["occluder"]), sample.factors
    shapes = {s.factors["shape"] for s in train_samples}
    backgrounds = {s.factors["background"] for s in train_samples}
    assert len(shapes) >= 8 and len(backgrounds) >= 5  # wide variety even in 48 samples


def test_held_out_samples_show_exactly_one_left_out_factor_in_turn():
    samples = list(composite_samples(seed=4, count=7, image_size=32, factors="held-out"))
    expected = [f"{factor}:{value}" for factor, values in HELD_OUT.items() for value in values]
    assert [s.factors["held_out"] for s in samples] == (expected * 2)[:7]
    for sample in samples:
        factor, value = sample.factors["held_out"].split(":")
        shown = {"shape": [sample.factors["shape"]], "background": [sample.factors["background"]]}
        assert value in shown.get(factor, sample.factors["occluders"])


def test_samples_are_occluded_pairs_at_the_model_size(train_samples):
    sizes = {tuple(s.factors["source_size"]) for s in train_samples}
    aspects = [h / w for h, w in sizes]
    assert min(aspects) < 0.8 and max(aspects) > 1.25  # any aspect ratio before the square framing
    for sample in train_samples:
        assert sample.occluded.shape == sample.whole.shape == (48, 48, 3)
        low, high = OCCLUSION_RANGE
        assert low <= sample.factors["occluded"] <= high
        # the visible mask is the unoccluded object give or take a segmenter's few pixels
        assert not (sample.visible_mask & ~ndimage.binary_dilation(sample.whole_mask, iterations=3)).any()
        assert sample.visible_mask.sum() < sample.whole_mask.sum() * 1.3
        # the whole object is painted on white, so the official gray rule reads its mask back
        assert mask_iou(amodal_mask_from_whole(sample.whole), sample.whole_mask) > 0.97


def test_same_seed_same_samples_and_the_folder_keeps_the_factors(tmp_path, train_samples):
    again = next(composite_samples(seed=3, count=1, image_size=48))
    np.testing.assert_array_equal(again.occluded, train_samples[0].occluded)
    np.testing.assert_array_equal(again.visible_mask, train_samples[0].visible_mask)
    folder = write_synthetic_dataset(tmp_path / "data", count=3, seed=3, image_size=48)
    dataset = GestaltDataset(folder)
    assert len(dataset) == 3 and dataset[2].factors == train_samples[2].factors
    np.testing.assert_array_equal(dataset[1].whole, train_samples[1].whole)


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="factors"):
        next(composite_samples(seed=0, count=1, factors="test"))
    with pytest.raises(ValueError, match="count"):
        write_synthetic_dataset(tmp_path / "x", count=0)
