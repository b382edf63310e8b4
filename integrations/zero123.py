"""Zero-1-to-3 novel views of a completed object, with cameras in the p2g3d convention.

Takes a completed object (an :class:`~p2g3d.types.AmodalObject`, an RGBA cut-out, or an RGB image with a mask),
reframes it the way Zero-1-to-3 was trained (object on white, cropped to its box, long side 200 of 256 pixels),
and generates views at target cameras given in the project convention (:mod:`p2g3d.cameras`). The input view is
the camera at ``input_elevation``, azimuth 0, ``input_radius``, looking at the origin; targets are placed in that
same world frame, and each target's Zero-1-to-3 relative pose is derived from the two cameras. Views come back
with foreground masks and their cameras, ready for multi-view reconstruction.

Licences: Zero-1-to-3 code MIT; its released weights are for research use (see the Zero-1-to-3 repository).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

from p2g3d.cameras import (
    ZERO123_FOV_DEG,
    ZERO123_RADIUS,
    Camera,
    intrinsics_from_fov,
    orbit_cameras,
    zero123_relative_pose,
)
from p2g3d.loading import default_zero123_path, load_pipeline
from p2g3d.masks import amodal_mask_from_whole
from p2g3d.runtime import resolve_device, resolve_dtype
from p2g3d.sampling import SamplingSettings, batched, derive_seed, seeded_noise
from p2g3d.types import MaskedView

from .image_to_3d import ImageTo3DResult, frame_on_white, orbit_input_camera
from .registry import create_backend

if TYPE_CHECKING:  # the pipelines (torch, diffusers) are imported on use, so the CLI starts fast
    from p2g3d.pipelines import Zero123Pipeline

TRAINING_SIZE = 256
TRAINING_OBJECT_SIZE = 200
DEFAULT_RADIUS = ZERO123_RADIUS


@dataclass(frozen=True)
class NovelViewSettings(SamplingSettings):
    """Settings of :class:`NovelViewGenerator` (the ``p2g3d views`` options are generated from these fields);
    as :class:`~p2g3d.sampling.SamplingSettings` with Zero-1-to-3's official guidance 3.0."""

    guidance_scale: float = field(
        default=3.0, metadata={"flag": "--guidance", "help": "classifier-free guidance scale"}
    )


def reframe_for_zero123(source, size: int = TRAINING_SIZE, object_size: int | None = None) -> np.ndarray:
    """Completed object -> ``(size, size, 3)`` uint8 Zero-1-to-3 input.

    The object (pixels of its mask) is composited onto white, cropped to its box, resized (Lanczos) so that its
    long side is ``object_size`` (default 200/256 of ``size``, as in training) and centred on a white square
    (:func:`~p2g3d.integrations.image_to_3d.frame_on_white`).
    """
    object_size = object_size or round(size * TRAINING_OBJECT_SIZE / TRAINING_SIZE)
    return frame_on_white(source, size, object_size / size)[0]


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
        self.pipeline = pipeline
        self.settings = NovelViewSettings(**settings)

    @classmethod
    def from_pretrained(
        cls, path_or_hub_id: str | os.PathLike | None = None, device=None, dtype=None, **settings
    ) -> NovelViewGenerator:
        """Load a converted Zero-1-to-3 folder, a community diffusers folder, or a hub id (when online); None loads
        the embedded demonstration model (64 px, trained on the project's synthetic objects)."""
        from p2g3d.pipelines import Zero123Pipeline

        NovelViewSettings(**settings)  # bad settings fail before the model loads
        resolved = resolve_device(device)
        path_or_hub_id = default_zero123_path() if path_or_hub_id is None else path_or_hub_id
        return cls(load_pipeline(Zero123Pipeline, path_or_hub_id, resolved, resolve_dtype(dtype, resolved)), **settings)

    @property
    def size(self) -> int:
        return self.pipeline.default_size

    def input_camera(self, elevation_deg: float = 0.0, radius: float = DEFAULT_RADIUS) -> Camera:
        """The camera of the input view: azimuth 0, Zero-1-to-3's field of view, looking at the origin."""
        return orbit_input_camera(self.size, elevation_deg, radius)

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
                :func:`reframe_for_zero123`.
            cameras: target cameras in the p2g3d convention, in the world of :meth:`input_camera`.
            input_elevation: elevation of the input view in degrees (Zero-1-to-3 only sees relative poses, so this
                sets where the input view sits in the world).
            input_radius: camera distance of the input view.
            num_samples: samples per view; sample j of view i uses a generator seeded from ``(seed, i, j)``.

        Returns:
            Views ordered view-major (all samples of view 0 first).
        """
        if not cameras:
            raise ValueError("give at least one target camera")
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
        image = reframe_for_zero123(source, self.size)
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

    def _sample(self, image: np.ndarray, poses, batch, seed: int) -> np.ndarray:
        from p2g3d.pipelines.image_processing import to_uint8

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


class Zero123ImageTo3D:
    """Image-to-3D through Zero-1-to-3: novel views around the object, then a multi-view reconstructor.

    The object is framed as Zero-1-to-3 expects; its camera is the model's input camera (azimuth 0, elevation
    ``input_elevation``, radius 1.5, Zero-1-to-3's field of view); views are generated on rings of ``num_views``
    cameras at each of ``ring_elevations`` in that world, and the mesh is reconstructed from them (and from the
    framed input with its mask, with ``use_input_view``) by the registered reconstructor ``reconstructor``
    (``"carve"`` by default; ``"pytorch3d"``, ``"nerfstudio"`` where installed). Frames: see
    :mod:`p2g3d.integrations.image_to_3d`.

    Args:
        model: Zero-1-to-3 folder or hub id; None: the embedded demonstration model.
        reconstructor: name of a registered multi-view reconstruction backend.
        reconstructor_options: its options (default for carving: 64 voxels per side over a 1.6-unit box, a voxel kept
            when 80% of the views hold it, since generated views disagree a little).
        num_views: cameras per ring, evenly spaced in azimuth from the input's.
        ring_elevations: elevations of the rings in degrees.
        input_elevation: elevation of the input view in degrees (Zero-1-to-3 only sees relative poses).
        use_input_view: reconstruct from the framed input too.
        largest_part_only: keep only the largest connected part of the mesh (generated views that disagree leave
            floating fragments in a visual hull).
        num_inference_steps, guidance_scale, batch_size: :class:`NovelViewSettings` of the view generation.
        device, dtype: where the model runs.
    """

    name = "zero123"

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        reconstructor: str = "carve",
        reconstructor_options: dict | None = None,
        num_views: int = 8,
        ring_elevations: Sequence[float] = (0.0, 30.0),
        input_elevation: float = 0.0,
        use_input_view: bool = True,
        largest_part_only: bool = True,
        num_inference_steps: int = NovelViewSettings.num_inference_steps,
        guidance_scale: float = NovelViewSettings.guidance_scale,
        batch_size: int = NovelViewSettings.batch_size,
        device=None,
        dtype=None,
    ):
        if isinstance(num_views, bool) or not isinstance(num_views, int) or num_views < 1:
            raise ValueError(f"num_views must be a positive int, got {num_views!r}")
        if not ring_elevations or not all(-90.0 < float(e) < 90.0 for e in ring_elevations):
            raise ValueError(f"ring_elevations must be non-empty, each in (-90, 90), got {ring_elevations!r}")
        if not -90.0 < float(input_elevation) < 90.0:
            raise ValueError(f"input_elevation must be in (-90, 90), got {input_elevation!r}")
        carving = {"resolution": 64, "bounds": ((-0.8,) * 3, (0.8,) * 3), "min_agreement": 0.8}
        options = carving if reconstructor == "carve" else {}
        self.reconstructor = create_backend(reconstructor, **{**options, **(reconstructor_options or {})})
        self.num_views, self.ring_elevations = num_views, tuple(float(e) for e in ring_elevations)
        self.input_elevation, self.use_input_view = float(input_elevation), use_input_view
        self.largest_part_only = largest_part_only
        self.generator = NovelViewGenerator.from_pretrained(
            model,
            device=device,
            dtype=dtype,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            batch_size=batch_size,
        )

    def generate(self, source, *, seed: int = 0, show_progress: bool = True) -> ImageTo3DResult:
        """Mesh of ``source`` (AmodalObject, RGBA cut-out or ``(rgb, mask)``) and its input camera."""
        size = self.generator.size
        image, mask, framing = frame_on_white(source, size)
        input_camera = self.generator.input_camera(self.input_elevation)
        cameras = [
            camera for elevation in self.ring_elevations for camera in self.generator.orbit(self.num_views, elevation)
        ]
        generated = self.generator(  # frames the source exactly as frame_on_white above
            source, cameras, input_elevation=self.input_elevation, seed=seed, show_progress=show_progress
        )
        views = [MaskedView(image, mask, input_camera)] if self.use_input_view else []
        views += [view.masked_view() for view in generated if view.mask.any()]
        mesh = self.reconstructor.reconstruct(views)
        if self.largest_part_only:
            mesh = max(mesh.split(only_watertight=False), key=lambda part: len(part.faces), default=mesh)
        return ImageTo3DResult(mesh, framing.camera_in_source(input_camera), tuple(views), self.name)
