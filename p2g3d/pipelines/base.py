"""What pix2gestalt and Zero-1-to-3 share: the official conditioning parts, guidance, the sampling-loop helpers and
decoding.

Both models are image-conditioned SD-1.x latent diffusion: a CLIP image embedding (projected by ``cc_projection``)
as the single cross-attention token, VAE posterior means of the conditioning image(s) concatenated to z_t, CFG with
zeros after the projection and zero concat latents, the official DDIM schedule, and ``clamp((D(z / s) + 1) / 2)``.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.schedulers import KarrasDiffusionSchedulers
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from transformers import CLIPVisionModelWithProjection

from ..errors import InputError
from ..loading import default_model_path, resolve_model_name
from .cc_projection import CCProjection
from .image_processing import clip_pixel_values, to_uint8

OUTPUT_TYPES = ("pil", "np", "pt", "latent")


@dataclass
class ImagePipelineOutput(BaseOutput):
    """``images``: list of PIL images (``"pil"``), ``(B, H, W, 3)`` float array in [0, 1] (``"np"``),
    ``(B, 3, H, W)`` tensor in [0, 1] (``"pt"``), or the final latent ``(B, 4, h, w)`` (``"latent"``)."""

    images: list[PIL.Image.Image] | np.ndarray | torch.Tensor


class ImageConditionedPipeline(DiffusionPipeline):
    """Base of the pix2gestalt-family pipelines (components ``vae``, ``image_encoder``, ``unet``,
    ``cc_projection``, ``scheduler``). Subclasses build the context and concat latents and run their own loop with
    the helpers below."""

    _callback_tensor_inputs = ["latents", "pred_original_sample"]

    @classmethod
    def embedded_model_path(cls):
        """The folder of the family's embedded demonstration model (shipped inside the package)."""
        return default_model_path()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, **kwargs):
        """Load a model folder or hub id, as diffusers does; None (or ``"embedded"``) loads the family's embedded
        demonstration model (small, trained on synthetic objects only), ``"embedded-fast"`` its few-step student."""
        if pretrained_model_name_or_path is None:
            pretrained_model_name_or_path = cls.embedded_model_path()
        pretrained_model_name_or_path = resolve_model_name(pretrained_model_name_or_path)
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    model_cpu_offload_seq = "image_encoder->cc_projection->vae->unet->vae"

    def __init__(
        self,
        vae: AutoencoderKL,
        image_encoder: CLIPVisionModelWithProjection,
        unet: UNet2DConditionModel,
        cc_projection: CCProjection,
        scheduler: KarrasDiffusionSchedulers,
        sampling_defaults: dict | None = None,
    ):
        super().__init__()
        self.register_modules(
            vae=vae, image_encoder=image_encoder, unet=unet, cc_projection=cc_projection, scheduler=scheduler
        )
        self.register_to_config(sampling_defaults=dict(sampling_defaults) if sampling_defaults else None)

    @property
    def sampling_defaults(self) -> dict:
        """Sampling settings saved with the model (``model_index.json``), used where a caller gives none: e.g.
        ``{"num_inference_steps": 4, "guidance_scale": 1.0}`` for a distilled student; empty for other models."""
        return dict(self.config.get("sampling_defaults") or {})

    @property
    def _execution_device(self) -> torch.device:
        """The device the models run on: the UNet's, unless an offloading hook is attached to a component (then
        diffusers' rule, which walks every submodule: milliseconds a call, a fifth of a small student's time)."""
        hooked = any(
            hasattr(module, "_hf_hook") or hasattr(module, "_diffusers_hook")
            for module in (self.vae, self.image_encoder, self.unet, self.cc_projection)
        )
        if hooked:
            return super()._execution_device
        return next(self.unet.parameters()).device

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def default_size(self) -> int:
        """Working resolution in pixels (256 for the official models)."""
        return self.unet.config.sample_size * self.vae_scale_factor

    # ---- conditioning parts -------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode_clip_embedding(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` image in [-1, 1] -> projected CLIP image embedding ``(B, 1, E)`` (before cc_projection)."""
        pixel_values = clip_pixel_values(image.float()).to(self.image_encoder.device, self.image_encoder.dtype)
        return self.image_encoder(pixel_values=pixel_values).image_embeds[:, None, :]

    @torch.no_grad()
    def project(self, embedding: torch.Tensor) -> torch.Tensor:
        """``cc_projection`` on ``(B, 1, in_features)`` -> context ``(B, 1, C)``."""
        return self.cc_projection(embedding.to(self.cc_projection.device, self.cc_projection.dtype))

    @torch.no_grad()
    def encode_latent_means(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> VAE posterior means ``(B, 4, h, w)``, NOT scaled by the scaling factor."""
        return self.vae.encode(images.to(self.vae.device, self.vae.dtype)).latent_dist.mode()

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
        context and zero concat latents for the unconditional half, ``e_u + s * (e_c - e_u)`` (also for s < 1).
        """
        dtype = self.unet.dtype
        if guidance_scale == 1.0:
            model_input = torch.cat([latents, concat_latents], dim=1)
            return self.unet(model_input.to(dtype), timestep, encoder_hidden_states=context.to(dtype)).sample
        model_input = torch.cat(
            [torch.cat([latents, torch.zeros_like(concat_latents)], dim=1), torch.cat([latents, concat_latents], dim=1)]
        )
        contexts = torch.cat([torch.zeros_like(context), context])
        eps_uncond, eps_cond = self.unet(
            model_input.to(dtype), timestep, encoder_hidden_states=contexts.to(dtype)
        ).sample.chunk(2)
        return eps_uncond + guidance_scale * (eps_cond - eps_uncond)

    def _latent_statistics(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The VAE config's per-channel ``latents_mean`` / ``latents_std`` as ``(1, C, 1, 1)`` tensors, or None when
        the config has none (the official models)."""
        mean, std = (getattr(self.vae.config, key, None) for key in ("latents_mean", "latents_std"))
        if mean is None or std is None:
            return None
        return tuple(torch.tensor(v, dtype=like.dtype, device=like.device).view(1, -1, 1, 1) for v in (mean, std))

    def normalize_latents(self, z: torch.Tensor) -> torch.Tensor:
        """VAE latent -> diffusion latent: ``z * s`` (official), or ``(z - mean) * s / std`` when the VAE config has
        ``latents_mean`` / ``latents_std`` (diffusers' convention, as in SDXL)."""
        statistics = self._latent_statistics(z)
        if statistics is not None:
            z = (z - statistics[0]) / statistics[1]
        return z * self.vae.config.scaling_factor

    def denormalize_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_latents` (``z * (1 / s)``, the official arithmetic, when there are no
        statistics)."""
        z = latents * (1.0 / self.vae.config.scaling_factor)
        statistics = self._latent_statistics(z)
        return z if statistics is None else z * statistics[1] + statistics[0]

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Final latent ``(B, 4, h, w)`` -> image ``(B, 3, H, W)`` in [0, 1]: ``clamp((D(z / s) + 1) / 2, 0, 1)``
        (with :meth:`denormalize_latents` in place of ``z / s``)."""
        decoded = self.vae.decode(self.denormalize_latents(latents.float()).to(self.vae.dtype)).sample
        return ((decoded.float() + 1.0) / 2.0).clamp(0.0, 1.0)

    # ---- helpers of the sampling loops (each pipeline's ``__call__`` holds its own numbered loop) -----------------

    def check_inputs(
        self, output_type, num_images_per_prompt, tensor_inputs, height, width, guidance_scale, eta
    ) -> tuple[int, int]:
        """Validate the call arguments shared by the pipelines; return the working ``(height, width)``."""
        if output_type not in OUTPUT_TYPES:
            raise InputError(f"output_type must be one of {OUTPUT_TYPES}, got {output_type!r}")
        if (
            isinstance(num_images_per_prompt, bool)
            or not isinstance(num_images_per_prompt, int)
            or num_images_per_prompt < 1
        ):
            raise InputError(f"num_images_per_prompt must be a positive int, got {num_images_per_prompt!r}")
        for name, value in (("guidance_scale", guidance_scale), ("eta", eta)):
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(f"{name} must be a finite number, got {value!r}")
        if eta < 0:
            raise InputError(f"eta must be >= 0 (0 deterministic DDIM, 1 official), got {eta}")
        unknown = set(tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise InputError(f"callback tensors must be among {self._callback_tensor_inputs}, got {sorted(unknown)}")
        height, width = height or self.default_size, width or self.default_size
        if height % self.vae_scale_factor or width % self.vae_scale_factor:
            raise InputError(f"height and width must be multiples of {self.vae_scale_factor}, got {height}x{width}")
        return height, width

    def prepare_latents(self, batch_size: int, height: int, width: int, generator, latents, device) -> torch.Tensor:
        """Starting noise ``(B, 4, h, w)`` float32: ``latents`` if given (shape checked), else drawn from
        ``generator``; scaled by the scheduler's ``init_noise_sigma``."""
        shape = (
            batch_size,
            self.unet.config.out_channels,
            height // self.vae_scale_factor,
            width // self.vae_scale_factor,
        )
        if latents is None:
            latents = randn_tensor(shape, generator=generator, device=device, dtype=torch.float32)
        elif tuple(latents.shape) != shape:
            raise InputError(f"latents must have shape {shape}, got {tuple(latents.shape)}")
        return latents.to(device, torch.float32) * self.scheduler.init_noise_sigma

    def prepare_step_kwargs(self, generator, eta: float) -> dict:
        """``eta`` and ``generator`` for ``scheduler.step``, where the scheduler takes them."""
        parameters = set(inspect.signature(self.scheduler.step).parameters)
        return {key: value for key, value in (("eta", eta), ("generator", generator)) if key in parameters}

    def guidance_at(self, t, guidance_scale: float, guidance_interval: tuple[float, float] | None) -> float:
        """The guidance scale of the step at timestep ``t``: ``guidance_scale`` when ``t / T`` lies in the closed
        ``guidance_interval`` (T = the training timesteps; None: every step), else 1 (one conditional call: guidance
        on a limited interval, Kynkaanniemi et al., NeurIPS 2024)."""
        if guidance_interval is None:
            return guidance_scale
        position = float(t) / self.scheduler.config.num_train_timesteps
        return guidance_scale if guidance_interval[0] <= position <= guidance_interval[1] else 1.0

    def denoise(self, latents, t, context, concat_latents, guidance_scale: float, step_kwargs: dict):
        """One scheduler step from ``latents`` at ``t`` with the guided eps; returns the scheduler's output."""
        model_input = self.scheduler.scale_model_input(latents, t)
        eps = self.predict_noise(model_input, t, context, concat_latents, guidance_scale).float()
        return self.scheduler.step(eps, t, latents, **step_kwargs, return_dict=True)

    def step_callback(self, callback, step_index: int, t, step, tensor_inputs: list[str]) -> torch.Tensor:
        """Call a diffusers-style ``callback_on_step_end``; returns the latents to continue from."""
        latents = step.prev_sample
        if callback is None:
            return latents
        available = {"latents": latents, "pred_original_sample": getattr(step, "pred_original_sample", None)}
        returned = callback(self, step_index, t, {name: available[name] for name in tensor_inputs})
        return (returned or {}).get("latents", latents)

    def postprocess(self, latents: torch.Tensor, output_type: str):
        """Final latents -> the requested output type (see :class:`ImagePipelineOutput`)."""
        if output_type == "latent":
            return latents
        images = self.decode_latents(latents)
        if output_type == "np":
            return images.cpu().permute(0, 2, 3, 1).numpy()
        if output_type == "pil":
            return [PIL.Image.fromarray(array) for array in to_uint8(images)]
        return images
