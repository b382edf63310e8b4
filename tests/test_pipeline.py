"""What is particular to Pix2GestaltPipeline (the shared diffusers contract: test_pipeline_contract.py)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DDIMScheduler

from p2g3d import OfficialDDIMScheduler
from p2g3d.pipelines.image_processing import preprocess_image, preprocess_mask
from p2g3d.pipelines.official_ddim import official_ddim_timesteps

SIZE = 32


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[8:20, 6:18] = True
    return image, mask


def run(pipe, image, mask, **kwargs):
    settings = dict(num_inference_steps=4, guidance_scale=2.0, eta=0.0, generator=torch.Generator().manual_seed(0))
    settings.update(kwargs)
    return pipe(image=image, visible_mask=mask, **settings).images


def test_input_types_agree(tiny_pipeline, scene):
    image, mask = scene
    from_numpy = run(tiny_pipeline, image, mask, output_type="latent")
    from_pil = run(tiny_pipeline, PIL.Image.fromarray(image), PIL.Image.fromarray(mask), output_type="latent")
    as_tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    from_tensor = run(tiny_pipeline, as_tensor, torch.from_numpy(mask), output_type="latent")
    torch.testing.assert_close(from_numpy, from_pil)
    torch.testing.assert_close(from_numpy, from_tensor)


def test_guidance_below_one_still_applies_cfg(tiny_pipeline, scene):
    image, mask = scene
    pipe = tiny_pipeline
    scene_tensor = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
    mask_tensor = torch.from_numpy(mask)[None, None].float().expand(-1, 3, -1, -1) * 2 - 1
    context = pipe.encode_context(scene_tensor)
    concat = pipe.encode_concat_latents(scene_tensor, mask_tensor)
    z = torch.randn(1, 4, 4, 4)
    t = torch.tensor([501])
    cond = pipe.predict_noise(z, t, context, concat, 1.0)
    uncond = pipe.predict_noise(z, t, torch.zeros_like(context), torch.zeros_like(concat), 1.0)
    for scale in (0.5, 3.0):
        torch.testing.assert_close(pipe.predict_noise(z, t, context, concat, scale), uncond + scale * (cond - uncond))


def test_ddim_runs_the_official_timesteps(tiny_pipeline, scene):
    image, mask = scene
    seen = []
    run(
        tiny_pipeline,
        image,
        mask,
        num_inference_steps=7,
        callback_on_step_end=lambda p, i, t, kw: seen.append(int(t)) or kw,
    )
    assert seen == official_ddim_timesteps(7)
    assert len(seen) == len(range(0, 1000, 1000 // 7)) - 1


def test_a_user_configured_ddim_scheduler_keeps_its_timesteps(tiny_pipeline, scene):
    """A stock DDIMScheduler the user swaps in runs its own timesteps; the official list is opt-in again."""
    image, mask = scene
    original = tiny_pipeline.scheduler
    record = lambda seen: lambda p, i, t, kw: seen.append(int(t)) or kw  # noqa: E731
    try:
        tiny_pipeline.scheduler = DDIMScheduler.from_config(original.config, timestep_spacing="trailing")
        trailing = []
        run(tiny_pipeline, image, mask, num_inference_steps=5, callback_on_step_end=record(trailing))
        assert trailing == [999, 799, 599, 399, 199]
        tiny_pipeline.scheduler = OfficialDDIMScheduler.from_config(tiny_pipeline.scheduler.config)
        official = []
        run(tiny_pipeline, image, mask, num_inference_steps=5, callback_on_step_end=record(official))
        assert official == official_ddim_timesteps(5)
    finally:
        tiny_pipeline.scheduler = original


def test_inputs_are_resized_to_the_working_size(tiny_pipeline):
    image = np.full((48, 80, 3), 200, dtype=np.uint8)
    mask = np.zeros((48, 80), dtype=bool)
    mask[10:30, 20:50] = True
    assert run(tiny_pipeline, image, mask, output_type="pt").shape == (1, 3, SIZE, SIZE)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(output_type="jpg"), ValueError, "output_type"),
        (dict(num_inference_steps=1), ValueError, "num_inference_steps"),
        (dict(num_images_per_prompt=0), ValueError, "num_images_per_prompt"),
        (dict(height=30), ValueError, "multiples of 8"),
        (dict(image="scene.png"), TypeError, "PIL image"),
        (dict(image=np.zeros((4, 4), dtype=np.uint8)), ValueError, r"\(H, W, 3\)"),
        (dict(image=torch.full((3, 8, 8), 2.0)), ValueError, r"\[0, 1\]"),
        (dict(callback_on_step_end_tensor_inputs=["noise"]), ValueError, "callback tensors"),
    ],
)
def test_bad_arguments(tiny_pipeline, scene, kwargs, error, match):
    image, mask = scene
    arguments = {"image": image, "visible_mask": mask, **kwargs}
    image, mask = arguments.pop("image"), arguments.pop("visible_mask")
    with pytest.raises(error, match=match):
        run(tiny_pipeline, image, mask, **arguments)


def test_mismatched_batch_sizes(tiny_pipeline, scene):
    image, mask = scene
    with pytest.raises(ValueError, match="2 images but 3 visible masks"):
        run(tiny_pipeline, np.stack([image, image]), np.stack([mask, mask, mask]))


def test_a_scene_encoded_once_conditions_like_per_pair_encoding(tiny_pipeline, scene):
    """The completer encodes each scene once (CLIP, VAE) and each mask once; that is the per-pair conditioning up
    to float round-off, and the pipeline samples the same from it."""
    image, mask = scene
    masks = np.stack([mask, np.roll(mask, 5, axis=1)])
    context, concat = tiny_pipeline.encode_scene_objects(image, masks)
    assert context.shape[0] == 1 and concat.shape[0] == 2
    scene_tensor = preprocess_image(image, SIZE, SIZE)
    for k in range(2):
        per_pair = tiny_pipeline.encode_concat_latents(scene_tensor, preprocess_mask(masks[k], SIZE, SIZE))
        torch.testing.assert_close(concat[k : k + 1], per_pair, atol=1e-5, rtol=0)
    torch.testing.assert_close(context, tiny_pipeline.encode_context(scene_tensor), atol=1e-6, rtol=0)
    noise = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(1))
    given = tiny_pipeline(
        context=context, concat_latents=concat[:1], num_inference_steps=4, eta=0.0, latents=noise, output_type="latent"
    ).images
    from_inputs = run(tiny_pipeline, image, mask, latents=noise, output_type="latent")
    torch.testing.assert_close(given, from_inputs, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="either image and visible_mask, or context and concat_latents"):
        tiny_pipeline(image=image, visible_mask=mask, context=context, concat_latents=concat[:1])
    with pytest.raises(ValueError, match="either image"):
        tiny_pipeline(context=context)
