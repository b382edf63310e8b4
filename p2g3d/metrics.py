"""3D reconstruction metrics on Open3D, with named normalisation / alignment protocols.

Numbers are only comparable within one protocol; every result names the protocol it used.

* ``"syncdreamer"`` (SyncDreamer ``eval_mesh.py``, pix2gestalt's Table 3): the ground truth is centred (bounding box)
  and scaled so its largest bounding-box side is 1; the SAME transform is applied to the prediction, which must
  therefore be in the ground truth's frame. No alignment.
* ``"triposr"`` (TripoSR / SF3D): both meshes are normalised that way independently, then the prediction is aligned
  by a coarse rotation sweep (72 rotations: the 24 axis-aligned rotations x 3 turns of 30 degrees about +Z, lowest
  Chamfer wins) followed by point-to-point ICP (rotation + translation).
* ``"unit-box"``: both meshes normalised that way independently, no rotation: for single-view reconstructions whose
  frame is tied to the input camera (orientation known, size and distance not), where a rotation search would
  reward a wrongly turned shape.
* ``"raw"``: no normalisation, no alignment.

Metrics (points are uniform surface samples, ``num_points`` per mesh, drawn with the same seed for both meshes, so
a mesh compared with itself scores exactly 0 Chamfer):

* ``chamfer``: ``(mean NN distance pred->gt + mean NN distance gt->pred) / 2``, Euclidean, not squared (SyncDreamer).
* ``f_score@tau``: ``2PR / (P + R)``, P = share of predicted points within ``tau`` of the ground truth, R the reverse.
* ``normal_consistency``: mean ``|n . n_nn|`` over nearest neighbours, averaged over both directions.
* ``volume_iou``: solid IoU of the occupancy of an ``N^3`` grid over the union of both bounding boxes, occupancy
  from ``RaycastingScene.compute_occupancy``; ``None`` when either mesh encloses no volume (not watertight, e.g. a
  plane or an open surface), since occupancy is meaningless there.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # trimesh and Open3D load on use, so the CLI starts fast
    import trimesh

logger = logging.getLogger(__name__)

PROTOCOLS = ("syncdreamer", "triposr", "unit-box", "raw")
DEFAULT_TAUS = (0.05, 0.1, 0.2)


def unit_box_transform(mesh: trimesh.Trimesh) -> np.ndarray:
    """4x4 similarity that centres ``mesh``'s bounding box at the origin and scales its largest side to 1."""
    low, high = mesh.bounds
    extent = float((high - low).max())
    if extent <= 0:
        raise InputError("mesh has zero extent")
    transform = np.eye(4)
    transform[:3, :3] /= extent
    transform[:3, 3] = -(low + high) / 2.0 / extent
    return transform


def sample_surface(mesh: trimesh.Trimesh, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` uniform surface samples ``(count, 3)`` and their face normals ``(count, 3)``, reproducible."""
    import trimesh

    points, faces = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points, dtype=np.float64), np.asarray(mesh.face_normals[faces], dtype=np.float64)


def nearest_neighbours(query: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query point, the index of and the Euclidean distance to its nearest reference point."""
    from .meshes import import_open3d

    o3d = import_open3d()
    search = o3d.core.nns.NearestNeighborSearch(o3d.core.Tensor(reference.astype(np.float64)))
    search.knn_index()
    indices, squared = search.knn_search(o3d.core.Tensor(query.astype(np.float64)), 1)
    return indices.numpy()[:, 0], np.sqrt(np.maximum(squared.numpy()[:, 0], 0.0))


def chamfer_distance(pred_points: np.ndarray, gt_points: np.ndarray) -> float:
    """SyncDreamer Chamfer: mean of the two mean nearest-neighbour distances (not squared)."""
    _, pred_to_gt = nearest_neighbours(pred_points, gt_points)
    _, gt_to_pred = nearest_neighbours(gt_points, pred_points)
    return float((pred_to_gt.mean() + gt_to_pred.mean()) / 2.0)


def _rotation_candidates() -> list[np.ndarray]:
    axis_aligned = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            matrix = np.zeros((3, 3))
            matrix[range(3), perm] = signs
            if np.linalg.det(matrix) > 0:
                axis_aligned.append(matrix)
    turns = []
    for degrees in (0.0, 30.0, 60.0):
        c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
        turns.append(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]))
    return [turn @ rotation for rotation in axis_aligned for turn in turns]


def align_rigid(pred_points: np.ndarray, gt_points: np.ndarray, icp_distance: float = 0.1) -> np.ndarray:
    """4x4 rigid transform taking ``pred_points`` onto ``gt_points``: coarse rotation sweep about the centroids,
    then point-to-point ICP."""
    from .meshes import import_open3d

    o3d = import_open3d()
    pred_centre, gt_centre = pred_points.mean(0), gt_points.mean(0)
    coarse_pred, coarse_gt = (
        pred_points[:: max(1, len(pred_points) // 2000)],
        gt_points[:: max(1, len(gt_points) // 2000)],
    )
    best, best_score = np.eye(4), np.inf
    for rotation in _rotation_candidates():
        candidate = np.eye(4)
        candidate[:3, :3] = rotation
        candidate[:3, 3] = gt_centre - rotation @ pred_centre
        moved = coarse_pred @ rotation.T + candidate[:3, 3]
        score = chamfer_distance(moved, coarse_gt)
        if score < best_score:
            best, best_score = candidate, score
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pred_points))
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(gt_points))
    result = o3d.pipelines.registration.registration_icp(
        source,
        target,
        icp_distance,
        best,
        o3d.pipelines.registration.TransformationEstimationPointToPoint(),
        o3d.pipelines.registration.ICPConvergenceCriteria(max_iteration=100),
    )
    return np.asarray(result.transformation)


def volume_iou(pred: trimesh.Trimesh, gt: trimesh.Trimesh, resolution: int = 64) -> float:
    """Solid IoU of the two meshes on an ``resolution^3`` grid over the union of their bounding boxes."""
    from .meshes import as_tensor_mesh, import_open3d

    o3d = import_open3d()
    low = np.minimum(pred.bounds[0], gt.bounds[0])
    high = np.maximum(pred.bounds[1], gt.bounds[1])
    pad = 0.01 * (high - low).max()
    axes = [np.linspace(low[i] - pad, high[i] + pad, resolution) for i in range(3)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3).astype(np.float32)
    occupied = []
    for mesh in (pred, gt):
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(as_tensor_mesh(mesh))
        occupied.append(scene.compute_occupancy(o3d.core.Tensor(grid)).numpy() > 0.5)
    union = np.logical_or(*occupied).sum()
    return 0.0 if union == 0 else float(np.logical_and(*occupied).sum() / union)


def evaluate(
    pred,
    gt,
    protocol: str = "syncdreamer",
    *,
    num_points: int = 20000,
    taus: tuple[float, ...] = DEFAULT_TAUS,
    volume_resolution: int = 64,
    seed: int = 0,
) -> dict:
    """Compare a predicted mesh with the ground truth.

    Args:
        pred, gt: ``trimesh.Trimesh``, Open3D ``TriangleMesh`` or mesh file paths.
        protocol: one of :data:`PROTOCOLS` (module docstring).
        num_points: surface samples per mesh.
        taus: F-score thresholds, in the protocol's units (a unit bounding box unless ``"raw"``).
        volume_resolution: grid size N of the volume IoU.
        seed: sampling seed; results are deterministic given it.

    Returns:
        ``{"protocol", "chamfer", "f_score@<tau>"..., "volume_iou", "normal_consistency", "alignment", ...}``;
        ``alignment`` is the 4x4 transform applied to the prediction (normalisation and alignment).
    """
    from .meshes import as_trimesh, check_mesh

    if protocol not in PROTOCOLS:
        raise InputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    pred_mesh, gt_mesh = as_trimesh(pred).copy(), as_trimesh(gt).copy()
    solid = True
    for name, mesh in (("prediction", pred_mesh), ("ground truth", gt_mesh)):
        check_mesh(mesh, f"{name} mesh")
        if not mesh.is_watertight or mesh.volume <= 0:
            logger.warning("the %s mesh encloses no volume (not watertight): volume IoU is not defined", name)
            solid = False

    pred_transform = np.eye(4)
    if protocol != "raw":
        gt_transform = unit_box_transform(gt_mesh)
        pred_transform = gt_transform if protocol == "syncdreamer" else unit_box_transform(pred_mesh)
        gt_mesh.apply_transform(gt_transform)
    pred_mesh.apply_transform(pred_transform)
    if protocol == "triposr":
        pred_points, _ = sample_surface(pred_mesh, num_points, seed)
        gt_points, _ = sample_surface(gt_mesh, num_points, seed)
        alignment = align_rigid(pred_points, gt_points)
        pred_mesh.apply_transform(alignment)
        pred_transform = alignment @ pred_transform

    pred_points, pred_normals = sample_surface(pred_mesh, num_points, seed)
    gt_points, gt_normals = sample_surface(gt_mesh, num_points, seed)
    pred_index, pred_to_gt = nearest_neighbours(pred_points, gt_points)
    gt_index, gt_to_pred = nearest_neighbours(gt_points, pred_points)
    result = {
        "protocol": protocol,
        "chamfer": float((pred_to_gt.mean() + gt_to_pred.mean()) / 2.0),
    }
    for tau in taus:
        precision, recall = float((pred_to_gt < tau).mean()), float((gt_to_pred < tau).mean())
        result[f"f_score@{tau:g}"] = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    result["volume_iou"] = volume_iou(pred_mesh, gt_mesh, volume_resolution) if solid else None
    consistency_pred = np.abs((pred_normals * gt_normals[pred_index]).sum(1)).mean()
    consistency_gt = np.abs((gt_normals * pred_normals[gt_index]).sum(1)).mean()
    result["normal_consistency"] = float((consistency_pred + consistency_gt) / 2.0)
    result["alignment"] = pred_transform.tolist()
    result["num_points"] = num_points
    result["volume_resolution"] = volume_resolution
    return result
