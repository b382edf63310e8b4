"""Space carving (visual hull) from multi-view masks, meshed by marching cubes, coloured from the views. CPU only.

A voxel of an ``N^3`` grid over ``bounds`` survives when its centre projects inside the object mask in EVERY view
(projections outside an image count as outside the mask, so the object must be in frame everywhere), or, with
``min_agreement`` below 1, in at least that share of the views (for generated views that disagree a little; when
no voxel reaches that share, the voxels inside the most masks are kept, with a warning). The surviving occupancy is
meshed by marching cubes (:func:`p2g3d.meshes.mesh_from_field`) and coloured by :func:`paint_vertices`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import trimesh

from p2g3d.errors import InputError
from p2g3d.meshes import mesh_from_field
from p2g3d.types import MaskedView

from .base import check_views, paint_vertices

logger = logging.getLogger(__name__)

DEFAULT_BOUNDS = ((-0.6, -0.6, -0.6), (0.6, 0.6, 0.6))
MAX_RESOLUTION = 256  # 256^3 voxel centres take 400 MB


class VisualHullReconstructor:
    """Visual hull by space carving.

    Args:
        resolution: voxels per side of the grid.
        bounds: ``((x0, y0, z0), (x1, y1, z1))`` world box to carve (default: 1.2-unit cube around the origin,
            fitting objects normalised to a unit bounding box).
        color: colour the vertices from the views.
        min_agreement: share of the views whose mask must hold a voxel (1: all of them, the visual hull).
    """

    def __init__(self, resolution: int = 96, bounds=DEFAULT_BOUNDS, color: bool = True, min_agreement: float = 1.0):
        if isinstance(resolution, bool) or not isinstance(resolution, int) or not 8 <= resolution <= MAX_RESOLUTION:
            raise InputError(
                f"resolution must be an int in [8, {MAX_RESOLUTION}] (memory grows with its cube), got {resolution!r}"
            )
        low, high = np.asarray(bounds, dtype=np.float64)
        if low.shape != (3,) or not (high > low).all():
            raise InputError(f"bounds must be ((x0, y0, z0), (x1, y1, z1)) with x1 > x0 etc., got {bounds}")
        if not 0.0 < min_agreement <= 1.0:
            raise InputError(f"min_agreement must be in (0, 1], got {min_agreement!r}")
        self.resolution, self.low, self.high, self.color = resolution, low, high, color
        self.min_agreement = float(min_agreement)

    def occupancy(self, views: Sequence[MaskedView]) -> np.ndarray:
        """``(N, N, N)`` bool voxels inside every view's mask (or ``min_agreement`` of them), indexed ``[x, y, z]``."""
        check_views(views)
        axes = [np.linspace(self.low[i], self.high[i], self.resolution) for i in range(3)]
        centres = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
        if self.min_agreement == 1.0:
            occupied = np.ones(len(centres), dtype=bool)
            for view in views:
                occupied[occupied] = view.camera.points_in_mask(view.mask, centres[occupied])
            return occupied.reshape((self.resolution,) * 3)
        votes = np.zeros(len(centres), dtype=np.int32)
        for view in views:
            votes += view.camera.points_in_mask(view.mask, centres)
        needed = int(np.ceil(self.min_agreement * len(views) - 1e-9))
        if votes.max() < needed:
            logger.warning(
                "no voxel lies inside %d of the %d masks (min_agreement %.2f): keeping those inside the most, %d",
                needed,
                len(views),
                self.min_agreement,
                votes.max(),
            )
            needed = max(1, int(votes.max()))
        return (votes >= needed).reshape((self.resolution,) * 3)

    def reconstruct(self, views: Sequence[MaskedView]) -> trimesh.Trimesh:
        """Carve, mesh, colour. Raises ValueError when nothing survives (masks that never agree)."""
        occupancy = self.occupancy(views)
        if not occupancy.any():
            raise InputError("the views' masks carve the whole volume away: check cameras, masks and bounds")
        if occupancy.all():
            raise InputError(
                f"nothing was carved: the whole box {self.low.tolist()} - {self.high.tolist()} lies inside every mask, "
                "so the box is smaller than the object (use larger bounds)"
            )
        walls = np.concatenate(
            [occupancy[[0, -1]].ravel(), occupancy[:, [0, -1]].ravel(), occupancy[..., [0, -1]].ravel()]
        )
        if walls.any():
            logger.warning(
                "the carved volume touches the walls of the box %s - %s: the object may extend beyond it (larger "
                "bounds would show)",
                self.low.tolist(),
                self.high.tolist(),
            )
        mesh = mesh_from_field(occupancy.astype(np.float32), self.low, self.high, 0.5)
        return paint_vertices(mesh, views) if self.color else mesh
