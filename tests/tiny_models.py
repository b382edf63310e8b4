"""Tiny, randomly initialised pix2gestalt and Zero-1-to-3 components built from configs."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from p2g3d import CCProjection, Pix2GestaltPipeline, Zero123Pipeline
from p2g3d.pipelines.official_ddim import official_ddim_scheduler

CONTEXT = 16


def tiny_components(unet_in_channels: int, projection_in: int, latent_size: int) -> dict:
    """Components with an 8x VAE (image side ``8 * latent_size``), a 2-level UNet and a 1-layer CLIP tower."""
    unet = UNet2DConditionModel(
        sample_size=latent_size, in_channels=unet_in_channels, out_channels=4, block_out_channels=(32, 32),
        layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=CONTEXT, attention_head_dim=2,
        norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4,
        sample_size=8 * latent_size,
    )  # fmt: skip
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, projection_dim=CONTEXT, num_hidden_layers=1, num_attention_heads=1,
            image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        )  # fmt: skip
    )
    return {
        "vae": vae.eval(), "image_encoder": clip.eval(), "unet": unet.eval(),
        "cc_projection": CCProjection(projection_in, CONTEXT).eval(), "scheduler": official_ddim_scheduler(),
    }  # fmt: skip


def make_tiny_pipeline(seed: int = 0) -> Pix2GestaltPipeline:
    """pix2gestalt: 12-channel UNet, 32 x 32 images, 4 x 4 latents."""
    torch.manual_seed(seed)
    pipeline = Pix2GestaltPipeline(**tiny_components(12, CONTEXT, 4))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def make_tiny_zero123_pipeline(seed: int = 0) -> Zero123Pipeline:
    """Zero-1-to-3: 8-channel UNet, CLIP + 4 pose features into cc_projection, 64 x 64 images, 8 x 8 latents."""
    torch.manual_seed(seed)
    pipeline = Zero123Pipeline(**tiny_components(8, CONTEXT + 4, 8))
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
