"""The novel-view stage: Zero-1-to-3 views of one (completed) object, with cameras in the p2g3d convention.

:class:`NovelViewGenerator` is to :class:`~p2g3d.pipelines.zero123.Zero123Pipeline` what
:class:`~p2g3d.completer.AmodalCompleter` is to the pix2gestalt pipeline: it takes a completed object (an
:class:`~p2g3d.types.AmodalObject`, an RGBA cut-out, ``(rgb, mask)``, or an object already framed by
:func:`~p2g3d.framing.frame_on_white`), frames it the way Zero-1-to-3 was trained (object on white, cropped to its
box, long side 200 of 256 pixels; framed once), and generates views at target cameras given in the project
convention (:mod:`p2g3d.cameras`). The input view is the camera at ``input_elevation``, azimuth 0,
``input_radius``, looking at the origin (:func:`input_camera`); targets are placed in that same world frame, and
each target's Zero-1-to-3 relative pose is derived from the two cameras. Views come back with foreground masks and
their cameras, ready for multi-view reconstruction.

Licences: Zero-1-to-3 code MIT; its released weights are for research use (see the Zero-1-to-3 repository).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from .cameras import (
    ZERO123_FOV_DEG,
    ZERO123_RADIUS,
    Camera,
    intrinsics_from_fov,
    orbit_camera,
    orbit_cameras,
    zero123_relative_pose,
)
from .errors import InputError
from .framing import FramedObject, frame_on_white
from .loading import default_zero123_path, load_pipeline
from .masks import amodal_mask_from_whole
from .runtime import resolve_device, resolve_dtype
from .sampling import batched, derive_seed, seeded_noise
from .schedulers import check_step_count, with_scheduler
from .settings import NovelViewSettings
from .types import MaskedView

if TYPE_CHECKING:  # the pipelines (torch, diffusers) are imported on use, so the CLI starts fast
    from .pipelines import Zero123Pipeline

DEFAULT_RADIUS = ZERO123_RADIUS


def input_camera(size: int, elevation_deg: float = 0.0, radius: float = DEFAULT_RADIUS) -> Camera:
    """The camera of the input view in the novel-view world: azimuth 0 (on world +X, looking at the origin),
    ``elevation_deg``, ``radius``, Zero-1-to-3's field of view, a ``size`` square image."""
    return orbit_camera(elevation_deg, 0.0, radius, intrinsics_from_fov(ZERO123_FOV_DEG, size, size), size, size)


@dataclass(frozen=True, eq=False)
class NovelView:
    """One generated view.

    Attributes:
        image: ``(S, S, 3)`` uint8, the object on white seen from ``camera``.
        mask: ``(S, S)`` bool foreground (gray <= 250, the pix2gestalt rule for objects on white).
        camera: the view's camera in the p2g3d convention (world +Z up, object at the origin).
        relative_pose: ``(delta_polar_deg, delta_azimuth_deg, delta_radius)`` given to Zero-1-to-3.
        view_index, sample_index: position in the requested cameras and sample number.
    """

    image: np.ndarray
    mask: np.ndarray
    camera: Camera
    relative_pose: tuple[float, float, float]
    view_index: int
    sample_index: int

    def masked_view(self) -> MaskedView:
        """This view as the input of a multi-view reconstruction backend."""
        return MaskedView(self.image, self.mask, self.camera)

    @property
    def stem(self) -> str:
        """File stem of this view in a views folder: ``view_VV_sS``."""
        return f"view_{self.view_index:02d}_s{self.sample_index}"

    @property
    def index_fields(self) -> dict:
        """What a views folder records of this view beyond image, mask and camera."""
        polar, azimuth, radius = self.relative_pose
        return {
            "view": self.view_index,
            "sample": self.sample_index,
            "zero123_pose": {"delta_polar_deg": polar, "delta_azimuth_deg": azimuth, "delta_radius": radius},
        }


class NovelViewGenerator:
    """Novel views of one object through :class:`~p2g3d.pipelines.zero123.Zero123Pipeline`.

    Args:
        pipeline: a loaded ``Zero123Pipeline``.
        **settings: fields of :class:`NovelViewSettings` (``num_inference_steps``, ``guidance_scale``, ``eta``,
            ``batch_size``).
    """

    def __init__(self, pipeline: Zero123Pipeline, **settings):
        self.settings = NovelViewSettings(**settings)
        self.pipeline = with_scheduler(pipeline, self.settings.scheduler)
        check_step_count(self.pipeline.scheduler, self.settings.num_inference_steps)

    @classmethod
    def from_pretrained(
        cls, path_or_hub_id: str | os.PathLike | None = None, device=None, dtype=None, **settings
    ) -> NovelViewGenerator:
        """Load a converted Zero-1-to-3 folder, a community diffusers folder, or a hub id (when online); None loads
        the embedded demonstration model (64 px, trained on the project's synthetic objects)."""
        from .pipelines import Zero123Pipeline

        NovelViewSettings(**settings)  # bad settings fail before the model loads
        resolved = resolve_device(device)
        path_or_hub_id = default_zero123_path() if path_or_hub_id is None else path_or_hub_id
        return cls(load_pipeline(Zero123Pipeline, path_or_hub_id, resolved, resolve_dtype(dtype, resolved)), **settings)

    @property
    def size(self) -> int:
        return self.pipeline.default_size

    def input_camera(self, elevation_deg: float = 0.0, radius: float = DEFAULT_RADIUS) -> Camera:
        """The camera of the input view: azimuth 0, Zero-1-to-3's field of view, looking at the origin."""
        return input_camera(self.size, elevation_deg, radius)

    def orbit(self, num_views: int, elevation_deg: float = 0.0, radius: float = DEFAULT_RADIUS) -> list[Camera]:
        """``num_views`` target cameras evenly spaced around the object, starting at the input azimuth."""
        K = intrinsics_from_fov(ZERO123_FOV_DEG, self.size, self.size)
        return orbit_cameras(num_views, elevation_deg, radius, K, self.size, self.size)

    def __call__(
        self,
        source,
        cameras: Sequence[Camera],
        *,
        input_elevation: float = 0.0,
        input_radius: float = DEFAULT_RADIUS,
        num_samples: int = 1,
        seed: int = 0,
        show_progress: bool = True,
    ) -> list[NovelView]:
        """Generate ``num_samples`` views per target camera.

        Args:
            source: AmodalObject, RGBA cut-out (array or PIL), or ``(rgb, mask)``; reframed by
                :func:`~p2g3d.framing.frame_on_white`, or a :class:`~p2g3d.framing.FramedObject` already framed at
                :attr:`size` (framed once, used as it is).
            cameras: target cameras in the p2g3d convention, in the world of :meth:`input_camera`.
            input_elevation: elevation of the input view in degrees (Zero-1-to-3 only sees relative poses, so this
                sets where the input view sits in the world).
            input_radius: camera distance of the input view.
            num_samples: samples per view; sample j of view i uses a generator seeded from ``(seed, i, j)``.

        Returns:
            Views ordered view-major (all samples of view 0 first).
        """
        if not cameras:
            raise InputError("give at least one target camera")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise InputError(f"num_samples must be a positive int, got {num_samples!r}")
        image = self.frame(source).image
        source_camera = self.input_camera(input_elevation, input_radius)
        poses = [zero123_relative_pose(source_camera, camera) for camera in cameras]
        pairs = [(v, s) for v in range(len(cameras)) for s in range(num_samples)]
        batches = batched(pairs, self.settings.batch_size)
        self.pipeline.set_progress_bar_config(disable=not show_progress, leave=False)
        views: list[NovelView] = []
        for batch in tqdm(batches, desc="novel views", unit="batch", disable=not show_progress or len(batches) < 2):
            images = self._sample(image, [poses[v] for v, _ in batch], batch, seed)
            for (v, s), generated in zip(batch, images):
                views.append(NovelView(generated, amodal_mask_from_whole(generated), cameras[v], poses[v], v, s))
        return views

    def frame(self, source) -> FramedObject:
        """``source`` framed as Zero-1-to-3 was trained, at :attr:`size` (a :class:`FramedObject` of that size is
        returned as it is)."""
        if isinstance(source, FramedObject):
            if source.image.shape[:2] != (self.size, self.size):
                raise InputError(f"a framed object must be {self.size}x{self.size}, got {source.image.shape[:2]}")
            return source
        return frame_on_white(source, self.size)

    def _sample(self, image: np.ndarray, poses, batch, seed: int) -> np.ndarray:
        from .pipelines.image_processing import to_uint8

        generators, latents = seeded_noise(self.pipeline, [derive_seed(seed, v, s) for v, s in batch])
        polar, azimuth, radius = (list(values) for values in zip(*poses))
        output = self.pipeline(
            image=image,
            polar=polar,
            azimuth=azimuth,
            radius=radius,
            num_inference_steps=self.settings.num_inference_steps,
            guidance_scale=self.settings.guidance_scale,
            eta=self.settings.eta,
            generator=generators,
            latents=latents,
            output_type="pt",
        )
        return to_uint8(output.images)
