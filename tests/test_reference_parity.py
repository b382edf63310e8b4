"""Parity with the official pix2gestalt code on the tiny reference bundle (tolerances from its README)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from parity_helpers import StepRecorder, max_abs
from safetensors.torch import load_file

from p2g3d import Pix2GestaltPipeline
from p2g3d.masks import amodal_mask_from_whole, to_gray
from p2g3d.pipelines.image_processing import clip_pixel_values, preprocess_image, preprocess_mask, to_uint8

SINGLE_CALL_TOL = 1e-4
LATENT_TOL = 1e-3
IMAGE_TOL = 1e-4
CASES = {"a": 2.0, "b": 1.0}


@pytest.fixture(scope="module")
def expected(p2g_reference):
    return load_file(p2g_reference / "pix2gestalt_tiny_expected.safetensors")


@pytest.fixture(scope="module")
def pipe(converted_tiny):
    pipeline = Pix2GestaltPipeline.from_pretrained(converted_tiny)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def inputs(p2g_reference):
    return PIL.Image.open(p2g_reference / "input_scene.png"), PIL.Image.open(p2g_reference / "input_visible_mask.png")


def test_preprocessing_matches(inputs, expected):
    scene, mask = inputs
    image = preprocess_image(scene, 64, 64)
    assert max_abs(image, expected["input_image"]) == 0.0
    assert max_abs(preprocess_mask(mask, 64, 64), expected["input_visible_mask"]) == 0.0
    assert max_abs(clip_pixel_values(image), expected["clip_pixel_values"]) <= 1e-5


def test_conditioning_matches(pipe, expected):
    image = expected["input_image"]
    assert max_abs(pipe.encode_clip_embedding(image), expected["clip_embedding"]) <= SINGLE_CALL_TOL
    assert max_abs(pipe.encode_context(image), expected["context"]) <= SINGLE_CALL_TOL
    concat = pipe.encode_concat_latents(image, expected["input_visible_mask"])
    assert max_abs(concat, expected["c_concat"]) <= SINGLE_CALL_TOL


def test_ema_eps_matches_and_raw_weights_do_not(pipe, expected):
    z_t, t = expected["z_t"], expected["t"]
    eps_cond = pipe.predict_noise(z_t, t, expected["context"], expected["c_concat"], 1.0)
    eps_uncond = pipe.predict_noise(z_t, t, expected["uc_context"], expected["uc_c_concat"], 1.0)
    eps_cfg = pipe.predict_noise(z_t, t, expected["context"], expected["c_concat"], 2.0)
    assert max_abs(eps_cond, expected["eps_cond"]) <= SINGLE_CALL_TOL
    assert max_abs(eps_uncond, expected["eps_uncond"]) <= SINGLE_CALL_TOL
    assert max_abs(eps_cfg, expected["eps_cfg_batched"]) <= SINGLE_CALL_TOL
    # Negative control: the raw (non-EMA) weights give clearly different eps.
    relative = (eps_cond - expected["eps_cond_nonema"]).norm() / expected["eps_cond_nonema"].norm()
    assert relative > 0.1


@pytest.mark.parametrize("case", sorted(CASES))
def test_sampling_step_by_step(pipe, inputs, expected, case):
    scene, mask = inputs
    record = StepRecorder()
    final = pipe(
        scene,
        mask,
        num_inference_steps=10,
        guidance_scale=CASES[case],
        eta=0.0,
        latents=expected[f"{case}.x_T"],
        output_type="latent",
        callback_on_step_end=record,
        callback_on_step_end_tensor_inputs=record.tensor_inputs,
    ).images
    assert record.timesteps == expected[f"{case}.step_timesteps"].tolist()
    assert max_abs(torch.stack(record.latents), expected[f"{case}.latents_per_step"]) <= LATENT_TOL
    assert max_abs(torch.stack(record.pred_x0), expected[f"{case}.pred_x0_per_step"]) <= LATENT_TOL
    assert max_abs(final, expected[f"{case}.latent"]) <= LATENT_TOL

    decoded_raw = pipe.vae.decode(final * (1 / pipe.vae.config.scaling_factor)).sample
    assert max_abs(decoded_raw, expected[f"{case}.decoded_raw"]) <= IMAGE_TOL
    image = pipe.decode_latents(final)
    assert max_abs(image, expected[f"{case}.image"]) <= IMAGE_TOL

    image_uint8 = to_uint8(image)[0].astype(int)
    reference_uint8 = expected[f"{case}.image_uint8"].numpy().astype(int)
    differing = np.abs(image_uint8 - reference_uint8)
    assert differing.max() <= 1 and (differing > 0).sum() <= 10


@pytest.mark.parametrize("case", sorted(CASES))
def test_pil_output_equals_official_png(pipe, inputs, expected, p2g_reference, case):
    scene, mask = inputs
    output = pipe(
        scene, mask, num_inference_steps=10, guidance_scale=CASES[case], eta=0.0, latents=expected[f"{case}.x_T"]
    ).images[0]
    official = np.asarray(PIL.Image.open(p2g_reference / f"output_{case}.png")).astype(int)
    differing = np.abs(np.asarray(output).astype(int) - official)
    assert differing.max() <= 1 and (differing > 0).sum() <= 10


@pytest.mark.parametrize("case", sorted(CASES))
def test_mask_rules_match_official(expected, p2g_reference, case):
    image = expected[f"{case}.image_uint8"].numpy()
    assert np.array_equal(to_gray(image, "official"), expected[f"{case}.gray_official_bgr2gray"].numpy())
    assert np.array_equal(to_gray(image, "rgb"), expected[f"{case}.gray_rgb2gray"].numpy())
    for rule, name in (("official", "official"), ("rgb", "rgb")):
        mask = amodal_mask_from_whole(image, rule)
        assert np.array_equal(mask, expected[f"{case}.amodal_mask_{name}"].numpy() == 255)
        png = np.asarray(PIL.Image.open(p2g_reference / f"amodal_mask_{case}_{name}.png"))
        assert np.array_equal(mask, png == 255)
    assert not np.array_equal(amodal_mask_from_whole(image, "official"), amodal_mask_from_whole(image, "rgb"))


def test_official_schedule_tensors(pipe, expected):
    from p2g3d.pipelines.official_ddim import official_ddim_timesteps

    assert official_ddim_timesteps(10) == expected["a.step_timesteps"].tolist()
    scheduler = pipe.scheduler
    ascending = expected["a.ddim_timesteps"]
    assert torch.allclose(scheduler.alphas_cumprod[ascending], expected["a.ddim_alphas"], atol=1e-6)
    assert torch.isclose(scheduler.final_alpha_cumprod, expected["a.ddim_alphas_prev"][0], atol=1e-6)
