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
4. DDIM with the official timestep list: the default scheduler is an ``OfficialDDIMScheduler`` (see
   :mod:`p2g3d.pipelines.official_ddim`); any other scheduler, a stock ``DDIMScheduler`` included, keeps its own.
5. Decode ``latent * (1 / scaling_factor)`` (plus the VAE config's ``latents_mean`` where it has one: the
   from-scratch models of :mod:`p2g3d.training`), map to [0, 1] with ``clamp((x + 1) / 2, 0, 1)``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import InputError
from .base import ImageConditionedPipeline, ImagePipelineOutput
from .image_processing import ImageInput, preprocess_image, preprocess_mask

Pix2GestaltPipelineOutput = ImagePipelineOutput


class Pix2GestaltPipeline(ImageConditionedPipeline):
    """pix2gestalt amodal completion.

    Components: ``vae`` (``AutoencoderKL``), ``image_encoder`` (``CLIPVisionModelWithProjection``), ``unet``
    (``UNet2DConditionModel`` with 12 input channels: ``[z_t, image latent, mask latent]``), ``cc_projection``
    (:class:`CCProjection`) and ``scheduler`` (an ``OfficialDDIMScheduler`` reproduces the official sampler).
    """

    @torch.no_grad()
    def encode_context(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` scene in [-1, 1] -> cross-attention context ``(B, 1, C)`` = cc_projection(CLIP)."""
        return self.project(self.encode_clip_embedding(image))

    @torch.no_grad()
    def encode_concat_latents(self, image: torch.Tensor, visible_mask: torch.Tensor) -> torch.Tensor:
        """Scene and 3-channel mask ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 8, h, w)`` posterior means, unscaled."""
        image_latent, mask_latent = self.encode_latent_means(torch.cat([image, visible_mask])).chunk(2)
        return torch.cat([image_latent, mask_latent], dim=1)

    @torch.no_grad()
    def encode_scene_objects(self, image: ImageInput, visible_masks: ImageInput) -> tuple[torch.Tensor, torch.Tensor]:
        """ONE scene and its K objects' visible masks -> ``context`` ``(1, 1, C)`` and ``concat_latents``
        ``(K, 8, h, w)``, encoding the scene once (CLIP and VAE) however many objects and samples use it; pass
        rows of them to ``__call__`` as ``context=`` / ``concat_latents=``. Equal to the per-pair encoding up to
        float round-off (the VAE sees other batch sizes)."""
        size = self.default_size
        scene = preprocess_image(image, size, size).to(self._execution_device)
        if scene.shape[0] != 1:
            raise InputError(f"encode_scene_objects takes one scene, got {scene.shape[0]}")
        masks = preprocess_mask(visible_masks, size, size).to(self._execution_device)
        latents = self.encode_latent_means(torch.cat([scene, masks]))  # one VAE call: scene, then the K masks
        concat = torch.cat([latents[:1].expand(masks.shape[0], -1, -1, -1), latents[1:]], dim=1)
        return self.encode_context(scene), concat

    @torch.no_grad()
    def prepare_conditioning(self, image, visible_mask, context, concat_latents, height: int, width: int):
        """Steps 1-2 of :meth:`__call__`: ``(context (B, 1, C), concat_latents (B, 8, h, w))`` encoded from the
        image(s) and mask(s) in model space, or the given ones (checked)."""
        if (context is None) != (concat_latents is None) or (context is None) == (
            image is None or visible_mask is None
        ):
            raise InputError("give either image and visible_mask, or context and concat_latents")
        if context is not None:
            if context.shape[0] != concat_latents.shape[0]:
                raise InputError(f"got {context.shape[0]} contexts but {concat_latents.shape[0]} concat latents")
            return context, concat_latents
        scene = preprocess_image(image, height, width).to(self._execution_device)
        mask = preprocess_mask(visible_mask, height, width).to(self._execution_device)
        if mask.shape[0] == 1 and scene.shape[0] > 1:
            mask = mask.expand(scene.shape[0], -1, -1, -1)
        if mask.shape[0] != scene.shape[0]:
            raise InputError(f"got {scene.shape[0]} images but {mask.shape[0]} visible masks")
        return self.encode_context(scene), self.encode_concat_latents(scene, mask)

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput | None = None,
        visible_mask: ImageInput | None = None,
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
        callback_on_step_end: Callable[..., dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        context: torch.Tensor | None = None,
        concat_latents: torch.Tensor | None = None,
        guidance_interval: tuple[float, float] | None = None,
    ) -> ImagePipelineOutput | tuple:
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
            context, concat_latents: the conditioning ``(B, 1, C)`` and ``(B, 8, h, w)`` encoded beforehand (e.g.
                by :meth:`encode_scene_objects`), in place of ``image`` and ``visible_mask``.
            guidance_interval: ``(low, high)`` in [0, 1]: guidance only at the steps whose ``t / 1000`` lies in
                it, one conditional UNet call at the others (None: guidance at every step, official).
        """
        tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        height, width = self.check_inputs(
            output_type, num_images_per_prompt, tensor_inputs, height, width, guidance_scale, eta
        )
        if guidance_interval is not None and not 0 <= guidance_interval[0] <= guidance_interval[1] <= 1:
            raise InputError(
                f"guidance_interval must be (low, high) with 0 <= low <= high <= 1, got {guidance_interval}"
            )
        device = self._execution_device

        # 1-2. Conditioning: CLIP context and concat latents of the inputs in model space (unless given).
        context, concat_latents = self.prepare_conditioning(image, visible_mask, context, concat_latents, height, width)
        context = context.to(device).repeat_interleave(num_images_per_prompt, dim=0)
        concat_latents = concat_latents.to(device).repeat_interleave(num_images_per_prompt, dim=0)

        # 3. Timesteps: the scheduler's own (the official list with the default OfficialDDIMScheduler).
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 4. Starting noise x_T.
        latents = self.prepare_latents(context.shape[0], height, width, generator, latents, device)

        # 5. Denoising loop with classifier-free guidance (on the steps of ``guidance_interval`` when given).
        step_kwargs = self.prepare_step_kwargs(generator, eta)
        with self.progress_bar(total=len(timesteps)) as progress:
            for step_index, t in enumerate(timesteps):
                scale = self.guidance_at(t, guidance_scale, guidance_interval)
                step = self.denoise(latents, t, context, concat_latents, scale, step_kwargs)
                latents = self.step_callback(callback_on_step_end, step_index, t, step, tensor_inputs)
                progress.update()

        # 6. Decoding.
        images = self.postprocess(latents, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
