"""Multi-view consistent completion: per-view amodal completions reconciled in 3D, consistent masks back per view.

Each view of a capture is completed on its own (:class:`~p2g3d.AmodalCompleter`), and each says something
different about the object: a visible pixel is hard evidence that its ray hits the object; a pixel known to show
the background (neither the object nor an occluder, when the occluders' masks are known) is hard evidence that
its ray is empty; in the rest of the image the completer's samples give soft evidence. :func:`silhouette_probability`
turns that into one map per view, the chance that the pixel lies inside the object's whole silhouette, read from the
samples by one of :data:`EVIDENCE`: ``"vote"`` (default), the per-pixel majority vote of the samples (1 or 0), or
``"share"``, the share of samples that cover the pixel.

:class:`SilhouetteFusion` combines the maps in a voxel grid (:class:`VoxelGrid`), by one of
:data:`FUSION_METHODS`:

* ``"log-odds"`` (default): the Bayesian occupancy grid of silhouette cues (Franco and Boyer, "Fusion of multi-view
  silhouette cues using a space occupancy grid", ICCV 2005). Voxel ``X`` projects to a pixel with silhouette
  probability ``S_v`` in view ``v``; under a sensor model with detection rate ``P_d = P(pixel in silhouette | X
  occupied)`` and false-alarm rate ``P_f = P(pixel in silhouette | X empty)`` (another part of the object on the
  same ray), each view adds ``log[(P_d S + (1 - P_d)(1 - S)) / (P_f S + (1 - P_f)(1 - S))]`` to the voxel's
  log-odds of occupancy, and the voxel is occupied where the sum is positive. With ``P_d`` = 1 this is the visual
  hull; with ``P_d`` = 0.97 and ``P_f`` = 0.5 a view adds 0.66 where its silhouette holds the voxel and -2.8 where it
  does not, so with 8 views one view that misses a part (an under-completion) is outvoted by the others, while a
  voxel outside the silhouettes of two views stays carved (fewer than 5 views: every view carves);
* ``"k-of-n"``: the robust visual hull: a voxel is kept when the silhouettes of all views but ``outliers`` hold it;
* ``"intersection"``: the visual hull of the silhouettes (every completed mask taken as truth; what carving the
  per-view completions gives).

The field is smoothed by a Gaussian of ``smoothing`` voxels and meshed at its zero level (marching cubes), and the
mesh rendered into every view gives the consistent amodal masks (united with the visible masks, which are hard
evidence). :class:`MultiViewCompleter` runs the whole stage: completer, evidence, fusion, masks.

Frames: views and meshes are in the world frame of the cameras (:mod:`p2g3d.cameras`); the grid is indexed
``[x, y, z]`` over its box.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import trimesh
from tqdm.auto import tqdm

from .cameras import Camera
from .errors import InputError
from .meshes import mesh_from_field
from .types import AmodalObject, MaskedView, check_views
from .validation import check_choice, check_number

logger = logging.getLogger(__name__)

FUSION_METHODS = ("log-odds", "k-of-n", "intersection")
EVIDENCE = ("vote", "share")
MAX_RESOLUTION = 256  # 256^3 voxel centres take 400 MB


@dataclass(frozen=True)
class VoxelGrid:
    """An ``N^3`` grid of voxel centres over the box ``low`` - ``high`` (world frame), corners included.

    Attributes:
        resolution: voxels per side ``N``.
        low, high: ``(3,)`` corners of the box.
    """

    resolution: int = 96
    low: tuple[float, float, float] = (-0.8, -0.8, -0.8)
    high: tuple[float, float, float] = (0.8, 0.8, 0.8)

    def __post_init__(self):
        check_number(self, "resolution", integer=True, low=8, high=MAX_RESOLUTION)
        low, high = np.asarray(self.low, dtype=np.float64), np.asarray(self.high, dtype=np.float64)
        if low.shape != (3,) or high.shape != (3,) or not (high > low).all():
            raise InputError(
                f"the box must be (x0, y0, z0), (x1, y1, z1) with x1 > x0 etc., got {self.low}, {self.high}"
            )
        object.__setattr__(self, "low", tuple(low.tolist()))
        object.__setattr__(self, "high", tuple(high.tolist()))

    @classmethod
    def cube(cls, half_side: float, resolution: int = 96) -> VoxelGrid:
        """The grid over the cube of half side ``half_side`` around the origin."""
        if not half_side > 0:
            raise InputError(f"half_side must be positive, got {half_side!r}")
        return cls(resolution, (-half_side,) * 3, (half_side,) * 3)

    def centres(self) -> np.ndarray:
        """``(N^3, 3)`` voxel centres, in ``[x, y, z]`` index order (``reshape(N, N, N)`` gives the grid)."""
        axes = [np.linspace(self.low[i], self.high[i], self.resolution) for i in range(3)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def silhouette_probability(
    visible_mask: np.ndarray,
    sample_masks: np.ndarray | None = None,
    occluder_mask: np.ndarray | None = None,
    evidence: str = "vote",
) -> np.ndarray:
    """``(H, W)`` float32: the chance that each pixel lies inside the object's whole (amodal) silhouette.

    1 on the visible mask; 0 on pixels known to show the background (neither visible object nor occluder; only
    when ``occluder_mask`` is given); elsewhere, from ``sample_masks`` ``(S, H, W)``, their majority vote as 1 or 0
    (``evidence="vote"``) or the share of them covering the pixel (``"share"``); 0 without samples (then the map
    is the visible mask).
    """
    if evidence not in EVIDENCE:
        raise InputError(f"evidence must be one of {EVIDENCE}, got {evidence!r}")
    visible = np.asarray(visible_mask, dtype=bool)
    probability = np.zeros(visible.shape, np.float32)
    if sample_masks is not None:
        samples = np.asarray(sample_masks, dtype=bool)
        if samples.ndim != 3 or samples.shape[1:] != visible.shape:
            raise InputError(f"sample_masks must be (S, {visible.shape[0]}, {visible.shape[1]}), got {samples.shape}")
        share = samples.mean(0, dtype=np.float32)
        probability = (share > 0.5).astype(np.float32) if evidence == "vote" else share
    if occluder_mask is not None:
        occluder = np.asarray(occluder_mask, dtype=bool)
        if occluder.shape != visible.shape:
            raise InputError(f"occluder_mask must be {visible.shape} like the visible mask, got {occluder.shape}")
        probability[~occluder] = 0.0
    probability[visible] = 1.0
    return probability


@dataclass(frozen=True)
class SilhouetteFusion:
    """How silhouette maps of several views become one occupancy field (module docstring).

    Attributes:
        method: one of :data:`FUSION_METHODS`.
        evidence: how the samples become silhouette probabilities: one of :data:`EVIDENCE`.
        detection: ``P_d`` of ``"log-odds"``: the chance that a view's silhouette covers an occupied voxel.
        false_alarm: ``P_f`` of ``"log-odds"``: the chance that it covers an empty one (another part on the ray).
        outliers: views of ``"k-of-n"`` allowed to leave a voxel out.
        smoothing: Gaussian sigma of the field before meshing, in voxels (0: none).
    """

    method: str = "log-odds"
    evidence: str = "vote"
    detection: float = 0.97
    false_alarm: float = 0.5
    outliers: int = 1
    smoothing: float = 1.0

    def __post_init__(self):
        check_choice(self, "method", FUSION_METHODS)
        check_choice(self, "evidence", EVIDENCE)
        check_number(self, "false_alarm", low=0, high=1, low_open=True, high_open=True)
        check_number(self, "detection", low=self.false_alarm, high=1, low_open=True, high_open=True)
        check_number(self, "outliers", integer=True, low=0)
        check_number(self, "smoothing", low=0)

    def field(self, probabilities: Sequence[np.ndarray], cameras: Sequence[Camera], grid: VoxelGrid) -> np.ndarray:
        """``(N, N, N)`` float32 field over ``grid``, positive inside the fused object, from one ``(H, W)``
        silhouette probability map per camera (points outside a view's image count as outside its silhouette)."""
        from scipy.ndimage import gaussian_filter

        if len(probabilities) != len(cameras) or len(cameras) < 2:
            raise InputError(
                f"need one probability map per camera and at least 2 views, got {len(probabilities)} "
                f"maps and {len(cameras)} cameras"
            )
        centres = grid.centres()
        total = np.zeros(len(centres), np.float32)
        if self.method == "intersection":
            total += 1.0
        for probability, camera in zip(probabilities, cameras):
            if probability.shape != (camera.height, camera.width):
                raise InputError(f"a probability map is {probability.shape}, its camera {camera.height}x{camera.width}")
            rows, cols, inside = camera.pixel_indices(centres)
            silhouette = np.where(inside, probability[rows, cols], 0.0).astype(np.float32)
            if self.method == "log-odds":
                total += self._log_odds(silhouette)
            elif self.method == "k-of-n":
                total += silhouette >= 0.5
            else:
                total = np.minimum(total, (silhouette >= 0.5).astype(np.float32))
        if self.method == "k-of-n":
            total -= len(cameras) - self.outliers - 0.5
        elif self.method == "intersection":
            total -= 0.5
        field = total.reshape((grid.resolution,) * 3)
        return gaussian_filter(field, self.smoothing) if self.smoothing > 0 else field

    @property
    def label(self) -> str:
        """A short name: the method, and the evidence when it is not the majority vote."""
        return self.method if self.evidence == "vote" else f"{self.method}, sample share"

    def _log_odds(self, silhouette: np.ndarray) -> np.ndarray:
        hit = self.detection * silhouette + (1 - self.detection) * (1 - silhouette)
        false_hit = self.false_alarm * silhouette + (1 - self.false_alarm) * (1 - silhouette)
        return np.log(hit / false_hit)


@dataclass(frozen=True, eq=False)
class MultiViewCompletion:
    """The result of :class:`MultiViewCompleter` for one capture.

    Attributes:
        field: ``(N, N, N)`` float32 fused field over ``grid``, positive inside.
        grid: the voxel grid.
        mesh: the zero level of ``field`` (world frame), uncoloured.
        masks: ``(V, H, W)`` bool consistent amodal masks: the mesh rendered into each view, united with the
            visible mask.
        probabilities: ``(V, H, W)`` float32 silhouette probability per view (:func:`silhouette_probability`).
        completions: the per-view :class:`~p2g3d.types.AmodalObject`.
        seconds: wall time of ``"completion"`` and ``"fusion"`` (fusion, meshing and masks).
    """

    field: np.ndarray
    grid: VoxelGrid
    mesh: trimesh.Trimesh
    masks: np.ndarray
    probabilities: np.ndarray
    completions: tuple[AmodalObject, ...]
    seconds: dict

    @property
    def occupancy(self) -> np.ndarray:
        """``(N, N, N)`` bool voxels inside the fused object."""
        return self.field > 0

    def consistent_views(self, views: Sequence[MaskedView]) -> list[MaskedView]:
        """``views`` with their masks replaced by the consistent amodal masks."""
        return [MaskedView(view.image, mask, view.camera) for view, mask in zip(views, self.masks)]


def consistent_masks(mesh: trimesh.Trimesh, views: Sequence[MaskedView]) -> np.ndarray:
    """``(V, H, W)`` bool: ``mesh`` rendered into each view, united with the view's (visible) mask."""
    from .render import render

    return np.stack([render([mesh], view.camera).mask(0) | view.mask for view in views])


def fuse_views(
    views: Sequence[MaskedView],
    probabilities: Sequence[np.ndarray],
    grid: VoxelGrid,
    fusion: SilhouetteFusion,
) -> tuple[np.ndarray, trimesh.Trimesh, np.ndarray]:
    """``(field, mesh, consistent masks)`` of ``views`` (masks: the visible masks) from their silhouette maps.
    Raises InputError when the fused object is empty or fills the whole box."""
    field = fusion.field(probabilities, [view.camera for view in views], grid)
    if not (field > 0).any():
        raise InputError("the views' silhouettes share no voxel: check cameras, masks and the box")
    if (field > 0).all():
        raise InputError(f"the fused object fills the whole box {grid.low} - {grid.high}: use a larger box")
    mesh = mesh_from_field(field, grid.low, grid.high)
    return field, mesh, consistent_masks(mesh, views)


class MultiViewCompleter:
    """The multi-view completion stage: complete every view, fuse in 3D, render consistent masks.

    Args:
        completer: an :class:`~p2g3d.AmodalCompleter` (its samples, steps and guidance apply per view).
        grid: the voxel grid to fuse in (default: 96^3 over the cube of half side 0.8).
        fusion: the fusion method and its settings.
    """

    def __init__(self, completer, grid: VoxelGrid | None = None, fusion: SilhouetteFusion | None = None):
        self.completer = completer
        self.grid = grid or VoxelGrid()
        self.fusion = fusion or SilhouetteFusion()

    def __call__(
        self,
        views: Sequence[MaskedView],
        *,
        seed: int = 0,
        items: Sequence[str] | None = None,
        occluder_masks: Sequence[np.ndarray | None] | None = None,
        show_progress: bool = True,
    ) -> MultiViewCompletion:
        """Complete and fuse one capture.

        Args:
            views: posed views whose ``mask`` is the target's VISIBLE mask, ``(H, W)`` bool in each view's frame.
            seed: the run's seed; view ``v`` is the item ``items[v]`` of the seed rule (:mod:`p2g3d.sampling`).
            items: item ids per view (default ``view_000``, ``view_001``, ...).
            occluder_masks: per view, the occluders' mask when known (pixels outside both masks are then known
                background), or None.
            show_progress: a progress bar over the views.
        """
        check_views(views, mask_name="visible mask")
        items = list(items) if items is not None else [f"view_{index:03d}" for index in range(len(views))]
        occluders = list(occluder_masks) if occluder_masks is not None else [None] * len(views)
        if not len(items) == len(occluders) == len(views):
            raise InputError(f"got {len(views)} views, {len(items)} item ids and {len(occluders)} occluder masks")
        start = time.perf_counter()
        completions = tuple(
            self.completer(view.image, view.mask, seed=seed, item=item, show_progress=False)[0]
            for view, item in tqdm(
                zip(views, items), total=len(views), desc="completing views", unit="view", disable=not show_progress
            )
        )
        completed = time.perf_counter()
        probabilities = np.stack(
            [
                silhouette_probability(view.mask, completion.sample_masks, occluder, self.fusion.evidence)
                for view, completion, occluder in zip(views, completions, occluders)
            ]
        )
        field, mesh, masks = fuse_views(views, probabilities, self.grid, self.fusion)
        seconds = {"completion": completed - start, "fusion": time.perf_counter() - completed}
        logger.info("completed %d views in %.1f s, fused in %.1f s", len(views), *seconds.values())
        return MultiViewCompletion(field, self.grid, mesh, masks, probabilities, completions, seconds)
