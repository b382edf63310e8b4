"""``Zero123Pipeline``: novel views of an object from one image (Zero-1-to-3, Liu et al., ICCV 2023).

Same family as pix2gestalt (see :mod:`p2g3d.pipelines.base`); what differs:

1. Context = ``cc_projection([CLIP(image), T])`` with the RELATIVE pose
   ``T = [radians(polar), sin(radians(azimuth)), cos(radians(azimuth)), radius]`` (computed in double precision,
   then cast, as the official code does); 772 -> 768 for the official model.
2. Concat = ``VAE(image).mode()`` only: an 8-channel UNet ``[z_t, image latent]``.
3. Input: the object on white, cropped to its box with the long side at 200 of 256 pixels (see
   ``p2g3d.framing.frame_on_white``). Official guidance 3.0.

Pose units and signs are exactly the official ones: ``polar`` is the change of the angle measured from the pole
(positive = the camera moves DOWN), ``azimuth`` the change of ``atan2(y, x)`` of the camera centre around the up
axis (counter-clockwise seen from above), ``radius`` the change of camera distance. ``p2g3d.cameras`` converts
from the project's camera convention.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPVisionModelWithProjection

from ..errors import InputError
from ..loading import default_zero123_path
from .base import ImageConditionedPipeline, ImagePipelineOutput
from .cc_projection import CCProjection
from .image_processing import ImageInput, preprocess_image
from .official_ddim import OfficialDDIMScheduler

POSE_FEATURES = 4


def _as_list(name: str, value: float | Sequence[float]) -> list[float]:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    if isinstance(value, (int, float)):
        return [float(value)]
    try:
        values = [float(v) for v in value]
    except TypeError as error:
        raise TypeError(f"{name} must be a number or a sequence of numbers, got {type(value).__name__}") from error
    if not values:
        raise InputError(f"{name} is an empty sequence")
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{name} must be finite, got {values}")
    return values


def relative_pose_embedding(
    polar: float | Sequence[float], azimuth: float | Sequence[float], radius: float | Sequence[float]
) -> torch.Tensor:
    """Relative pose(s) in degrees / radius units -> ``(V, 1, 4)`` float32 ``[rad(polar), sin, cos, radius]``.

    Scalars broadcast against sequences; sequences must have equal lengths.
    """
    values = [_as_list("polar", polar), _as_list("azimuth", azimuth), _as_list("radius", radius)]
    count = max(len(v) for v in values)
    if any(len(v) not in (1, count) for v in values):
        raise InputError(
            f"polar, azimuth and radius must be scalars or have equal lengths, got {[len(v) for v in values]}"
        )
    polars, azimuths, radii = (v * count if len(v) == 1 else v for v in values)
    rows = [
        [math.radians(p), math.sin(math.radians(a)), math.cos(math.radians(a)), r]
        for p, a, r in zip(polars, azimuths, radii)
    ]
    return torch.tensor(rows, dtype=torch.float64).float()[:, None, :]


def load_community_cc_projection(folder: str | os.PathLike) -> CCProjection:
    """``cc_projection/`` of a diffusers-format Zero-1-to-3 folder written by the community ``Zero1to3`` pipeline
    (the ``kxic/zero123-*`` layout): ``projection.{weight,bias}`` in safetensors or a ``.bin`` state dict, and a
    config without sizes. Sizes come from the weight shapes; ``.bin`` files are read with ``weights_only=True``."""
    folder = Path(folder)
    safetensors_file = folder / "diffusion_pytorch_model.safetensors"
    bin_file = folder / "diffusion_pytorch_model.bin"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        state_dict = load_file(safetensors_file)
    elif bin_file.is_file():
        state_dict = torch.load(bin_file, map_location="cpu", weights_only=True)
    else:
        raise FileNotFoundError(f"{folder} holds no diffusion_pytorch_model.safetensors or .bin")
    weight = state_dict.get("projection.weight")
    if weight is None or weight.ndim != 2:
        raise InputError(f"{folder}: expected a 'projection.weight' matrix, found keys {sorted(state_dict)[:5]}")
    projection = CCProjection(in_features=weight.shape[1], out_features=weight.shape[0])
    projection.load_state_dict(state_dict, strict=True)
    return projection.eval()


class Zero123Pipeline(ImageConditionedPipeline):
    """Zero-1-to-3 novel-view synthesis.

    Components: ``vae``, ``image_encoder`` (``CLIPVisionModelWithProjection``), ``unet`` (8 input channels),
    ``cc_projection`` (:class:`CCProjection`, CLIP dim + 4 -> context dim) and ``scheduler``.

    ``from_pretrained`` loads folders written by ``p2g3d convert`` and also the community diffusers layout of the
    published ``kxic/zero123-*`` weights (``Zero1to3StableDiffusionPipeline``: same component names plus an unused
    ``safety_checker`` and ``feature_extractor``, and a ``cc_projection`` class from a pipeline file); no code from
    such a folder is executed.
    """

    @classmethod
    def embedded_model_path(cls):
        return default_zero123_path()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path=None, **kwargs):
        if pretrained_model_name_or_path is None:  # the embedded demonstration model
            pretrained_model_name_or_path = cls.embedded_model_path()
        folder = Path(str(pretrained_model_name_or_path))
        if not folder.is_dir():
            download_keys = ("cache_dir", "force_download", "proxies", "local_files_only", "token", "revision")
            folder = Path(
                cls.download(str(pretrained_model_name_or_path), **{k: kwargs[k] for k in download_keys if k in kwargs})
            )
        index_file = folder / "model_index.json"
        index = json.loads(index_file.read_text()) if index_file.is_file() else {}
        library = (index.get("cc_projection") or ["p2g3d"])[0]
        if library is None or str(library).startswith("p2g3d"):
            return super().from_pretrained(folder, **kwargs)
        return cls._from_community_folder(folder, kwargs.get("dtype", kwargs.get("torch_dtype")))

    @classmethod
    def _from_community_folder(cls, folder: Path, dtype: torch.dtype | None) -> Zero123Pipeline:
        """Build from the community layout component by component (its cc_projection class is not importable)."""
        dtype_kwargs = {} if dtype is None else {"dtype": dtype}
        projection = load_community_cc_projection(folder / "cc_projection")
        return cls(
            vae=AutoencoderKL.from_pretrained(folder, subfolder="vae", **dtype_kwargs),
            image_encoder=CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", **dtype_kwargs),
            unet=UNet2DConditionModel.from_pretrained(folder, subfolder="unet", **dtype_kwargs),
            cc_projection=projection.to(dtype) if dtype is not None else projection,
            scheduler=OfficialDDIMScheduler.from_pretrained(folder, subfolder="scheduler"),
        )

    @torch.no_grad()
    def encode_context(self, image: torch.Tensor, pose: torch.Tensor) -> torch.Tensor:
        """Image ``(B, 3, H, W)`` in [-1, 1] and pose ``(B, 1, 4)`` (or B == 1 for either) -> ``(B', 1, C)``."""
        embedding = self.encode_clip_embedding(image)
        if embedding.shape[0] == 1 and pose.shape[0] > 1:
            embedding = embedding.expand(pose.shape[0], -1, -1)
        elif pose.shape[0] == 1 and embedding.shape[0] > 1:
            pose = pose.expand(embedding.shape[0], -1, -1)
        return self.project(torch.cat([embedding, pose.to(embedding)], dim=-1))

    @torch.no_grad()
    def encode_concat_latents(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> ``(B, 4, h, w)`` posterior means, unscaled."""
        return self.encode_latent_means(image)

    @torch.no_grad()
    def __call__(
        self,
        image: ImageInput,
        polar: float | Sequence[float] = 0.0,
        azimuth: float | Sequence[float] = 0.0,
        radius: float | Sequence[float] = 0.0,
        num_inference_steps: int = 50,
        guidance_scale: float = 3.0,
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
    ) -> ImagePipelineOutput | tuple:
        """Generate the object seen from relative pose(s).

        Args:
            image: the object on white, framed as Zero-1-to-3 expects; one image, or one per view. Same input
                types as :class:`~p2g3d.pipelines.pix2gestalt.Pix2GestaltPipeline` (transparency -> white).
            polar, azimuth: relative pose in degrees (official meaning, see module docstring); scalars or
                equal-length sequences, one entry per view.
            radius: relative camera distance (official units); scalar or sequence.
            num_inference_steps, guidance_scale, eta, generator, latents, output_type, height, width,
                callback_on_step_end, callback_on_step_end_tensor_inputs: as for pix2gestalt (official guidance 3.0).
            num_images_per_prompt: samples per view. Outputs are ordered view-major: view 0's samples first.
        """
        tensor_inputs = callback_on_step_end_tensor_inputs or ["latents"]
        height, width = self.check_inputs(
            output_type, num_images_per_prompt, tensor_inputs, height, width, guidance_scale, eta
        )
        device = self._execution_device

        # 1. Inputs: image(s) in model space and relative pose(s).
        source = preprocess_image(image, height, width).to(device)
        pose = relative_pose_embedding(polar, azimuth, radius).to(device)
        if source.shape[0] not in (1, pose.shape[0]) and pose.shape[0] != 1:
            raise InputError(f"got {source.shape[0]} images for {pose.shape[0]} poses: give one image or one per pose")

        # 2. Conditioning: context per view, concat latents per view, repeated per sample.
        context = self.encode_context(source, pose)
        concat_latents = self.encode_concat_latents(source).expand(context.shape[0], -1, -1, -1)
        context = context.repeat_interleave(num_images_per_prompt, dim=0)
        concat_latents = concat_latents.repeat_interleave(num_images_per_prompt, dim=0)

        # 3. Timesteps: the scheduler's own (the official list with the default OfficialDDIMScheduler).
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps

        # 4. Starting noise x_T.
        latents = self.prepare_latents(context.shape[0], height, width, generator, latents, device)

        # 5. Denoising loop with classifier-free guidance.
        step_kwargs = self.prepare_step_kwargs(generator, eta)
        with self.progress_bar(total=len(timesteps)) as progress:
            for step_index, t in enumerate(timesteps):
                step = self.denoise(latents, t, context, concat_latents, guidance_scale, step_kwargs)
                latents = self.step_callback(callback_on_step_end, step_index, t, step, tensor_inputs)
                progress.update()

        # 6. Decoding.
        images = self.postprocess(latents, output_type)
        self.maybe_free_model_hooks()
        return ImagePipelineOutput(images=images) if return_dict else (images,)
