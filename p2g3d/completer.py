"""``AmodalCompleter``: the drop-in amodal completion stage.

Takes an image of any size and one or many visible masks in that image's frame; returns, per object, the whole
object and its amodal mask in the same frame. Work flow per call:

1. validate the image (RGB / RGBA / gray; PIL, numpy or tensor) and the masks (list, stack or label map), by the
   rules of :mod:`p2g3d.io`;
2. frame the image and each mask onto the model's square (``"squash"``: official; ``"pad"``: keeps aspect);
3. encode the scene once (CLIP and VAE, shared by all its objects and samples) and each visible mask once, then
   run objects x samples through :class:`Pix2GestaltPipeline` in batches, each sample with its own seeded noise
   (so a result does not depend on the batch it ran in);
4. read each sample's amodal mask (gray <= 250), bring samples back to the original frame, keep the part attached to
   the visible mask (unless ``keep_detached``), vote per pixel, unite with the visible mask, and score agreement.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .acceleration import compile_unet
from .errors import InputError
from .framing import (
    Frame,
    frame_image,
    frame_mask,
    make_frame,
    unframe_image,
    unframe_images_on_device,
    unframe_mask,
    unframe_masks_on_device,
)
from .io import as_image, object_masks
from .loading import DEFAULT_MODEL_NOTE, EMBEDDED_MODELS, load_pipeline, resolve_model_name
from .masks import amodal_mask_from_whole, amodal_masks_on_device, attached_parts, majority_vote, sample_agreement
from .pipelines.image_processing import to_uint8
from .pipelines.pix2gestalt import Pix2GestaltPipeline
from .runtime import resolve_device, resolve_dtype
from .sampling import batched, sample_seed, seeded_noise
from .schedulers import check_step_count, with_scheduler
from .settings import DEFAULT_GUIDANCE, DEFAULT_STEPS, DEFAULT_UNET_ROWS, CompletionSettings, ModelSettings
from .types import AmodalObject

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class PreparedScene:
    """One image ready for sampling: its objects ``[(label, (H, W) bool)]``, framing, and its conditioning
    (context ``(1, 1, C)``, concat latents ``(K, 8, h, w)``), encoded once."""

    objects: list[tuple[int, np.ndarray]]
    frame: Frame
    context: torch.Tensor
    concat_latents: torch.Tensor


def with_model_defaults(settings: CompletionSettings, defaults: dict) -> CompletionSettings:
    """``settings`` with the steps and guidance left unset taken from the model's saved ``defaults``
    (:attr:`Pix2GestaltPipeline.sampling_defaults`), else 50 steps and guidance 2; an unset batch size fills
    ``DEFAULT_UNET_ROWS`` UNet rows (guidance doubles each pair)."""
    steps = settings.num_inference_steps or int(defaults.get("num_inference_steps", DEFAULT_STEPS))
    guidance = settings.guidance_scale
    guidance = float(defaults.get("guidance_scale", DEFAULT_GUIDANCE)) if guidance is None else guidance
    batch_size = settings.batch_size or DEFAULT_UNET_ROWS // (1 if guidance == 1.0 else 2)
    return dataclasses.replace(settings, num_inference_steps=steps, guidance_scale=guidance, batch_size=batch_size)


def seed_key(scene: tuple, count: int) -> tuple[str | int, list[int]]:
    """``(item, object numbers)`` of a scene tuple of :meth:`AmodalCompleter.complete_many` with ``count`` objects."""
    if not 3 <= len(scene) <= 4:
        raise InputError(f"a scene is (image, visible_masks, item[, object_ids]), got a tuple of {len(scene)}")
    object_ids = scene[3] if len(scene) == 4 and scene[3] is not None else range(count)
    object_ids = [int(i) for i in object_ids]
    if len(object_ids) != count:
        raise InputError(f"object_ids names {len(object_ids)} objects, the masks hold {count}")
    return scene[2], object_ids


class AmodalCompleter:
    """Amodal completion of occluded objects in an image, at the image's own size and frame.

    Example::

        completer = AmodalCompleter.from_pretrained("models/pix2gestalt")
        objects = completer(image, [mask_cup, mask_book], seed=0)
        objects[0].amodal_mask  # (H, W) bool in the image's frame

    Args:
        pipeline: a loaded :class:`Pix2GestaltPipeline`.
        device_postprocess: read masks and bring samples back to the image frame on the pipeline's device (kornia)
            instead of the CPU (PIL); default: on CUDA devices only. Masks agree with the CPU path up to resampling
            differences at their edges.
        **settings: fields of :class:`CompletionSettings` (``num_samples``, ``num_inference_steps``,
            ``guidance_scale``, ``eta``, ``framing``, ``mask_rule``, ``batch_size``).
    """

    def __init__(self, pipeline: Pix2GestaltPipeline, *, device_postprocess: bool | None = None, **settings):
        self.settings = with_model_defaults(CompletionSettings(**settings), pipeline.sampling_defaults)
        self.pipeline = with_scheduler(pipeline, self.settings.scheduler)
        check_step_count(self.pipeline.scheduler, self.settings.num_inference_steps)
        self.device_postprocess = (
            pipeline.device.type == "cuda" if device_postprocess is None else bool(device_postprocess)
        )

    @classmethod
    def from_pretrained(
        cls,
        path_or_hub_id: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        compile_mode: str | None = None,
        **settings,
    ) -> AmodalCompleter:
        """Load a converted model folder (or a hub id when online); with no path or ``"embedded"``, the embedded
        demonstration model; ``"embedded-fast"``, its few-step student (3 UNet calls a sample by default, no guidance).

        Args:
            path_or_hub_id: folder written by ``p2g3d convert``, ``p2g3d train`` or ``p2g3d distill``, a hub
                repository id, None / ``"embedded"`` / ``"embedded-fast"`` for the embedded demonstration models
                (trained on synthetic objects only; see the README).
            device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available, else CPU.
            dtype: ``"fp32"``, ``"fp16"``, ``"bf16"``; default fp16 on CUDA, fp32 on CPU.
            compile_mode: None (eager, the faithful path) or a ``torch.compile`` mode (``"reduce-overhead"`` adds
                CUDA graphs), checked against eager on load (:func:`p2g3d.acceleration.compile_unet`).
            **settings: fields of :class:`CompletionSettings`.
        """
        CompletionSettings(**settings)  # bad settings fail before the model loads
        ModelSettings(compile_mode=compile_mode)
        if path_or_hub_id is None or str(path_or_hub_id) in EMBEDDED_MODELS:
            logger.info(DEFAULT_MODEL_NOTE)
        path_or_hub_id = resolve_model_name(path_or_hub_id)
        resolved_device = resolve_device(device)
        pipeline = load_pipeline(
            Pix2GestaltPipeline, path_or_hub_id, resolved_device, resolve_dtype(dtype, resolved_device)
        )
        if compile_mode is not None:
            compile_unet(pipeline, compile_mode)
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
        item: str | int = 0,
        object_ids: Sequence[int] | None = None,
        num_samples: int | None = None,
        show_progress: bool = True,
    ) -> list[AmodalObject]:
        """Complete every object.

        Args:
            image: PIL image, ``(H, W)`` / ``(H, W, 3)`` / ``(H, W, 4)`` uint8 (or [0, 1] float) array, or
                ``(C, H, W)`` tensor; RGBA is composited onto white.
            visible_masks: one ``(H, W)`` binary mask, a list of them, a ``(K, H, W)`` stack, or an ``(H, W)``
                integer instance label map (0 = background); masks follow the mask rule of :mod:`p2g3d.io`.
            seed: base seed; sample j of object i uses its own generator seeded by
                :func:`~p2g3d.sampling.sample_seed` ``(seed, item, i, j)``.
            item: the image's item id in the seed rule (:mod:`p2g3d.sampling`); the commands pass the image's
                file stem, so pass it too to get what ``p2g3d complete`` gives for that file.
            object_ids: the objects' numbers ``i`` in the seed rule (default: their positions 0, 1, ...); give them
                when completing some objects of an image alone, so each keeps its number.
            num_samples: overrides the settings' ``num_samples`` for this call.
            show_progress: show progress bars (over batches, and the pipeline's over steps).

        Returns:
            One :class:`AmodalObject` per visible mask, in input order (label maps: increasing label).
        """
        (objects,) = self.complete_many(
            [(image, visible_masks, item, object_ids)], seed=seed, num_samples=num_samples, show_progress=show_progress
        )
        return objects

    def complete_many(
        self,
        scenes: Sequence[tuple],
        *,
        seed: int = 0,
        num_samples: int | None = None,
        show_progress: bool = True,
    ) -> list[list[AmodalObject]]:
        """Complete several images at once: ``scenes`` is a sequence of ``(image, visible_masks, item)`` or
        ``(image, visible_masks, item, object_ids)`` (as for :meth:`__call__`), and the (image, object, sample) triples
        of all of them are packed into the same batches, so a GPU stays busy with few objects per image. Each image gets
        exactly what :meth:`__call__` gives it with the same seed and item. Returns one list of objects per image."""
        if num_samples is None:
            num_samples = self.settings.num_samples
        else:
            CompletionSettings(num_samples=num_samples)
        prepared = [self._prepare(scene[0], scene[1]) for scene in scenes]
        seed_keys = [seed_key(scene, len(ready.objects)) for scene, ready in zip(scenes, prepared)]
        triples = [
            (s, i, j) for s, scene in enumerate(prepared) for i in range(len(scene.objects)) for j in range(num_samples)
        ]
        samples = [self._empty_samples(len(scene.objects), num_samples) for scene in prepared]
        batches = batched(triples, self.settings.batch_size)
        self.pipeline.set_progress_bar_config(disable=not show_progress, leave=False)
        for batch in tqdm(
            batches, desc="amodal completion", unit="batch", disable=not show_progress or len(batches) < 2
        ):
            noise_seeds = [sample_seed(seed, seed_keys[s][0], seed_keys[s][1][i], j) for s, i, j in batch]
            for (s, i, j), sample in zip(batch, self._sample(prepared, batch, noise_seeds)):
                samples[s][i, j] = sample
        return [
            [self._assemble(label, mask, samples[s][i], scene.frame) for i, (label, mask) in enumerate(scene.objects)]
            for s, scene in enumerate(prepared)
        ]

    def _prepare(self, image, visible_masks) -> PreparedScene:
        """Validate and frame one image and its masks; encode the scene once and each mask once."""
        rgb = as_image(image)
        height, width = rgb.shape[:2]
        objects = object_masks(visible_masks, height, width)
        frame = make_frame(height, width, self.size, self.settings.framing)
        framed_image = frame_image(rgb, frame)
        framed_masks = [frame_mask(mask, frame) for _, mask in objects]
        for (label, _), framed in zip(objects, framed_masks):
            if not framed.any():
                raise InputError(f"visible mask {label} vanishes at the model's {self.size}x{self.size} working size")
        context, concat_latents = self.pipeline.encode_scene_objects(framed_image, np.stack(framed_masks))
        return PreparedScene(objects, frame, context, concat_latents)

    def _empty_samples(self, objects: int, num_samples: int):
        """Storage for an image's samples: ``(K, N, size, size, 3)`` uint8 array, or ``(K, N, 3, size, size)`` uint8
        tensor on the pipeline's device with ``device_postprocess``."""
        if self.device_postprocess:
            return torch.empty(
                (objects, num_samples, 3, self.size, self.size), dtype=torch.uint8, device=self.pipeline.device
            )
        return np.empty((objects, num_samples, self.size, self.size, 3), np.uint8)

    def _sample(self, prepared: Sequence[PreparedScene], batch, seeds: Sequence[int]):
        """Run one batch of (image, object, sample) triples; returns ``(len(batch), size, size, 3)`` uint8 (or a
        ``(len(batch), 3, size, size)`` uint8 tensor on the device with ``device_postprocess``). Each triple
        starts from the noise of its seed in ``seeds`` (the seed rule, :func:`~p2g3d.sampling.sample_seed`)."""
        generators, latents = seeded_noise(self.pipeline, seeds)
        output = self.pipeline(
            context=torch.cat([prepared[s].context for s, _, _ in batch]),
            concat_latents=torch.stack([prepared[s].concat_latents[i] for s, i, _ in batch]),
            num_inference_steps=self.settings.num_inference_steps,
            guidance_scale=self.settings.guidance_scale,
            guidance_interval=self.settings.guidance_interval,
            eta=self.settings.eta,
            generator=generators,
            latents=latents,
            output_type="pt",
        )
        if self.device_postprocess:
            return (255.0 * output.images.float()).to(torch.uint8)  # truncation, as to_uint8 (the official rule)
        return to_uint8(output.images)

    def _unframe(self, samples, frame: Frame) -> tuple[np.ndarray, np.ndarray]:
        """An object's samples at model size -> ``(N, H, W, 3)`` uint8 images and ``(N, H, W)`` bool masks in the
        image's frame."""
        rule = self.settings.mask_rule
        if self.device_postprocess:
            images = unframe_images_on_device(samples, frame).permute(0, 2, 3, 1).cpu().numpy()
            masks = unframe_masks_on_device(amodal_masks_on_device(samples, rule), frame).cpu().numpy()
            return images, masks
        masks = np.stack([unframe_mask(amodal_mask_from_whole(s, rule), frame) for s in samples])
        return np.stack([unframe_image(s, frame) for s in samples]), masks

    def _assemble(self, label: int, visible: np.ndarray, samples, frame: Frame) -> AmodalObject:
        """Per-sample masks at model size -> original frame, vote, containment, confidence."""
        sample_images, sample_masks = self._unframe(samples, frame)
        if not self.settings.keep_detached:
            sample_masks = np.stack([attached_parts(mask, visible) for mask in sample_masks])
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
