"""Multi-view training data for Zero-1-to-3 in the layout of its Objaverse renders, and the dataset that reads it.

Layout (Zero-1-to-3's ``views_release``): one sub-folder per object, holding its views as ``NNN.png`` (RGBA, the
object over a transparent background, or RGB on white) and ``NNN.npy`` (the ``(3, 4)`` world-to-camera matrix
``[R | t]``), plus ``dataset.json`` (count, views per object, source, and each object's ``factors`` when known).
As in the official ``get_T``, only the camera centres ``-R.T @ t`` are read, so the camera axes of the matrix do not
matter; the world is +Z up with the object at the origin (Blender's world, and the p2g3d convention).

:func:`object_views` renders the project's procedural objects (:mod:`p2g3d.scenes`) this way: the object (largest
side 1, at the origin) seen from random cameras on a sphere of radius 1.5 around it with Zero-1-to-3's field of
view, rendered at twice the size and reduced (anti-aliased) to ``image_size``, on white. Kinds in
:data:`HELD_OUT_KINDS` never appear in ``kinds="train"`` data; ``kinds="held-out"`` draws only them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
from tqdm.auto import tqdm

from ..cameras import ZERO123_FOV_DEG, ZERO123_RADIUS, intrinsics_from_fov, orbit_camera
from ..datasets import described_factors
from ..errors import InputError
from ..io import check_output_folder, check_replaceable, load_image, publish_folder, save_json, staging_folder
from ..render import render
from ..scenes import COMPOSITE_KIND, TARGET_KINDS, make_target

HELD_OUT_KINDS = ("mug", "snowman")  # the 3D shape families left out of the amodal training data too
TRAIN_KINDS = tuple(kind for kind in (*TARGET_KINDS, COMPOSITE_KIND) if kind not in HELD_OUT_KINDS)
KIND_SETS = ("train", "held-out")
ELEVATION_RANGE = (-10.0, 50.0)


@dataclass(frozen=True, eq=False)
class ObjectViews:
    """Views of one object: ``images`` ``(V, S, S, 3)`` uint8 on white, ``centers`` ``(V, 3)`` camera centres
    (world, +Z up, object at the origin), ``factors`` what the object is (when known)."""

    images: np.ndarray
    centers: np.ndarray
    factors: dict | None = None


def object_views(
    rng: np.random.Generator, kind: str, num_views: int = 12, image_size: int = 64, supersample: int = 2
) -> tuple[ObjectViews, list[np.ndarray]]:
    """Render ``num_views`` random views of a new procedural object of ``kind``.

    Returns the views and the cameras' ``(3, 4)`` world-to-camera matrices. Cameras: azimuth uniform, elevation
    uniform in :data:`ELEVATION_RANGE`, radius 1.5, Zero-1-to-3's field of view, looking at the origin.
    """
    mesh = make_target(rng, kind, resolution=48)
    size = image_size * supersample
    K = intrinsics_from_fov(ZERO123_FOV_DEG, size, size)
    images, centers, matrices = [], [], []
    for _ in range(num_views):
        camera = orbit_camera(rng.uniform(*ELEVATION_RANGE), rng.uniform(0.0, 360.0), ZERO123_RADIUS, K, size, size)
        rgb = render([mesh], camera, ambient=float(rng.uniform(0.25, 0.5))).rgb
        images.append(np.asarray(PIL.Image.fromarray(rgb).reduce(supersample)))
        centers.append(camera.center)
        matrices.append(np.asarray(camera.world_to_camera[:3]))
    return ObjectViews(np.stack(images), np.stack(centers), {"kind": kind}), matrices


def synthetic_objects(
    count: int, *, seed: int = 0, num_views: int = 12, image_size: int = 64, kinds: str = "train"
) -> Iterator[tuple[ObjectViews, list[np.ndarray]]]:
    """``count`` objects (kinds cycling through the set), deterministic given ``seed``; see :func:`object_views`."""
    if kinds not in KIND_SETS:
        raise InputError(f"kinds must be one of {KIND_SETS}, got {kinds!r}")
    pool = TRAIN_KINDS if kinds == "train" else HELD_OUT_KINDS
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        yield object_views(rng, pool[index % len(pool)], num_views, image_size)


def write_multiview_dataset(
    folder: str | os.PathLike,
    count: int,
    *,
    seed: int = 0,
    num_views: int = 12,
    image_size: int = 64,
    kinds: str = "train",
    overwrite: bool = False,
) -> Path:
    """Write ``count`` synthetic objects in the layout of the module docstring, atomically (staged, then moved)."""
    folder = Path(folder)
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise FileExistsError(f"{folder} exists and is not empty (use --overwrite to replace an earlier dataset)")
    if num_views < 2:
        raise InputError(f"num_views must be at least 2 (views come in pairs), got {num_views}")
    written_here = (
        {p.name for p in folder.iterdir() if p.name.isdigit() and len(p.name) == 6} if folder.is_dir() else set()
    )
    check_replaceable(folder, "dataset.json", {"dataset.json", *written_here})
    check_output_folder(folder.parent)
    staging = staging_folder(folder)
    factors = []
    objects = synthetic_objects(count, seed=seed, num_views=num_views, image_size=image_size, kinds=kinds)
    for index, (views, matrices) in enumerate(tqdm(objects, total=count, desc="rendering objects", unit="object")):
        target = staging / f"{index:06d}"
        target.mkdir(parents=True, exist_ok=True)
        for view, (image, matrix) in enumerate(zip(views.images, matrices)):
            PIL.Image.fromarray(image).save(target / f"{view:03d}.png")
            np.save(target / f"{view:03d}.npy", matrix)
        factors.append(views.factors)
    metadata = {
        "format": "zero123-views",
        "count": count,
        "views_per_object": num_views,
        "image_size": image_size,
        "source": {"generator": "p2g3d.training.multiview", "seed": seed, "kinds": kinds},
        "factors": factors,
    }
    save_json(staging / "dataset.json", metadata)
    return publish_folder(staging, folder)


class MultiViewDataset:
    """A folder in the layout of the module docstring, as a sequence of :class:`ObjectViews`.

    Objects with fewer than two readable views are skipped (with their names in ``skipped``); ValueError when none
    is left.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError(f"{self.folder} is not a folder (expected one sub-folder of NNN.png / NNN.npy per object)")
        self.objects, self.skipped = [], []
        for sub in sorted(path for path in self.folder.iterdir() if path.is_dir() and not path.name.startswith(".")):
            views = sorted(p.stem for p in sub.glob("*.png") if (sub / f"{p.stem}.npy").is_file())
            (self.objects if len(views) >= 2 else self.skipped).append((sub, views) if len(views) >= 2 else sub.name)
        if not self.objects:
            raise InputError(f"{self.folder} holds no object folder with at least two NNN.png + NNN.npy views")
        self.factors = described_factors(self.folder, len(self.objects))

    def __len__(self) -> int:
        return len(self.objects)

    def __getitem__(self, index: int) -> ObjectViews:
        folder, names = self.objects[index]
        images = np.stack([load_image(folder / f"{name}.png") for name in names])
        centers = []
        for name in names:
            matrix = np.load(folder / f"{name}.npy", allow_pickle=False)
            if matrix.shape not in ((3, 4), (4, 4)):
                raise InputError(f"{folder / name}.npy must hold a (3, 4) world-to-camera matrix, got {matrix.shape}")
            centers.append(-matrix[:3, :3].T @ matrix[:3, 3])
        return ObjectViews(images, np.stack(centers), self.factors[index])
