"""Tiny, randomly initialised pix2gestalt components built from configs (32 x 32 images, 4 x 4 latents)."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from p2g3d import CCProjection, Pix2GestaltPipeline
from p2g3d.pipelines.official_ddim import official_ddim_scheduler


def make_tiny_pipeline(seed: int = 0) -> Pix2GestaltPipeline:
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=4, in_channels=12, out_channels=4, block_out_channels=(32, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16, attention_head_dim=2, norm_num_groups=8,
    )  # fmt: skip
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=4,
        sample_size=32,
    )  # fmt: skip
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, projection_dim=16, num_hidden_layers=1, num_attention_heads=1,
            image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        )  # fmt: skip
    )
    pipeline = Pix2GestaltPipeline(
        vae=vae.eval(), image_encoder=clip.eval(), unet=unet.eval(), cc_projection=CCProjection(16, 16).eval(),
        scheduler=official_ddim_scheduler(),
    )  # fmt: skip
    pipeline.set_progress_bar_config(disable=True)
    return pipeline
