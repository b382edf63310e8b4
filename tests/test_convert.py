"""Converter: full-size key layout, safe unpickling, EMA selection, folder output."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import diffusers
import pytest
import torch
from conftest import REFERENCE_DIR

from p2g3d import OfficialDDIMScheduler, Pix2GestaltPipeline
from p2g3d.checkpoint import UnsafeCheckpointError, load_lightning_state_dict
from p2g3d.convert import ConversionError, build_components, convert_checkpoint, convert_state_dict

KEYS_JSON = REFERENCE_DIR.parent / "docs" / "pix2gestalt_ckpt_keys.json"


@pytest.fixture(scope="module")
def full_size_meta_state_dict():
    if not KEYS_JSON.is_file():
        pytest.skip(f"{KEYS_JSON} not found")
    shapes = json.loads(KEYS_JSON.read_text())
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def test_full_size_checkpoint_maps_onto_full_size_components(full_size_meta_state_dict):
    converted = convert_state_dict(full_size_meta_state_dict)  # the packaged official yaml
    modules = build_components(converted)  # strict: every key present, every shape equal, nothing unexpected
    unet, clip = modules["unet"], modules["image_encoder"]
    assert unet.config.in_channels == 12 and unet.config.cross_attention_dim == 768
    assert list(unet.config.block_out_channels) == [320, 640, 1280, 1280] and unet.config.attention_head_dim == 8
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(859.5e6, rel=1e-3)
    assert (clip.config.hidden_size, clip.config.num_hidden_layers, clip.config.num_attention_heads) == (1024, 24, 16)
    assert (clip.config.patch_size, clip.config.image_size, clip.config.projection_dim) == (14, 224, 768)
    assert modules["cc_projection"].config.in_features == 768
    assert list(modules["vae"].config.block_out_channels) == [128, 256, 512, 512]
    # Every checkpoint key is either consumed or in a named ignored group.
    used = (
        len(converted.vae_state_dict)
        + 2  # cc_projection
        + sum(1 for k in full_size_meta_state_dict if k.startswith("cond_stage_model.model.visual."))
        + sum(1 for k in full_size_meta_state_dict if k.startswith("model_ema.diffusion_model"))
    )
    assert used + sum(converted.ignored_key_counts.values()) == len(full_size_meta_state_dict)
    assert converted.ignored_key_counts == {
        "raw (non-EMA) UNet": 686,
        "schedule buffers": 12,
        "EMA bookkeeping": 2,
        "CLIP text leftovers": 6,
    }


def test_unknown_key_is_an_error(full_size_meta_state_dict):
    state_dict = dict(full_size_meta_state_dict)
    state_dict["surprise.weight"] = torch.empty(3, device="meta")
    with pytest.raises(ConversionError, match="outside the pix2gestalt layout"):
        convert_state_dict(state_dict)


def test_missing_ema_weights_is_an_error(full_size_meta_state_dict):
    state_dict = {k: v for k, v in full_size_meta_state_dict.items() if not k.startswith("model_ema.diffusion_model")}
    with pytest.raises(ConversionError, match="EMA"):
        convert_state_dict(state_dict)


def test_wrong_config_gives_clear_error(p2g_reference):
    state_dict = load_lightning_state_dict(p2g_reference / "pix2gestalt_tiny.ckpt")
    with pytest.raises(ConversionError, match="model_channels=320 but the checkpoint has 32"):
        convert_state_dict(state_dict)  # official full-size yaml for the tiny checkpoint


def test_ema_weights_are_the_ones_converted(p2g_reference, converted_tiny):
    state_dict = load_lightning_state_dict(p2g_reference / "pix2gestalt_tiny.ckpt")
    unet = Pix2GestaltPipeline.from_pretrained(converted_tiny).unet
    conv_in = unet.conv_in.weight.detach()
    assert torch.equal(conv_in, state_dict["model_ema.diffusion_modelinput_blocks00weight"])
    assert not torch.equal(conv_in, state_dict["model.diffusion_model.input_blocks.0.0.weight"])


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_checkpoint_is_refused_without_running(tmp_path, zip_format):
    marker = tmp_path / "code_ran"
    payload = {"state_dict": {"w": torch.zeros(2)}, "callbacks": _RunsCode(marker)}
    path = tmp_path / "evil.ckpt"
    torch.save(payload, path, _use_new_zipfile_serialization=zip_format)
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        load_lightning_state_dict(path)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError):
        convert_checkpoint(path, tmp_path / "out")
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_plain_pickle_with_os_system_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"cos\nsystem\n(S'touch " + str(tmp_path / "pwned").encode() + b"'\ntR.")
    with pytest.raises(UnsafeCheckpointError):
        load_lightning_state_dict(path)
    assert not (tmp_path / "pwned").exists()


def test_official_checkpoint_loads_without_pytorch_lightning(p2g_reference):
    import importlib.util

    assert importlib.util.find_spec("pytorch_lightning") is None
    with pytest.raises(pickle.UnpicklingError):  # what plain weights_only loading does with the real file
        torch.load(p2g_reference / "pix2gestalt_tiny.ckpt", weights_only=True)
    state_dict = load_lightning_state_dict(p2g_reference / "pix2gestalt_tiny.ckpt")
    assert len(state_dict) == 802


def test_converted_folder_loads_with_the_official_scheduler_and_leaves_diffusers_alone(converted_tiny):
    assert (converted_tiny / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    provenance = json.loads((converted_tiny / "conversion.json").read_text())
    assert provenance["unet_weights"] == "ema"
    index = json.loads((converted_tiny / "model_index.json").read_text())
    assert index["scheduler"] == ["p2g3d.pipelines.official_ddim", "OfficialDDIMScheduler"]
    loaded = Pix2GestaltPipeline.from_pretrained(converted_tiny)
    assert isinstance(loaded.scheduler, OfficialDDIMScheduler)
    assert not hasattr(diffusers, "Pix2GestaltPipeline") and not hasattr(diffusers, "Zero123Pipeline")


def test_fp16_conversion_and_overwrite_guard(p2g_reference, converted_tiny, tmp_path):
    source = p2g_reference / "pix2gestalt_tiny.ckpt"
    config = p2g_reference / "pix2gestalt_tiny.yaml"
    with pytest.raises(FileExistsError):
        convert_checkpoint(source, converted_tiny, config_path=config)
    output = convert_checkpoint(source, tmp_path / "fp16", config_path=config, dtype="fp16")
    pipe = Pix2GestaltPipeline.from_pretrained(output, dtype=torch.float16)
    assert pipe.unet.dtype == torch.float16
    reference = Pix2GestaltPipeline.from_pretrained(converted_tiny).unet.conv_in.weight
    assert torch.allclose(pipe.unet.conv_in.weight.float(), reference, atol=1e-2)
    assert [p.name for p in tmp_path.iterdir()] == ["fp16"]  # no staging folder left behind


def test_full_size_zero123_layout_maps_onto_full_size_components(full_size_meta_state_dict):
    """The official Zero-1-to-3 checkpoints share the layout, with an 8-channel conv_in and a 772 -> 768 projection."""
    state_dict = dict(full_size_meta_state_dict)
    for key in ("model.diffusion_model.input_blocks.0.0.weight", "model_ema.diffusion_modelinput_blocks00weight"):
        state_dict[key] = torch.empty(320, 8, 3, 3, device="meta")
    state_dict["cc_projection.weight"] = torch.empty(768, 772, device="meta")
    converted = convert_state_dict(state_dict)
    assert converted.family.name == "zero123"
    modules = build_components(converted)
    assert modules["unet"].config.in_channels == 8 and modules["cc_projection"].config.in_features == 772


def test_unknown_family_and_wrong_projection_are_errors(full_size_meta_state_dict):
    state_dict = dict(full_size_meta_state_dict)
    state_dict["model.diffusion_model.input_blocks.0.0.weight"] = torch.empty(320, 9, 3, 3, device="meta")
    with pytest.raises(ConversionError, match="9 input channels"):
        convert_state_dict(state_dict)
    state_dict = dict(full_size_meta_state_dict)
    state_dict["cc_projection.weight"] = torch.empty(768, 772, device="meta")
    with pytest.raises(ConversionError, match="cc_projection takes 772"):
        convert_state_dict(state_dict)


def test_checkpoint_without_ema_needs_an_explicit_choice(p2g_reference, tmp_path):
    """Stripping the EMA copy: refused by default; unet_weights='raw' gives the raw eps (the negative control)."""
    from safetensors.torch import load_file

    state_dict = load_lightning_state_dict(p2g_reference / "pix2gestalt_tiny.ckpt")
    raw_only = {k: v.clone() for k, v in state_dict.items() if not k.startswith("model_ema.")}
    path = tmp_path / "no_ema.ckpt"
    torch.save({"state_dict": raw_only}, path)
    config = p2g_reference / "pix2gestalt_tiny.yaml"
    with pytest.raises(ConversionError, match="--unet-weights raw"):
        convert_checkpoint(path, tmp_path / "refused", config_path=config)
    output = convert_checkpoint(path, tmp_path / "raw", config_path=config, unet_weights="raw")
    assert json.loads((output / "conversion.json").read_text())["unet_weights"] == "raw"
    expected = load_file(p2g_reference / "pix2gestalt_tiny_expected.safetensors")
    pipe = Pix2GestaltPipeline.from_pretrained(output)
    eps = pipe.predict_noise(expected["z_t"], expected["t"], expected["context"], expected["c_concat"], 1.0)
    assert (eps - expected["eps_cond_nonema"]).abs().max() <= 1e-4
