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
        sample_size=latent_size,
        in_channels=unet_in_channels,
        out_channels=4,
        block_out_channels=(32, 32),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=CONTEXT,
        attention_head_dim=2,
        norm_num_groups=8,
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 8, 8),
        layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        norm_num_groups=4,
        sample_size=8 * latent_size,
    )
    clip = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=32,
            intermediate_size=64,
            projection_dim=CONTEXT,
            num_hidden_layers=1,
            num_attention_heads=1,
            image_size=224,
            patch_size=32,
            hidden_act="quick_gelu",
            layer_norm_eps=1e-5,
        )
    )
    return {
        "vae": vae.eval(),
        "image_encoder": clip.eval(),
        "unet": unet.eval(),
        "cc_projection": CCProjection(projection_in, CONTEXT).eval(),
        "scheduler": official_ddim_scheduler(),
    }


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


def marching_cubes_tables() -> tuple[torch.Tensor, torch.Tensor]:
    """The lookup tables of diffusers' Shap-E ``MeshDecoder`` (``cases`` ``(256, 5, 3)`` local edge indices,
    ``masks`` ``(256, 5)``), which only a real checkpoint fills: built by running scikit-image's Lorensen marching
    cubes on each of the 256 corner patterns of one cube. Corner ``(x, y, z)`` is bit ``x + 2 y + 4 z`` (inside
    when the field is > 0); the 12 edges are numbered as ``_create_flat_edge_indices`` numbers them."""
    import numpy as np
    from skimage.measure import marching_cubes

    edge_numbers = {}
    for number, (axis, a, b) in enumerate([(axis, a, b) for axis in range(3) for b in (0, 1) for a in (0, 1)]):
        # x edges: 0 (y0 z0), 1 (y1 z0), 2 (y0 z1), 3 (y1 z1); y edges: 4 (x0 z0), 5 (x1 z0), 6 (x0 z1), 7 (x1 z1);
        # z edges: 8 (x0 y0), 9 (x1 y0), 10 (x0 y1), 11 (x1 y1)
        others = [i for i in range(3) if i != axis]
        point = [0.5, 0.5, 0.5]
        point[others[0]], point[others[1]] = float(a), float(b)
        edge_numbers[tuple(point)] = number
    cases = torch.zeros(256, 5, 3, dtype=torch.long)
    masks = torch.zeros(256, 5, dtype=torch.bool)
    for case in range(1, 255):
        field = np.array(
            [[[1.0 if case >> (x + 2 * y + 4 * z) & 1 else -1.0 for z in (0, 1)] for y in (0, 1)] for x in (0, 1)]
        )
        vertices, faces, _, _ = marching_cubes(field, 0.0, method="lorensen")
        for slot, face in enumerate(faces):
            cases[case, slot] = torch.tensor([edge_numbers[tuple(float(c) for c in vertices[v])] for v in face])
            masks[case, slot] = True
    return cases, masks


def make_tiny_shap_e_pipeline(seed: int = 0):
    """A tiny random ``ShapEImg2ImgPipeline`` (configs sized like diffusers' own fast tests) whose mesh decoder has
    real marching-cubes tables (:func:`marching_cubes_tables`)."""
    from diffusers import HeunDiscreteScheduler, PriorTransformer, ShapEImg2ImgPipeline
    from diffusers.pipelines.shap_e import ShapERenderer
    from transformers import CLIPImageProcessor, CLIPVisionModel

    torch.manual_seed(seed)
    width, renderer_width = 32, 8
    prior = PriorTransformer(
        num_attention_heads=2,
        attention_head_dim=16,
        embedding_dim=width,
        num_embeddings=32,
        embedding_proj_dim=width,
        time_embed_dim=4 * width,
        num_layers=1,
        clip_embed_dim=2 * width,
        additional_embeddings=0,
        time_embed_act_fn="gelu",
        norm_in_type="layer",
        embedding_proj_norm_type="layer",
        encoder_hid_proj_type=None,
        added_emb_type=None,
    )
    image_encoder = CLIPVisionModel(
        CLIPVisionConfig(
            hidden_size=width,
            image_size=32,
            projection_dim=width,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            patch_size=8,
        )
    )
    processor = CLIPImageProcessor(
        crop_size=32,
        size=32,
        do_center_crop=True,
        do_normalize=True,
        do_resize=True,
        resample=3,
        image_mean=[0.48145466, 0.4578275, 0.40821073],
        image_std=[0.26862954, 0.26130258, 0.27577711],
    )
    renderer = ShapERenderer(
        param_shapes=((renderer_width, 93), (renderer_width, 8), (renderer_width, 8), (renderer_width, 8)),
        d_latent=width,
        d_hidden=renderer_width,
        n_output=12,
        background=(0.1, 0.1, 0.1),
    )
    cases, masks = marching_cubes_tables()
    renderer.mesh_decoder.cases.copy_(cases)
    renderer.mesh_decoder.masks.copy_(masks)
    scheduler = HeunDiscreteScheduler(
        beta_schedule="exp",
        num_train_timesteps=1024,
        prediction_type="sample",
        use_karras_sigmas=True,
        clip_sample=True,
        clip_sample_range=1.0,
    )
    return ShapEImg2ImgPipeline(
        prior=prior,
        image_encoder=image_encoder,
        image_processor=processor,
        shap_e_renderer=renderer,
        scheduler=scheduler,
    )


def make_tiny_sam(seed: int = 0):
    """A tiny random SAM (transformers ``SamModel``) and its processor, built from configs (64 px, nothing
    downloaded)."""
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.configuration_sam import (
        SamMaskDecoderConfig,
        SamPromptEncoderConfig,
        SamVisionConfig,
    )
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    torch.manual_seed(seed)
    vision = SamVisionConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_dim=64,
        output_channels=32,
        image_size=64,
        patch_size=16,
        window_size=2,
        global_attn_indexes=[1],
        num_pos_feats=16,
    )
    prompt = SamPromptEncoderConfig(hidden_size=32, image_size=64, patch_size=16, mask_input_channels=4)
    decoder = SamMaskDecoderConfig(
        hidden_size=32, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32
    )
    model = SamModel(SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder))
    processor = SamProcessor(
        image_processor=SamImageProcessorPil(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    )
    return model.eval(), processor
