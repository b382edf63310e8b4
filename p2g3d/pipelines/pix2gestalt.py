"""``Pix2GestaltPipeline``: amodal completion by synthesising the whole object (Ozguroglu et al., CVPR 2024).

Given a scene image and the visible (modal) mask of a partly hidden object, the latent diffusion model paints the
WHOLE object on a white background, at its position and scale in the input frame. This file is the official
sampling algorithm, step by step:

1. CLIP branch: official preprocessing (:func:`clip_pixel_values`) -> CLIP image embedding ``(B, 1, E)`` ->
   ``cc_projection`` -> cross-attention context.
2. Concat branch: ``[VAE(scene).mode(), VAE(mask as 3-channel image).mode()]`` -> ``(B, 8, h, w)``; posterior
   MEAN, NOT multiplied by the VAE scaling factor.
3. Classifier-free guidance whenever ``guidance_scale != 1``: unconditional = zero context (zero AFTER the
   projection) and zero concat latents; one batched UNet call ``[uncond; cond]``.
4. DDIM with the official timestep list (see :mod:`p2g3d.pipelines.official_ddim`) when the scheduler is a
   ``DDIMScheduler``; any other diffusers scheduler runs its own ``set_timesteps``.
5. Decode ``latent * (1 / scaling_factor)``, map to [0, 1] with ``clamp((x + 1) / 2, 0, 1)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DDIMScheduler, DiffusionPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPVisionModelWithProjection

from .cc_projection import CCProjection
from .image_processing import ImageInput, clip_pixel_values, preprocess_image, preprocess_mask, to_uint8
from .official_ddim import set_official_timesteps

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class Pix2GestaltPipelineOutput(BaseOutput):
    """``images``: list of PIL images (``"pil"``), ``(B, H, W, 3)`` float array in [0, 1] (``"np"``),
    ``(B, 3, H, W)`` tensor in [0, 1] (``"pt"``), or the final latent ``(B, 4, h, w)`` (``"latent"``)."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class Pix2GestaltPipeline(DiffusionPipeline):
    """pix2gestalt amodal completion.

    Components: ``vae`` (``AutoencoderKL``), ``image_encoder`` (``CLIPVisionModelWithProjection``), ``unet``
    (``UNet2DConditionModel`` with 12 input channels: ``[z_t, image latent, mask latent]``), ``cc_projection``
    (:class:`CCProjection`) and ``scheduler`` (a ``DDIMScheduler`` reproduces the official sampler).
    """

    model_cpu_offload_seq = "image_encoder->cc_projection->vae->unet->vae"
    _callback_tensor_inputs = ["latents", "pred_original_sample"]

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModelWithProjection,
        unet: UNet2DConditionModel,
        cc_projection: CCProjection,
        scheduler: KarrasDiffusionSchedulers,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, image_encoder=image_encoder, unet=unet, cc_projection=cc_projection, scheduler=scheduler
        )
        self.vae_scale_factor = 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def default_size(self) -> int:
        """Working resolution in pixels (256 for the official model)."""
        return self.unet.config.sample_size * self.vae_scale_factor

    # ---- conditioning -------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_clip_embedding(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` scene in [-1, 1] -> projected CLIP image embedding ``(B, 1, E)`` (before cc_projection)."""
        pixel_values = clip_pixel_values(image.float()).to(self.image_encoder.device, self.image_encoder.dtype)
        return self.image_encoder(pixel_values=pixel_values).image_embeds[:, None, :]

    @torch.no_grad()
    def encode_context(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` scene in [-1, 1] -> cross-attention context ``(B, 1, C)`` = cc_projection(CLIP)."""
        embedding = self.encode_clip_embedding(image)
        return self.cc_projection(embedding.to(self.cc_projection.device, self.cc_projection.dtype))

    @torch.no_grad()
    def encode_concat_latents(self, image: torch.Tensor, visible_mask: torch.Tensor) -> torch.Tensor:
        """Scene and 3-channel mask ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 8, h, w)`` posterior means, unscaled."""
        both = torch.cat([image, visible_mask]).to(self.vae.device, self.vae.dtype)
        means = self.vae.encode(both).latent_dist.mode()
        image_latent, mask_latent = means.chunk(2)
        return torch.cat([image_latent, mask_latent], dim=1)

    @torch.no_grad()
    def predict_noise(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor | int,
        context: torch.Tensor,
        concat_latents: torch.Tensor,
        guidance_scale: float,
    ) -> torch.Tensor:
        """Guided eps for ``latents`` ``(B, 4, h, w)`` at ``timestep``, as the official sampler computes it.

        With ``guidance_scale == 1`` one conditional call; otherwise one call on ``[uncond; cond]`` with zero
        context and zero concat latents for the unconditional half, ``e_u + s * (e_c - e_u)``.
        """
        unet_dtype = self.unet.dtype
        if guidance_scale == 1.0:
            model_input = torch.cat([latents, concat_latents], dim=1)
            return self.unet(model_input.to(unet_dtype), timestep, encoder_hidden_states=context.to(unet_dtype)).sample
        model_input = torch.cat(
            [torch.cat([latents, torch.zeros_like(concat_latents)], dim=1), torch.cat([latents, concat_latents], dim=1)]
        )
        contexts = torch.cat([torch.zeros_like(context), context])
        eps_uncond, eps_cond = self.unet(
            model_input.to(unet_dtype), timestep, encoder_hidden_states=contexts.to(unet_dtype)
        ).sample.chunk(2)
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Final latent ``(B, 4, h, w)`` -> image ``(B, 3, H, W)`` in [0, 1]: ``clamp((D(z / s) + 1) / 2, 0, 1)``."""
        decoded = self.vae.decode(latents.to(self.vae.dtype) * (1.0 / self.vae.config.scaling_factor)).sample
        return ((decoded.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    # ---- sampling -----------------------------------------------------------------------------------------------

    def _set_timesteps(self, num_inference_steps: int, device: torch.device) -> torch.Tensor:
        if isinstance(self.scheduler, DDIMScheduler):
            return set_official_timesteps(self.scheduler, num_inference_steps, device=device)
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        return self.scheduler.timesteps

    def _step_kwargs(self, generator, eta: float) -> dict:
        parameters = set(inspect.signature(self.scheduler.step).parameters)
        kwargs = {}
        if "eta" in parameters:
            kwargs["eta"] = eta
        if "generator" in parameters:
            kwargs["generator"] = generator
        return kwargs

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        visible_mask: ImageInput,
        num_inference_steps: int = 50,
        guidance_scale: float = 2.0,
        eta: float = 1.0,
        num_images_per_prompt: int = 1,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        output_type: str = "pil",
        return_dict: bool = True,
        height: int | None = None,
        width: int | None = None,
        callback_on_step_end: Callable[[DiffusionPipeline, int, int, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> Pix2GestaltPipelineOutput | tuple:
        """Synthesise the whole object.

        Args:
            image: scene image(s): PIL, ``(H, W, 3)`` / ``(B, H, W, 3)`` uint8 or [0, 1] float array, or
                ``(3, H, W)`` / ``(B, 3, H, W)`` tensor in [0, 1]. Resized to ``height`` x ``width`` if needed
                (the official model works at 256 x 256 and squashes the whole image).
            visible_mask: visible mask(s), same batch size as ``image`` (or one for all): PIL, ``(H, W)`` /
                ``(B, H, W)`` array or tensor; values > 0.5 (uint8 > 127) are object.
            num_inference_steps: requested DDIM steps S; the official schedule runs ``len(range(0, 1000, 1000 // S))
                - 1`` UNet calls (S=10 -> 9).
            guidance_scale: classifier-free guidance; applied whenever it differs from 1.0 (also below 1).
            eta: DDIM eta (official default 1.0, stochastic; 0.0 is deterministic given ``latents``).
            num_images_per_prompt: samples per input image.
            generator: torch generator(s) for the starting noise and the DDIM noise; a list gives one per sample.
            latents: starting noise x_T ``(B * num_images_per_prompt, 4, h, w)``; drawn from ``generator`` if None.
            output_type: ``"pil"``, ``"np"``, ``"pt"`` or ``"latent"`` (the final latent before 1/0.18215 and
                decoding). ``"pil"`` converts by truncation like the official code.
            height, width: working size in pixels; defaults to the UNet's native size.
            callback_on_step_end: diffusers-style callback ``f(pipe, step_index, timestep, tensors) -> dict``,
                given ``latents`` (after the step) and ``pred_original_sample`` when requested.
            callback_on_step_end_tensor_inputs: names of the tensors passed to the callback.
        """
        if output_type not in OUTPUT_TYPES:
            raise ValueError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if not isinstance(num_images_per_prompt, int) or num_images_per_prompt < 1:
            raise ValueError(f"num_images_per_prompt must be a positive int, got {num_images_per_prompt!r}")
        tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        unknown = set(tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(f"callback tensors must be among {self._callback_tensor_inputs}, got {sorted(unknown)}")
        height = height or self.default_size
        width = width or self.default_size
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise ValueError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")
        device = self._execution_device

        # 1. Inputs in model space.
        scene = preprocess_image(image, height, width).to(device)
        mask = preprocess_mask(visible_mask, height, width).to(device)
        if mask.shape[0] == 1 and scene.shape[0] > 1:
            mask = mask.expand(scene.shape[0], -1, -1, -1)
        if mask.shape[0] != scene.shape[0]:
            raise ValueError(f"got {scene.shape[0]} images but {mask.shape[0]} visible masks")
        batch_size = scene.shape[0] * num_images_per_prompt

        # 2. Conditioning: CLIP context and concat latents, repeated per sample.
        context = self.encode_context(scene).repeat_interleave(num_images_per_prompt, dim=0)
        concat_latents = self.encode_concat_latents(scene, mask).repeat_interleave(num_images_per_prompt, dim=0)

        # 3. Starting noise x_T.
        latent_shape = (batch_size, self.unet.config.out_channels, height // self.vae_scale_factor, width // self.vae_scale_factor)
        if latents is None:
            latents = randn_tensor(latent_shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != latent_shape:
            raise ValueError(f"latents must have shape {latent_shape}, got {tuple(latents.shape)}")
        latents = latents.to(device, torch.float32) * self.scheduler.init_noise_sigma

        # 4. Denoising loop.
        timesteps = self._set_timesteps(num_inference_steps, device)
        step_kwargs = self._step_kwargs(generator, eta)
        with self.progress_bar(total=len(timesteps)) as progress:
            for step_index, t in enumerate(timesteps):
                model_input = self.scheduler.scale_model_input(latents, t)
                eps = self.predict_noise(model_input, t, context, concat_latents, guidance_scale).float()
                step = self.scheduler.step(eps, t, latents, **step_kwargs, return_dict=True)
                latents = step.prev_sample
                if callback_on_step_end is not None:
                    available = {"latents": latents, "pred_original_sample": getattr(step, "pred_original_sample", None)}
                    returned = callback_on_step_end(self, step_index, t, {k: available[k] for k in tensor_inputs})
                    latents = (returned or {}).get("latents", latents)
                progress.update()

        # 5. Decode.
        if output_type == "latent":
            images = latents
        else:
            images = self.decode_latents(latents)
            if output_type == "np":
                images = images.cpu().permute(0, 2, 3, 1).numpy()
            elif output_type == "pil":
                images = [PIL.Image.fromarray(array) for array in to_uint8(images)]
        self.maybe_free_model_hooks()
        if not return_dict:
            return (images,)
        return Pix2GestaltPipelineOutput(images=images)
