"""``AmodalCompleter``: the drop-in amodal completion stage.

Takes an image of any size and one or many visible masks in that image's frame; returns, per object, the whole
object and its amodal mask in the same frame. Work flow per call:

1. validate the image (RGB / RGBA / gray; PIL, numpy or tensor) and the masks (list of masks or label map);
2. frame the image and each mask onto the model's square (``"squash"``: official; ``"pad"``: keeps aspect);
3. run objects x samples through :class:`Pix2GestaltPipeline` in batches, each sample with its own seeded noise
   (so a result does not depend on the batch it ran in);
4. read each sample's amodal mask (gray <= 250), bring samples back to the original frame, vote per pixel, unite
   with the visible mask, and score agreement.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import PIL.Image
import torch
from tqdm.auto import tqdm

from .framing import FRAMINGS, Frame, frame_image, frame_mask, make_frame, unframe_image, unframe_mask
from .io import as_rgb, validate_mask
from .loading import load_pipeline
from .masks import MASK_RULES, amodal_mask_from_whole, majority_vote, sample_agreement
from .pipelines.image_processing import to_uint8
from .pipelines.pix2gestalt import Pix2GestaltPipeline
from .runtime import resolve_device, resolve_dtype
from .types import AmodalObject

logger = logging.getLogger(__name__)

MaskInput = np.ndarray | PIL.Image.Image | torch.Tensor


def image_to_array(image) -> np.ndarray:
    """PIL image, ``(H, W[, C])`` uint8 array or ``(C, H, W)`` tensor in [0, 1] -> ``(H, W, 3)`` uint8 RGB."""
    if isinstance(image, PIL.Image.Image):
        if image.mode not in ("1", "L", "P", "RGB", "RGBA", "LA"):
            raise ValueError(f"image has pixel mode {image.mode!r}; only 8-bit images are supported")
        return as_rgb(np.asarray(image.convert("RGBA")))
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3, 4):
            raise ValueError(f"image tensor must be (C, H, W) with C in 1, 3, 4, got shape {tuple(image.shape)}")
        if image.is_floating_point():
            if image.min() < 0 or image.max() > 1:
                raise ValueError("float image tensors must lie in [0, 1]")
            image = (image * 255.0).round().to(torch.uint8)
        return as_rgb(image.permute(1, 2, 0).cpu().numpy())
    if isinstance(image, np.ndarray):
        if np.issubdtype(image.dtype, np.floating):
            if image.min() < 0 or image.max() > 1:
                raise ValueError("float image arrays must lie in [0, 1]")
            image = np.round(image * 255.0).astype(np.uint8)
        return as_rgb(image)
    raise TypeError(f"image must be a PIL image, numpy array or torch tensor, got {type(image).__name__}")


def split_masks(visible_masks, height: int, width: int) -> list[tuple[int, np.ndarray]]:
    """One mask, a list of masks, or an instance label map -> ``[(label, (H, W) bool), ...]``.

    A 2-D integer array with values other than {0, 1} / {0, 255} is a label map: each non-zero value is one object.
    """
    def as_array(mask) -> np.ndarray:
        if isinstance(mask, PIL.Image.Image):
            return np.asarray(mask.convert("L"))
        if isinstance(mask, torch.Tensor):
            return mask.detach().cpu().numpy()
        if isinstance(mask, np.ndarray):
            return mask
        raise TypeError(f"visible mask must be a numpy array, PIL image or tensor, got {type(mask).__name__}")

    if isinstance(visible_masks, (list, tuple)):
        if not visible_masks:
            raise ValueError("got an empty list of visible masks")
        masks = [(i, as_array(m)) for i, m in enumerate(visible_masks)]
    else:
        array = as_array(visible_masks)
        if array.ndim == 3 and array.shape[0] > 1 and array.shape[1:] == (height, width):
            masks = list(enumerate(array))  # (K, H, W) stack
        elif array.ndim == 2 and np.issubdtype(array.dtype, np.integer) and not (
            set(np.unique(array).tolist()) <= {0, 1} or set(np.unique(array).tolist()) <= {0, 255}
        ):
            labels = [int(v) for v in np.unique(array) if v != 0]
            masks = [(label, array == label) for label in labels]
        else:
            masks = [(0, array)]
    checked = []
    for label, mask in masks:
        mask = validate_mask(mask, name=f"visible mask {label}")
        if mask.shape != (height, width):
            raise ValueError(f"visible mask {label} is {mask.shape[0]}x{mask.shape[1]} but the image is {height}x{width}")
        checked.append((label, mask))
    return checked


def sample_seed(seed: int, object_index: int, sample_index: int) -> int:
    """Independent, reproducible seed of one (object, sample) pair."""
    return int(np.random.SeedSequence([seed, object_index, sample_index]).generate_state(1, dtype=np.uint64)[0] >> 1)


def seeded_noise(pipeline, pairs, seed: int) -> tuple[list[torch.Generator], torch.Tensor]:
    """One CPU generator per ``(item, sample)`` pair, seeded by :func:`sample_seed`, and the starting noise
    ``(len(pairs), C, h, w)`` drawn from them: a pair's result does not depend on the batch it runs in."""
    side = pipeline.default_size // pipeline.vae_scale_factor
    generators = [torch.Generator("cpu").manual_seed(sample_seed(seed, i, j)) for i, j in pairs]
    shape = (pipeline.unet.config.out_channels, side, side)
    return generators, torch.stack([torch.randn(shape, generator=g) for g in generators])


class AmodalCompleter:
    """Amodal completion of occluded objects in an image, at the image's own size and frame.

    Example::

        completer = AmodalCompleter.from_pretrained("models/pix2gestalt")
        objects = completer(image, [mask_cup, mask_book], seed=0)
        objects[0].amodal_mask  # (H, W) bool in the image's frame

    Args:
        pipeline: a loaded :class:`Pix2GestaltPipeline`.
        num_samples: samples per object (the paper votes over several; the demo uses 4).
        num_inference_steps: requested DDIM steps (official default 200; 50 is close and 4x faster).
        guidance_scale: classifier-free guidance (official 2.0).
        eta: DDIM eta (official 1.0).
        framing: ``"squash"`` (official, whole image resized to the square) or ``"pad"`` (aspect kept).
        mask_rule: ``"rgb"`` (correct RGB->gray, default) or ``"official"`` (the official channel-swapped gray).
        batch_size: (object, sample) pairs per pipeline call; lower it when memory is short.
    """

    def __init__(
        self,
        pipeline: Pix2GestaltPipeline,
        *,
        num_samples: int = 4,
        num_inference_steps: int = 50,
        guidance_scale: float = 2.0,
        eta: float = 1.0,
        framing: str = "squash",
        mask_rule: str = "rgb",
        batch_size: int = 8,
    ):
        if framing not in FRAMINGS:
            raise ValueError(f"framing must be one of {FRAMINGS}, got {framing!r}")
        if mask_rule not in MASK_RULES:
            raise ValueError(f"mask_rule must be one of {MASK_RULES}, got {mask_rule!r}")
        for name, value in (("num_samples", num_samples), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.pipeline = pipeline
        self.num_samples = num_samples
        self.num_inference_steps = num_inference_steps
        self.guidance_scale = guidance_scale
        self.eta = eta
        self.framing = framing
        self.mask_rule = mask_rule
        self.batch_size = batch_size

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        **settings,
    ) -> AmodalCompleter:
        """Load a converted model folder (or a hub id when online); with no path, the embedded demonstration model.

        Args:
            path_or_hub_id: folder written by ``p2g3d convert`` or ``p2g3d train``, a hub repository id, or None
                for the embedded demonstration model (trained on synthetic objects only; see the README).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available, else CPU.
            dtype: ``"fp32"``, ``"fp16"``, ``"bf16"``; default fp16 on CUDA, fp32 on CPU.
            **settings: keyword arguments of :class:`AmodalCompleter`.
        """
        resolved_device = resolve_device(device)
        pipeline = load_pipeline(path_or_hub_id, resolved_device, resolve_dtype(dtype, resolved_device))
        return cls(pipeline, **settings)

    @property
    def size(self) -> int:
        """Side of the model's square working frame in pixels."""
        return self.pipeline.default_size

    def __call__(
        self,
        image,
        visible_masks,
        *,
        seed: int = 0,
        num_samples: int | None = None,
        show_progress: bool = True,
    ) -> list[AmodalObject]:
        """Complete every object.

        Args:
            image: PIL image, ``(H, W)`` / ``(H, W, 3)`` / ``(H, W, 4)`` uint8 (or [0, 1] float) array, or
                ``(C, H, W)`` tensor; RGBA is composited onto white.
            visible_masks: one ``(H, W)`` binary mask, a list of them, a ``(K, H, W)`` stack, or an ``(H, W)``
                integer instance label map (0 = background).
            seed: base seed; sample j of object i uses its own generator derived from ``(seed, i, j)``.
            num_samples: overrides the completer's ``num_samples`` for this call.
            show_progress: show a progress bar over batches.

        Returns:
            One :class:`AmodalObject` per visible mask, in input order (label maps: increasing label).
        """
        rgb = image_to_array(image)
        height, width = rgb.shape[:2]
        objects = split_masks(visible_masks, height, width)
        num_samples = num_samples or self.num_samples
        frame = make_frame(height, width, self.size, self.framing)
        framed_image = frame_image(rgb, frame)
        framed_masks = [frame_mask(mask, frame) for _, mask in objects]
        for (label, _), framed in zip(objects, framed_masks):
            if not framed.any():
                raise ValueError(f"visible mask {label} vanishes at the model's {self.size}x{self.size} working size")

        jobs = [(i, j) for i in range(len(objects)) for j in range(num_samples)]
        samples = np.empty((len(objects), num_samples, self.size, self.size, 3), dtype=np.uint8)
        batches = [jobs[k : k + self.batch_size] for k in range(0, len(jobs), self.batch_size)]
        for batch in tqdm(batches, desc="amodal completion", unit="batch", disable=not show_progress or len(batches) < 2):
            samples[tuple(zip(*batch))] = self._sample(framed_image, framed_masks, batch, seed)
        return [
            self._assemble(label, mask, samples[i], frame) for i, (label, mask) in enumerate(objects)
        ]

    def _sample(self, framed_image: np.ndarray, framed_masks: list[np.ndarray], batch, seed: int) -> np.ndarray:
        """Run one batch of (object, sample) pairs; returns ``(len(batch), size, size, 3)`` uint8."""
        pipe = self.pipeline
        generators, latents = seeded_noise(pipe, batch, seed)
        images = np.repeat(framed_image[None], len(batch), axis=0)
        masks = np.stack([framed_masks[i] for i, _ in batch])
        output = pipe(
            image=images,
            visible_mask=masks,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            eta=self.eta,
            generator=generators,
            latents=latents,
            output_type="pt",
        )
        return to_uint8(output.images)

    def _assemble(self, label: int, visible: np.ndarray, samples: np.ndarray, frame: Frame) -> AmodalObject:
        """Per-sample masks at model size -> original frame, vote, containment, confidence."""
        sample_masks = np.stack([unframe_mask(amodal_mask_from_whole(s, self.mask_rule), frame) for s in samples])
        sample_images = np.stack([unframe_image(s, frame) for s in samples])
        consensus = majority_vote(sample_masks)
        agreement = sample_agreement(sample_masks, consensus)
        amodal = consensus | visible
        best = int(np.argmax(agreement))
        whole_rgb = sample_images[best]
        whole_rgba = np.concatenate([whole_rgb, (amodal.astype(np.uint8) * 255)[..., None]], axis=2)
        return AmodalObject(
            label=label,
            whole_rgb=whole_rgb,
            whole_rgba=whole_rgba,
            amodal_mask=amodal,
            visible_mask=visible.copy(),
            occluded_mask=amodal & ~visible,
            sample_images=sample_images,
            sample_masks=sample_masks,
            confidence=float(agreement.mean()),
            best_sample=best,
        )
