"""AmodalCompleter on a tiny pipeline: frames, masks, seeds, batching, bad input."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch

from p2g3d.completer import AmodalCompleter
from p2g3d.masks import attached_parts

HEIGHT, WIDTH = 37, 53


@pytest.fixture(scope="module")
def completer(tiny_pipeline):
    return AmodalCompleter(tiny_pipeline, num_samples=3, num_inference_steps=4, batch_size=4)


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    first = np.zeros((HEIGHT, WIDTH), bool)
    first[5:20, 4:25] = True
    second = np.zeros((HEIGHT, WIDTH), bool)
    second[15:35, 30:50] = True
    return image, first, second


def test_results_live_in_the_original_frame(completer, scene):
    image, first, second = scene
    objects = completer(image, [first, second], seed=3, show_progress=False)
    assert [o.label for o in objects] == [0, 1]
    for obj, visible in zip(objects, (first, second)):
        assert obj.whole_rgb.shape == (HEIGHT, WIDTH, 3) and obj.whole_rgba.shape == (HEIGHT, WIDTH, 4)
        assert obj.sample_masks.shape == (3, HEIGHT, WIDTH) and obj.sample_images.shape == (3, HEIGHT, WIDTH, 3)
        assert obj.amodal_mask.dtype == np.bool_ and (obj.amodal_mask | ~visible).all()  # contains the visible mask
        np.testing.assert_array_equal(obj.occluded_mask, obj.amodal_mask & ~visible)
        np.testing.assert_array_equal(obj.whole_rgba[..., 3] == 255, obj.amodal_mask)
        np.testing.assert_array_equal(obj.whole_rgb, obj.sample_images[obj.best_sample])
        assert 0.0 <= obj.confidence <= 1.0
        with pytest.raises(ValueError):
            obj.amodal_mask[0, 0] = True  # results are read-only


def test_seeds_repeat_and_batching_does_not_matter(tiny_pipeline, completer, scene):
    image, first, second = scene
    a = completer(image, [first, second], seed=7, show_progress=False)
    single = AmodalCompleter(tiny_pipeline, num_samples=3, num_inference_steps=4, batch_size=1)
    b = single(image, [first, second], seed=7, show_progress=False)
    for x, y in zip(a, b):
        assert np.abs(x.sample_images.astype(int) - y.sample_images).max() <= 1
    other = completer(image, [first], seed=8, show_progress=False)
    assert not np.array_equal(a[0].sample_images, other[0].sample_images)


def test_label_map_and_input_kinds(completer, scene):
    image, first, second = scene
    labels = np.zeros((HEIGHT, WIDTH), np.int32)
    labels[first] = 4
    labels[second & ~first] = 9
    from_labels = completer(image, labels, seed=1, show_progress=False)
    assert [o.label for o in from_labels] == [4, 9]
    rgba = np.dstack([image, np.full((HEIGHT, WIDTH), 255, np.uint8)])
    gray = image[..., 0]
    for variant in (PIL.Image.fromarray(image), rgba, gray, torch.from_numpy(image).permute(2, 0, 1) / 255.0):
        result = completer(variant, first, seed=1, show_progress=False)
        assert len(result) == 1 and result[0].amodal_mask.shape == (HEIGHT, WIDTH)
    uint8_result = completer(image, first.astype(np.uint8) * 255, seed=1, show_progress=False)[0]
    bool_result = completer(image, first, seed=1, show_progress=False)[0]
    np.testing.assert_array_equal(uint8_result.amodal_mask, bool_result.amodal_mask)


def test_pad_framing(tiny_pipeline, scene):
    image, first, _ = scene
    padded = AmodalCompleter(tiny_pipeline, num_samples=2, num_inference_steps=4, framing="pad")
    (obj,) = padded(image, first, show_progress=False)
    assert obj.amodal_mask.shape == (HEIGHT, WIDTH)


@pytest.mark.parametrize(
    "mask, match",
    [
        (np.zeros((HEIGHT, WIDTH), bool), "empty"),
        (np.ones((HEIGHT + 1, WIDTH), bool), "is 38x53 but the image is 37x53"),
        (np.full((HEIGHT, WIDTH), 7, np.float32), "binary"),
        ([], "empty list"),
    ],
)
def test_bad_masks(completer, scene, mask, match):
    with pytest.raises(ValueError, match=match):
        completer(scene[0], mask, show_progress=False)


def test_bad_settings(tiny_pipeline):
    with pytest.raises(ValueError, match="framing"):
        AmodalCompleter(tiny_pipeline, framing="stretch")
    with pytest.raises(ValueError, match="mask_rule"):
        AmodalCompleter(tiny_pipeline, mask_rule="bgr")
    with pytest.raises(ValueError, match="num_samples"):
        AmodalCompleter(tiny_pipeline, num_samples=0)


def test_from_pretrained_and_devices(tiny_model_dir, tmp_path):
    completer = AmodalCompleter.from_pretrained(tiny_model_dir, device="cpu", dtype="fp32", num_samples=2)
    assert completer.pipeline.device.type == "cpu" and completer.size == 32
    with pytest.raises(ValueError, match="unknown device"):
        AmodalCompleter.from_pretrained(tiny_model_dir, device="gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            AmodalCompleter.from_pretrained(tiny_model_dir, device="cuda")
    with pytest.raises(ValueError, match="dtype"):
        AmodalCompleter.from_pretrained(tiny_model_dir, device="cpu", dtype="fp8")
    with pytest.raises(ValueError, match="compile_mode"):
        AmodalCompleter.from_pretrained("/no/such/model", device="cpu", compile_mode="fastest")  # before loading


def test_mask_stacks_of_any_depth_including_one(completer, scene):
    """A (K, H, W) stack is K objects, also for K == 1 (it used to be rejected)."""
    image, first, second = scene
    (one,) = completer(image, first[None], seed=2, show_progress=False)
    (single,) = completer(image, first, seed=2, show_progress=False)
    np.testing.assert_array_equal(one.amodal_mask, single.amodal_mask)
    two = completer(image, np.stack([first, second]).astype(np.uint8), seed=2, show_progress=False)
    assert [o.label for o in two] == [0, 1]
    np.testing.assert_array_equal(two[0].amodal_mask, single.amodal_mask)


def test_settings_are_validated_before_anything_runs(tiny_pipeline, tiny_model_dir, scene):
    for bad in (
        {"guidance_scale": float("nan")},
        {"guidance_scale": float("inf")},
        {"eta": -3.0},
        {"num_inference_steps": 0},
    ):
        with pytest.raises(ValueError):
            AmodalCompleter(tiny_pipeline, **bad)
        with pytest.raises(ValueError):
            AmodalCompleter.from_pretrained(tiny_model_dir, device="cpu", **bad)
    completer = AmodalCompleter(tiny_pipeline, num_inference_steps=4)
    with pytest.raises(ValueError, match="num_samples"):
        completer(scene[0], scene[1], num_samples=0, show_progress=False)
    with pytest.raises(ValueError, match="finite"):
        completer(np.full((HEIGHT, WIDTH, 3), np.nan, np.float32), scene[1], show_progress=False)


def test_images_packed_together_give_what_each_gives_alone(tiny_pipeline, scene):
    """complete_many packs (image, object, sample) triples of several images into shared batches; each image gets
    the result of its own call with the same seed and item."""
    image, first, second = scene
    other = np.ascontiguousarray(image[::-1])
    completer = AmodalCompleter(tiny_pipeline, num_samples=2, num_inference_steps=3, batch_size=3)
    packed = completer.complete_many([(image, [first, second], "a"), (other, first, 6)], seed=5, show_progress=False)
    alone = [
        completer(image, [first, second], seed=5, item="a", show_progress=False),
        completer(other, first, seed=5, item=6, show_progress=False),
    ]
    assert [len(objects) for objects in packed] == [2, 1]
    for together, single in zip(packed, alone):
        for a, b in zip(together, single):
            assert np.abs(a.sample_images.astype(int) - b.sample_images).max() <= 1


def test_detached_specks_are_dropped_unless_asked_to_keep_them(tiny_pipeline, scene):
    image, first, _ = scene
    kept = AmodalCompleter(tiny_pipeline, num_samples=2, num_inference_steps=3, keep_detached=True)
    cleaned = AmodalCompleter(tiny_pipeline, num_samples=2, num_inference_steps=3)
    (raw,) = kept(image, first, seed=5, show_progress=False)
    (obj,) = cleaned(image, first, seed=5, show_progress=False)
    for raw_mask, mask in zip(raw.sample_masks, obj.sample_masks):
        np.testing.assert_array_equal(mask, attached_parts(raw_mask, first))
    np.testing.assert_array_equal(raw.sample_images, obj.sample_images)  # only the mask read changes


def test_a_compiled_unet_gives_the_eager_results_and_a_deviation_is_refused(scene):
    from tiny_models import make_tiny_pipeline

    from p2g3d.acceleration import compile_unet

    image, first, _ = scene
    eager = AmodalCompleter(make_tiny_pipeline(), num_samples=2, num_inference_steps=3)
    pipeline = make_tiny_pipeline()
    with pytest.raises(ValueError, match="deviates from eager"):
        compile_unet(pipeline, backend="aot_eager", tolerance=-1.0)  # any deviation is too much
    assert isinstance(pipeline.unet, torch.nn.Module) and not hasattr(pipeline.unet, "_orig_mod")  # eager kept
    assert compile_unet(pipeline, backend="aot_eager") <= 1e-3
    assert hasattr(pipeline.unet, "_orig_mod")
    (a,) = eager(image, first, seed=2, show_progress=False)
    (b,) = AmodalCompleter(pipeline, num_samples=2, num_inference_steps=3)(image, first, seed=2, show_progress=False)
    assert np.abs(a.sample_images.astype(int) - b.sample_images).max() <= 1
    with pytest.raises(ValueError, match="compile mode"):
        compile_unet(pipeline, mode="fast")


def test_device_postprocessing_agrees_with_the_cpu_path(tiny_pipeline, scene):
    """The kornia path (used on GPUs) gives the same masks as PIL up to resampling at their edges."""
    image, first, second = scene
    on_cpu = AmodalCompleter(tiny_pipeline, num_samples=3, num_inference_steps=3, device_postprocess=False)
    on_device = AmodalCompleter(tiny_pipeline, num_samples=3, num_inference_steps=3, device_postprocess=True)
    for a, b in zip(
        on_cpu(image, [first, second], seed=4, show_progress=False),
        on_device(image, [first, second], seed=4, show_progress=False),
    ):
        assert b.sample_images.shape == a.sample_images.shape and b.sample_images.dtype == np.uint8
        assert np.abs(a.sample_images.astype(int) - b.sample_images).mean() < 2.0
        for mask_a, mask_b in zip(a.sample_masks, b.sample_masks):
            assert (mask_a != mask_b).mean() < 0.03
    assert not AmodalCompleter(tiny_pipeline).device_postprocess  # CPU pipelines keep the PIL path by default


def test_one_seed_rule_an_object_keeps_its_samples_alone_or_with_others(tiny_pipeline, scene):
    """Sample j of object i of item k comes from sample_seed(seed, k, i, j): the second object completed alone with
    object_ids=[1] gets what it gets beside the first; another item id gives other samples."""
    from p2g3d.sampling import derive_seed, item_key, sample_seed

    image, first, second = scene
    completer = AmodalCompleter(tiny_pipeline, num_samples=2, num_inference_steps=3)
    both = completer(image, [first, second], seed=3, item="photo", show_progress=False)
    alone = completer(image, second, seed=3, item="photo", object_ids=[1], show_progress=False)
    assert np.abs(both[1].sample_images.astype(int) - alone[0].sample_images).max() <= 1
    other = completer(image, second, seed=3, item="other", object_ids=[1], show_progress=False)
    assert np.abs(other[0].sample_images.astype(int) - alone[0].sample_images).max() > 1
    assert sample_seed(3, "photo", 1, 0) == derive_seed(3, item_key("photo"), 1, 0)
    assert item_key(7) == 7 and item_key("photo") == item_key("photo") != item_key("Photo")


@pytest.mark.parametrize("name", ["official-ddim", "ddim-trailing", "dpmpp-2m", "unipc", "euler"])
def test_the_sampler_is_a_setting_and_the_given_pipeline_keeps_its_own(tiny_pipeline, scene, name):
    """Each solver runs with guidance through the same pipeline loop; the pipeline handed in keeps the official
    DDIM; 'official-ddim' is exactly the default path."""
    from p2g3d import OfficialDDIMScheduler

    image, first, _ = scene
    default = AmodalCompleter(tiny_pipeline, num_samples=1, num_inference_steps=4)
    chosen = AmodalCompleter(tiny_pipeline, num_samples=1, num_inference_steps=4, scheduler=name)
    (result,) = chosen(image, first, seed=2, show_progress=False)
    assert isinstance(tiny_pipeline.scheduler, OfficialDDIMScheduler) and chosen.pipeline.unet is tiny_pipeline.unet
    assert result.amodal_mask.shape == first.shape
    (reference,) = default(image, first, seed=2, show_progress=False)
    same = np.array_equal(result.sample_images, reference.sample_images)
    assert same == (name == "official-ddim")
    with pytest.raises(ValueError, match="scheduler must be one of"):
        AmodalCompleter(tiny_pipeline, scheduler="heun")
