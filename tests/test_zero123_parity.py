"""Parity with the official Zero-1-to-3 code on the tiny reference bundle (tolerances from its README)."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
from parity_helpers import StepRecorder, max_abs
from safetensors.torch import load_file

from p2g3d import Zero123Pipeline
from p2g3d.checkpoint import load_lightning_state_dict
from p2g3d.pipelines.image_processing import clip_pixel_values, preprocess_image, to_uint8
from p2g3d.pipelines.zero123 import relative_pose_embedding

SINGLE_CALL_TOL = 1e-4
LATENT_TOL = 1e-3
IMAGE_TOL = 1e-4
CASES = {"a": 3.0, "b": 1.0}
POSE_1 = (15.0, 45.0, 0.0)
POSE_2 = (-20.0, -90.0, 0.3)


@pytest.fixture(scope="module")
def expected(z123_reference):
    return load_file(z123_reference / "zero123_tiny_expected.safetensors")


@pytest.fixture(scope="module")
def pipe(converted_z123):
    pipeline = Zero123Pipeline.from_pretrained(converted_z123)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture(scope="module")
def source(z123_reference):
    return PIL.Image.open(z123_reference / "input_object.png")


def test_preprocessing_and_pose(source, expected):
    image = preprocess_image(source, 64, 64)
    assert max_abs(image, expected["input_image"]) == 0.0
    assert max_abs(clip_pixel_values(image), expected["clip_pixel_values"]) <= 1e-5
    assert max_abs(relative_pose_embedding(*POSE_1), expected["pose_T"]) == 0.0
    assert max_abs(relative_pose_embedding(*POSE_2), expected["pose2_T"]) == 0.0
    both = relative_pose_embedding([POSE_1[0], POSE_2[0]], [POSE_1[1], POSE_2[1]], [POSE_1[2], POSE_2[2]])
    assert max_abs(both, torch.cat([expected["pose_T"], expected["pose2_T"]])) == 0.0


def test_conditioning_matches(pipe, expected):
    image = expected["input_image"]
    assert max_abs(pipe.encode_clip_embedding(image), expected["clip_embedding"]) <= SINGLE_CALL_TOL
    assert max_abs(pipe.encode_context(image, expected["pose_T"]), expected["context"]) <= SINGLE_CALL_TOL
    assert max_abs(pipe.encode_context(image, expected["pose2_T"]), expected["context_pose2"]) <= SINGLE_CALL_TOL
    two_views = pipe.encode_context(image, torch.cat([expected["pose_T"], expected["pose2_T"]]))
    assert max_abs(two_views, torch.cat([expected["context"], expected["context_pose2"]])) <= SINGLE_CALL_TOL
    assert max_abs(pipe.encode_concat_latents(image), expected["c_concat"]) <= SINGLE_CALL_TOL


def test_eps_at_both_poses_and_negative_control(pipe, expected):
    z_t, t = expected["z_t"], expected["t"]
    eps = lambda context, concat, scale: pipe.predict_noise(z_t, t, context, concat, scale)  # noqa: E731
    assert max_abs(eps(expected["context"], expected["c_concat"], 1.0), expected["eps_cond"]) <= SINGLE_CALL_TOL
    assert (
        max_abs(eps(expected["context_pose2"], expected["c_concat"], 1.0), expected["eps_cond_pose2"])
        <= SINGLE_CALL_TOL
    )
    assert max_abs(eps(expected["uc_context"], expected["uc_c_concat"], 1.0), expected["eps_uncond"]) <= SINGLE_CALL_TOL
    assert max_abs(eps(expected["context"], expected["c_concat"], 3.0), expected["eps_cfg_batched"]) <= SINGLE_CALL_TOL
    cond = eps(expected["context"], expected["c_concat"], 1.0)
    assert (cond - expected["eps_cond_nonema"]).norm() / expected["eps_cond_nonema"].norm() > 0.1


@pytest.mark.parametrize("case", sorted(CASES))
def test_sampling_step_by_step(pipe, source, expected, z123_reference, case):
    record = StepRecorder()
    final = pipe(
        source,
        *POSE_1,
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
    for ours in (to_uint8(image)[0], np.asarray(PIL.Image.open(z123_reference / f"output_{case}.png"))):
        differing = np.abs(ours.astype(int) - expected[f"{case}.image_uint8"].numpy().astype(int))
        assert differing.max() <= 1 and (differing > 0).sum() <= 10


def test_several_views_in_one_call_equal_single_calls(pipe, source, expected):
    x_T = torch.cat([expected["a.x_T"], expected["a.x_T"]])
    both = pipe(
        source,
        polar=[POSE_1[0], POSE_2[0]],
        azimuth=[POSE_1[1], POSE_2[1]],
        radius=[POSE_1[2], POSE_2[2]],
        num_inference_steps=10,
        guidance_scale=3.0,
        eta=0.0,
        latents=x_T,
        output_type="latent",
    ).images
    assert max_abs(both[:1], expected["a.latent"]) <= LATENT_TOL
    single_pose2 = pipe(
        source,
        *POSE_2,
        num_inference_steps=10,
        guidance_scale=3.0,
        eta=0.0,
        latents=expected["a.x_T"],
        output_type="latent",
    ).images
    assert max_abs(both[1:], single_pose2) <= 1e-4


def test_converter_detects_the_family_and_takes_ema(z123_reference, converted_z123):
    import json

    assert json.loads((converted_z123 / "model_index.json").read_text())["_class_name"] == "Zero123Pipeline"
    assert json.loads((converted_z123 / "conversion.json").read_text())["family"] == "zero123"
    state_dict = load_lightning_state_dict(z123_reference / "zero123_tiny.ckpt")
    pipe = Zero123Pipeline.from_pretrained(converted_z123)
    assert pipe.unet.config.in_channels == 8 and pipe.cc_projection.config.in_features == 36
    assert torch.equal(pipe.unet.conv_in.weight.detach(), state_dict["model_ema.diffusion_modelinput_blocks00weight"])


def test_community_diffusers_layout_loads_without_running_its_code(converted_z123, tmp_path, source, expected):
    """The published ``kxic/zero123-*`` folders: Zero1to3StableDiffusionPipeline, a cc_projection class from a
    pipeline file that is not importable, unused safety_checker / feature_extractor, .bin projection weights."""
    import json
    import shutil

    from safetensors.torch import load_file

    folder = tmp_path / "zero123-community"
    shutil.copytree(converted_z123, folder)
    index = json.loads((folder / "model_index.json").read_text())
    index.update(
        _class_name="Zero1to3StableDiffusionPipeline",
        cc_projection=["pipeline_zero1to3", "CCProjection"],
        safety_checker=[None, None],
        feature_extractor=["transformers", "CLIPImageProcessor"],
        requires_safety_checker=False,
    )
    (folder / "model_index.json").write_text(json.dumps(index))
    weights = folder / "cc_projection" / "diffusion_pytorch_model.safetensors"
    torch.save(load_file(weights), folder / "cc_projection" / "diffusion_pytorch_model.bin")
    weights.unlink()
    (folder / "cc_projection" / "config.json").write_text('{"_class_name": "CCProjection"}')

    pipe = Zero123Pipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    final = pipe(
        source,
        *POSE_1,
        num_inference_steps=10,
        guidance_scale=3.0,
        eta=0.0,
        latents=expected["a.x_T"],
        output_type="latent",
    ).images
    assert max_abs(final, expected["a.latent"]) <= LATENT_TOL
