"""The models a training run starts from: small components built from configs (random weights), the identity
``cc_projection`` both papers start from, and borrowing a frozen autoencoder from another model folder."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from ..pipelines.cc_projection import CCProjection
from ..pipelines.official_ddim import official_ddim_scheduler


def scratch_components(image_size: int = 64, seed: int = 0, in_channels: int = 12) -> dict:
    """The parts of a small model built from configs (random weights): VAE with 4x downsampling, a small UNet with
    ``in_channels`` inputs (12 for pix2gestalt, 8 for Zero-1-to-3), a tiny frozen CLIP tower, the official DDIM
    scheduler."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=16,
        sample_size=image_size,
    )
    unet = UNet2DConditionModel(
        sample_size=image_size // 4,
        in_channels=in_channels,
        out_channels=4,
        block_out_channels=(32, 64, 128),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=4,
        norm_num_groups=32,
    )
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=64,
            intermediate_size=128,
            projection_dim=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=224,
            patch_size=32,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
    )
    return {"vae": vae, "image_encoder": clip.eval(), "unet": unet, "scheduler": official_ddim_scheduler()}


def identity_projection(clip_features: int, context_features: int, extra_features: int = 0) -> CCProjection:
    """``CCProjection`` that passes the CLIP embedding through unchanged and ignores ``extra_features`` (the pose of
    Zero-1-to-3): the initialisation of both papers."""
    projection = CCProjection(clip_features + extra_features, context_features)
    with torch.no_grad():
        projection.projection.weight.zero_()
        projection.projection.weight[:, :clip_features].copy_(torch.eye(context_features, clip_features))
        projection.projection.bias.zero_()
    return projection


def take_autoencoder(pipe, folder: str | os.PathLike) -> None:
    """Replace ``pipe``'s VAE and CLIP tower by those of the model folder ``folder`` (float32), in place."""
    from diffusers import AutoencoderKL
    from transformers import CLIPVisionModelWithProjection

    from ..loading import quiet_loading

    folder = Path(folder)
    if not (folder / "vae").is_dir() or not (folder / "image_encoder").is_dir():
        raise InputError(f"{folder} has no vae/ and image_encoder/ sub-folders (expected a model folder)")
    with quiet_loading():
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", dtype=torch.float32)
        clip = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", dtype=torch.float32)
    if clip.config.projection_dim != pipe.image_encoder.config.projection_dim:
        raise InputError(
            f"{folder}'s CLIP tower gives {clip.config.projection_dim} features, the model's cc_projection takes "
            f"{pipe.image_encoder.config.projection_dim}"
        )
    pipe.register_modules(vae=vae, image_encoder=clip.eval())
