"""Official pix2gestalt / Zero-1-to-3 Lightning checkpoint -> diffusers folder (safetensors).

The family is read from the checkpoint: 12 UNet input channels is pix2gestalt (``[z_t, image, mask]``), 8 is
Zero-1-to-3 (``[z_t, image]``, ``105000.ckpt``, ``zero123-xl.ckpt`` and the other official iterations).

The checkpoint is read with :func:`p2g3d.checkpoint.load_lightning_state_dict` (restricted unpickling, memory
mapped). Keys are mapped as follows:

=====================================  ==========================================================================
checkpoint                             diffusers component
=====================================  ==========================================================================
``model_ema.diffusion_model<name>``    ``unet`` (EMA weights, the ones inference uses; names with dots removed)
``first_stage_model.*``                ``vae``
``cond_stage_model.model.visual.*``    ``image_encoder`` (OpenAI CLIP -> ``CLIPVisionModelWithProjection``)
``cc_projection.*``                    ``cc_projection``
``model.diffusion_model.*``            ignored: the raw (non-EMA) training weights
schedule buffers, EMA bookkeeping,     ignored (the scheduler config carries the schedule)
CLIP text-side leftovers
=====================================  ==========================================================================

UNet and VAE key maps reuse ``diffusers.loaders.single_file_utils``. The UNet / VAE sizes come from the official
yaml (packaged as the default); CLIP width, depth, patch size and the cc_projection size are inferred from tensor
shapes. Any key outside these groups is an error, so nothing is silently dropped.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from .errors import InputError
from .io import check_output_folder, check_replaceable, publish_folder, save_json, staging_folder
from .runtime import DTYPES, torch_dtype
from .settings import UNET_WEIGHTS

if TYPE_CHECKING:  # torch, diffusers and transformers are imported where they are used, so the CLI starts fast
    import torch

logger = logging.getLogger(__name__)

__all__ = ["ConversionError", "ConvertedModel", "convert_checkpoint", "convert_state_dict", "default_config"]

RAW_UNET_PREFIX = "model.diffusion_model."
EMA_PREFIX = "model_ema."
VAE_PREFIX = "first_stage_model."
CLIP_VISUAL_PREFIX = "cond_stage_model.model.visual."
CC_PROJECTION_PREFIX = "cc_projection."
SCHEDULE_BUFFERS = frozenset(
    {
        "betas",
        "alphas_cumprod",
        "alphas_cumprod_prev",
        "sqrt_alphas_cumprod",
        "sqrt_one_minus_alphas_cumprod",
        "log_one_minus_alphas_cumprod",
        "sqrt_recip_alphas_cumprod",
        "sqrt_recipm1_alphas_cumprod",
        "posterior_variance",
        "posterior_log_variance_clipped",
        "posterior_mean_coef1",
        "posterior_mean_coef2",
    }
)
EMA_BOOKKEEPING = frozenset({"model_ema.decay", "model_ema.num_updates"})
CLIP_TEXT_LEFTOVERS = frozenset(
    {
        "cond_stage_model.model.positional_embedding",
        "cond_stage_model.model.text_projection",
        "cond_stage_model.model.logit_scale",
        "cond_stage_model.model.token_embedding.weight",
        "cond_stage_model.model.ln_final.weight",
        "cond_stage_model.model.ln_final.bias",
    }
)
CONVERTED_FOLDER_ENTRIES = {
    "model_index.json",
    "conversion.json",
    "vae",
    "image_encoder",
    "unet",
    "cc_projection",
    "scheduler",
}


@dataclass(frozen=True)
class Family:
    """A model family: UNet input channels, pose features appended to CLIP, default config, pipeline class."""

    name: str
    in_channels: int
    pose_features: int
    config_name: str
    pipeline_class_name: str


FAMILIES = {
    12: Family("pix2gestalt", 12, 0, "sd-finetune-pix2gestalt-c_concat-256.yaml", "Pix2GestaltPipeline"),
    8: Family("zero123", 8, 4, "sd-objaverse-finetune-c_concat-256.yaml", "Zero123Pipeline"),
}


class ConversionError(InputError):
    """The checkpoint does not fit the official layout (missing EMA weights, unknown keys, shape mismatch)."""


@dataclass
class ConvertedModel:
    """Diffusers configs and state dicts of every component, plus what was deliberately left out."""

    family: Family
    unet_config: dict
    unet_state_dict: dict[str, torch.Tensor]
    vae_config: dict
    vae_state_dict: dict[str, torch.Tensor]
    clip_config: dict
    clip_state_dict: dict[str, torch.Tensor]
    cc_projection_config: dict
    cc_projection_state_dict: dict[str, torch.Tensor]
    scheduler_config: dict
    unet_weights: str = "ema"
    ignored_key_counts: dict[str, int] = field(default_factory=dict)


def default_config(family: str = "pix2gestalt") -> dict:
    """The official yaml (model section) of ``family`` ("pix2gestalt" or "zero123"), as a dict."""
    by_name = {f.name: f for f in FAMILIES.values()}
    if family not in by_name:
        raise InputError(f"family must be one of {sorted(by_name)}, got {family!r}")
    return yaml.safe_load(resources.files("p2g3d.configs").joinpath(by_name[family].config_name).read_text())


def detect_family(state_dict: dict[str, torch.Tensor]) -> Family:
    """The model family of an official checkpoint, from its UNet input channels."""
    conv_in = state_dict.get(RAW_UNET_PREFIX + "input_blocks.0.0.weight")
    if conv_in is None:
        raise ConversionError(
            "checkpoint has no UNet input convolution (model.diffusion_model.input_blocks.0.0.weight)"
        )
    channels = conv_in.shape[1]
    if channels not in FAMILIES:
        raise ConversionError(f"UNet takes {channels} input channels; expected 12 (pix2gestalt) or 8 (Zero-1-to-3)")
    return FAMILIES[channels]


def _ema_unet_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """EMA UNet weights under their raw ``model.diffusion_model.*`` names.

    The EMA copy stores ``model.diffusion_model.a.b.c`` as ``model_ema.diffusion_modelabc``; names are matched
    from the raw parameter list, never by re-inserting dots.
    """
    raw_names = [key for key in state_dict if key.startswith(RAW_UNET_PREFIX)]
    if not raw_names:
        raise ConversionError("checkpoint has no model.diffusion_model.* weights: not a latent-diffusion checkpoint")
    ema_weights, missing = {}, []
    for raw_name in raw_names:
        ema_name = EMA_PREFIX + raw_name[len("model.") :].replace(".", "")
        if ema_name not in state_dict:
            missing.append(ema_name)
            continue
        ema_weight = state_dict[ema_name]
        if ema_weight.shape != state_dict[raw_name].shape:
            raise ConversionError(
                f"{ema_name} has shape {tuple(ema_weight.shape)}, raw weight {tuple(state_dict[raw_name].shape)}"
            )
        ema_weights[raw_name] = ema_weight
    if len(missing) == len(raw_names):
        raise ConversionError(
            "checkpoint holds no EMA UNet weights (model_ema.*). Inference uses the EMA weights; if this checkpoint "
            "was trained without EMA, convert its raw weights explicitly with unet_weights='raw' (--unet-weights raw)"
        )
    if missing:
        raise ConversionError(
            f"checkpoint lacks EMA weights for {len(missing)} of {len(raw_names)} UNet parameters "
            f"(first: {missing[0]}); "
            "inference needs the EMA UNet, the raw training weights give different outputs"
        )
    return ema_weights


def _clip_config(state_dict: dict[str, torch.Tensor]) -> dict:
    """``CLIPVisionConfig`` kwargs inferred from the OpenAI CLIP visual tensor shapes."""
    prefix = CLIP_VISUAL_PREFIX
    try:
        conv = state_dict[prefix + "conv1.weight"]
        positions = state_dict[prefix + "positional_embedding"].shape[0]
        projection = state_dict[prefix + "proj"]
        mlp = state_dict[prefix + "transformer.resblocks.0.mlp.c_fc.weight"]
    except KeyError as error:
        raise ConversionError(f"checkpoint lacks the CLIP vision tower key {error}") from error
    width, patch = conv.shape[0], conv.shape[-1]
    grid = round((positions - 1) ** 0.5)
    if grid * grid != positions - 1:
        raise ConversionError(f"CLIP positional embedding has {positions} rows, expected 1 + a square number")
    layer_ids = {
        int(m.group(1))
        for k in state_dict
        if (m := re.match(re.escape(prefix) + r"transformer\.resblocks\.(\d+)\.", k))
    }
    return {
        "hidden_size": width,
        "intermediate_size": mlp.shape[0],
        "projection_dim": projection.shape[1],
        "num_hidden_layers": len(layer_ids),
        "num_attention_heads": width // 64,
        "num_channels": 3,
        "image_size": grid * patch,
        "patch_size": patch,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }


def _clip_state_dict(state_dict: dict[str, torch.Tensor], num_layers: int) -> tuple[dict[str, torch.Tensor], set[str]]:
    """OpenAI CLIP visual keys -> ``CLIPVisionModelWithProjection`` keys; also returns the keys consumed."""
    p, hf = CLIP_VISUAL_PREFIX, "vision_model."
    mapping = {
        "class_embedding": hf + "embeddings.class_embedding",
        "positional_embedding": hf + "embeddings.position_embedding.weight",
        "conv1.weight": hf + "embeddings.patch_embedding.weight",
        "ln_pre.weight": hf + "pre_layrnorm.weight",
        "ln_pre.bias": hf + "pre_layrnorm.bias",
        "ln_post.weight": hf + "post_layernorm.weight",
        "ln_post.bias": hf + "post_layernorm.bias",
    }
    layer_mapping = {
        "attn.out_proj.weight": "self_attn.out_proj.weight",
        "attn.out_proj.bias": "self_attn.out_proj.bias",
        "ln_1.weight": "layer_norm1.weight",
        "ln_1.bias": "layer_norm1.bias",
        "ln_2.weight": "layer_norm2.weight",
        "ln_2.bias": "layer_norm2.bias",
        "mlp.c_fc.weight": "mlp.fc1.weight",
        "mlp.c_fc.bias": "mlp.fc1.bias",
        "mlp.c_proj.weight": "mlp.fc2.weight",
        "mlp.c_proj.bias": "mlp.fc2.bias",
    }
    converted, used = {}, set()

    def take(key: str) -> torch.Tensor:
        if p + key not in state_dict:
            raise ConversionError(f"checkpoint lacks the CLIP vision tower key {p + key!r}")
        used.add(p + key)
        return state_dict[p + key]

    for source, target in mapping.items():
        converted[target] = take(source)
    for i in range(num_layers):
        src, dst = f"transformer.resblocks.{i}.", f"{hf}encoder.layers.{i}."
        for source, target in layer_mapping.items():
            converted[dst + target] = take(src + source)
        for kind in ("weight", "bias"):
            q, k, v = take(f"{src}attn.in_proj_{kind}").chunk(3, dim=0)
            converted[f"{dst}self_attn.q_proj.{kind}"] = q
            converted[f"{dst}self_attn.k_proj.{kind}"] = k
            converted[f"{dst}self_attn.v_proj.{kind}"] = v
    converted["visual_projection.weight"] = take("proj").t()
    return converted, used


def _check_layout(state_dict: dict[str, torch.Tensor], family: Family, unet_params: dict) -> None:
    """The config fits the checkpoint's UNet, and every key belongs to a known group."""
    conv_in = state_dict[RAW_UNET_PREFIX + "input_blocks.0.0.weight"]
    for name, expected, found in (
        ("in_channels", unet_params["in_channels"], conv_in.shape[1]),
        ("model_channels", unet_params["model_channels"], conv_in.shape[0]),
    ):
        if expected != found:
            raise ConversionError(
                f"the config says UNet {name}={expected} but the checkpoint has {found}: pass the checkpoint's own "
                "yaml (--config)"
            )
    known = SCHEDULE_BUFFERS | EMA_BOOKKEEPING | CLIP_TEXT_LEFTOVERS
    prefixes = (RAW_UNET_PREFIX, EMA_PREFIX, VAE_PREFIX, CLIP_VISUAL_PREFIX, CC_PROJECTION_PREFIX)
    unknown = sorted(k for k in state_dict if k not in known and not k.startswith(prefixes))
    if unknown:
        raise ConversionError(
            f"checkpoint has {len(unknown)} keys outside the {family.name} layout, e.g. {unknown[:5]}"
        )


def _unet_source(
    state_dict: dict[str, torch.Tensor], unet_weights: str
) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
    """The UNet weights to convert under their raw names (EMA by default), and the count of those left out."""
    ema_keys = {k for k in state_dict if k.startswith(EMA_PREFIX)} - EMA_BOOKKEEPING
    if unet_weights == "raw":
        logger.warning("converting the RAW (non-EMA) UNet weights: outputs differ from the official EMA inference")
        return {k: v for k, v in state_dict.items() if k.startswith(RAW_UNET_PREFIX)}, {
            "EMA UNet (not used)": len(ema_keys)
        }
    unet_source = _ema_unet_state_dict(state_dict)
    unused_ema = ema_keys - {EMA_PREFIX + k[len("model.") :].replace(".", "") for k in unet_source}
    if unused_ema:
        raise ConversionError(f"{len(unused_ema)} EMA keys match no UNet parameter, e.g. {sorted(unused_ema)[:3]}")
    return unet_source, {"raw (non-EMA) UNet": sum(k.startswith(RAW_UNET_PREFIX) for k in state_dict)}


def _diffusers_configs(config: dict, unet_source: dict, vae_source: dict) -> tuple[dict, dict]:
    """UNet and VAE configs of diffusers from the official yaml (and the weights' shapes)."""
    from diffusers.loaders.single_file_utils import (
        create_unet_diffusers_config_from_ldm,
        create_vae_diffusers_config_from_ldm,
    )

    params = config["model"]["params"]
    vae_ddconfig = params["first_stage_config"]["params"]["ddconfig"]
    image_size = params["image_size"] * 2 ** (len(vae_ddconfig["ch_mult"]) - 1)
    with warnings.catch_warnings():  # diffusers deprecates passing image_size, but infers a wrong one without it
        warnings.simplefilter("ignore", FutureWarning)
        unet_config = create_unet_diffusers_config_from_ldm(config, unet_source, image_size=image_size)
        vae_config = create_vae_diffusers_config_from_ldm(config, vae_source, image_size=vae_ddconfig["resolution"])
    return unet_config, vae_config


def convert_state_dict(
    state_dict: dict[str, torch.Tensor], config: dict | None = None, unet_weights: str = "ema"
) -> ConvertedModel:
    """Map an official pix2gestalt / Zero-1-to-3 state dict onto diffusers components (no tensor data is copied).

    Works on meta tensors too, which makes checking the full-size key layout cheap.

    Args:
        state_dict: the checkpoint's ``state_dict``.
        config: the official yaml as a dict (default: the packaged official config of the detected family).
        unet_weights: ``"ema"`` (default; what the official inference uses) or ``"raw"`` (the training weights,
            only for checkpoints saved without EMA).
    """
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    from .pipelines.official_ddim import official_ddim_scheduler

    if unet_weights not in UNET_WEIGHTS:
        raise InputError(f"unet_weights must be one of {UNET_WEIGHTS}, got {unet_weights!r}")
    family = detect_family(state_dict)
    config = config or default_config(family.name)
    params = config["model"]["params"]
    _check_layout(state_dict, family, params["unet_config"]["params"])
    unet_source, ignored_unet = _unet_source(state_dict, unet_weights)
    vae_source = {k: v for k, v in state_dict.items() if k.startswith(VAE_PREFIX)}
    unet_config, vae_config = _diffusers_configs(config, unet_source, vae_source)
    unet_state_dict = convert_ldm_unet_checkpoint(unet_source, unet_config)

    # VAE, CLIP, cc_projection.
    vae_state_dict = convert_ldm_vae_checkpoint(vae_source, vae_config)
    if len(vae_state_dict) != len(vae_source):
        raise ConversionError(
            f"VAE: {len(vae_source)} checkpoint tensors mapped to {len(vae_state_dict)} diffusers tensors"
        )
    clip_config = _clip_config(state_dict)
    clip_state_dict, clip_used = _clip_state_dict(state_dict, clip_config["num_hidden_layers"])
    clip_unused = {k for k in state_dict if k.startswith(CLIP_VISUAL_PREFIX)} - clip_used
    if clip_unused:
        raise ConversionError(f"CLIP keys left unmapped: {sorted(clip_unused)[:5]}")
    try:
        cc_weight, cc_bias = state_dict["cc_projection.weight"], state_dict["cc_projection.bias"]
    except KeyError as error:
        raise ConversionError(f"checkpoint lacks {error}") from error
    expected_in = clip_config["projection_dim"] + family.pose_features
    if cc_weight.shape[1] != expected_in:
        raise ConversionError(
            f"cc_projection takes {cc_weight.shape[1]} features; {family.name} needs CLIP "
            f"{clip_config['projection_dim']} + {family.pose_features} pose = {expected_in}"
        )

    scheduler_config = {
        **official_ddim_scheduler().config,
        "num_train_timesteps": params.get("timesteps", 1000),
        "beta_start": params.get("linear_start", 0.00085),
        "beta_end": params.get("linear_end", 0.012),
    }
    return ConvertedModel(
        family=family,
        unet_config=unet_config,
        unet_state_dict=unet_state_dict,
        vae_config=vae_config,
        vae_state_dict=vae_state_dict,
        clip_config=clip_config,
        clip_state_dict=clip_state_dict,
        cc_projection_config={"in_features": cc_weight.shape[1], "out_features": cc_weight.shape[0]},
        cc_projection_state_dict={"projection.weight": cc_weight, "projection.bias": cc_bias},
        scheduler_config=scheduler_config,
        unet_weights=unet_weights,
        ignored_key_counts={
            **ignored_unet,
            "schedule buffers": sum(k in SCHEDULE_BUFFERS for k in state_dict),
            "EMA bookkeeping": sum(k in EMA_BOOKKEEPING for k in state_dict),
            "CLIP text leftovers": sum(k in CLIP_TEXT_LEFTOVERS for k in state_dict),
        },
    )


def build_components(converted: ConvertedModel, dtype: torch.dtype | None = None) -> dict[str, torch.nn.Module]:
    """Instantiate the diffusers components and load the converted weights strictly.

    Parameters are created on the meta device and the converted tensors are assigned (no extra copy, memory-mapped
    tensors stay on disk until written), then cast to ``dtype``.
    """
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from .pipelines.cc_projection import CCProjection

    dtype = dtype or torch.float32

    with init_empty_weights(include_buffers=False):
        modules = {
            "unet": UNet2DConditionModel(**converted.unet_config),
            "vae": AutoencoderKL(**converted.vae_config),
            "image_encoder": CLIPVisionModelWithProjection(CLIPVisionConfig(**converted.clip_config)),
            "cc_projection": CCProjection(**converted.cc_projection_config),
        }
    state_dicts = {
        "unet": converted.unet_state_dict,
        "vae": converted.vae_state_dict,
        "image_encoder": converted.clip_state_dict,
        "cc_projection": converted.cc_projection_state_dict,
    }
    for name, module in modules.items():
        expected = module.state_dict()
        given = state_dicts[name]
        missing, unexpected = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
        if missing or unexpected:
            raise ConversionError(f"{name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
        for key, tensor in given.items():
            if tuple(tensor.shape) != tuple(expected[key].shape):
                raise ConversionError(
                    f"{name}.{key}: checkpoint shape {tuple(tensor.shape)}, model {tuple(expected[key].shape)}"
                )
        module.load_state_dict({k: v.contiguous() for k, v in given.items()}, strict=True, assign=True)
        if dtype != torch.float32:
            module.to(dtype)
        module.eval()
    return modules


def convert_checkpoint(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    config_path: str | os.PathLike | None = None,
    dtype: str = "fp32",
    overwrite: bool = False,
    unet_weights: str = "ema",
) -> Path:
    """Convert an official pix2gestalt or Zero-1-to-3 ``.ckpt`` into a diffusers folder of safetensors files.

    The folder loads with ``Pix2GestaltPipeline.from_pretrained`` / ``Zero123Pipeline.from_pretrained``. It is
    written to ``.NAME.partial`` beside ``output_dir`` (one left by a killed run is removed first) and renamed into
    place, so a failed conversion never leaves a half-written model.

    Args:
        checkpoint_path: official Lightning checkpoint (``epoch=000005.ckpt``, ``105000.ckpt``, ``zero123-xl.ckpt``).
        output_dir: destination folder; must not exist or be empty unless ``overwrite``.
        config_path: official yaml; default: the packaged official config of the checkpoint's family.
        dtype: ``"fp32"``, ``"fp16"`` or ``"bf16"`` for the saved weights.
        overwrite: replace an earlier converted folder (one holding only what ``convert`` writes); any other
            folder, the working folder and its parents are never replaced.
        unet_weights: ``"ema"`` (default) or ``"raw"`` for checkpoints trained without EMA.
    """
    from . import __version__, pipelines
    from .checkpoint import load_lightning_state_dict

    if dtype not in DTYPES:
        raise InputError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    output_dir = Path(output_dir)
    if output_dir.exists() and output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{output_dir} exists and is not empty (use overwrite=True / --overwrite)")
    check_replaceable(output_dir, "conversion.json", CONVERTED_FOLDER_ENTRIES)
    check_output_folder(output_dir.parent)
    if config_path is not None:
        config = yaml.safe_load(Path(config_path).read_text())
        if not isinstance(config, dict) or "model" not in config:
            raise ConversionError(f"{config_path} is not a latent-diffusion yaml (no 'model' section)")
    else:
        config = None

    state_dict = load_lightning_state_dict(checkpoint_path)
    converted = convert_state_dict(state_dict, config, unet_weights)
    modules = build_components(converted, torch_dtype(dtype))
    pipeline_class = getattr(pipelines, converted.family.pipeline_class_name)
    pipeline = pipeline_class(
        scheduler=pipelines.OfficialDDIMScheduler.from_config(converted.scheduler_config), **modules
    )

    staging = staging_folder(output_dir)
    try:
        pipeline.save_pretrained(staging, safe_serialization=True)
        provenance = {
            "source": Path(checkpoint_path).name,
            "family": converted.family.name,
            "dtype": dtype,
            "p2g3d_version": __version__,
            "unet_weights": converted.unet_weights,
            "ignored_checkpoint_keys": converted.ignored_key_counts,
        }
        save_json(staging / "conversion.json", provenance)
        publish_folder(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    logger.info("converted %s -> %s (%s; ignored %s)", checkpoint_path, output_dir, dtype, converted.ignored_key_counts)
    return output_dir
