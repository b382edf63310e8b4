"""The ``zero123`` image-to-3D backend: novel views of the object (:mod:`p2g3d.novel_views`), then a registered
multi-view reconstructor. Frames: see :mod:`p2g3d.integrations.image_to_3d`.

Licences: Zero-1-to-3 code MIT; its released weights are for research use (see the Zero-1-to-3 repository).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from p2g3d.errors import InputError
from p2g3d.framing import frame_on_white
from p2g3d.novel_views import NovelViewGenerator
from p2g3d.settings import MAX_VIEWS, NovelViewSettings
from p2g3d.types import MaskedView

from .image_to_3d import ImageTo3DResult
from .registry import create_backend


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
        if isinstance(num_views, bool) or not isinstance(num_views, int) or not 1 <= num_views <= MAX_VIEWS:
            raise InputError(f"num_views must be an int in [1, {MAX_VIEWS}], got {num_views!r}")
        if not ring_elevations or not all(-90.0 < float(e) < 90.0 for e in ring_elevations):
            raise InputError(f"ring_elevations must be non-empty, each in (-90, 90), got {ring_elevations!r}")
        if not -90.0 < float(input_elevation) < 90.0:
            raise InputError(f"input_elevation must be in (-90, 90), got {input_elevation!r}")
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
        framed = frame_on_white(source, self.generator.size)  # framed once, for the input view and the generator
        input_camera = self.generator.input_camera(self.input_elevation)
        cameras = [
            camera for elevation in self.ring_elevations for camera in self.generator.orbit(self.num_views, elevation)
        ]
        generated = self.generator(
            framed, cameras, input_elevation=self.input_elevation, seed=seed, show_progress=show_progress
        )
        views = [MaskedView(framed.image, framed.mask, input_camera)] if self.use_input_view else []
        views += [view.masked_view() for view in generated if view.mask.any()]
        mesh = self.reconstructor.reconstruct(views)
        if self.largest_part_only:
            mesh = max(mesh.split(only_watertight=False), key=lambda part: len(part.faces), default=mesh)
        return ImageTo3DResult(mesh, framed.framing.camera_in_source(input_camera), tuple(views), self.name)
