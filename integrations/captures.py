"""Captures in and out: the project's views folder (``cameras.json``) and nerfstudio captures (``transforms.json``).

A nerfstudio capture is the ``transforms.json`` format of nerfstudio's data parser: per-frame ``file_path``,
``transform_matrix`` (camera-to-world, OpenGL camera axes: :func:`p2g3d.cameras.from_opengl`) and ``mask_path``,
pinhole intrinsics ``fl_x, fl_y, cx, cy, w, h`` at the top level or per frame (a frame's own values win;
nerfstudio's pixel centres sit at +0.5 like the project's, so they carry over unchanged). Camera models
``OPENCV``, ``PINHOLE`` and ``SIMPLE_PINHOLE`` without distortion are read; distorted or fisheye captures are
refused (undistort them first). The masks of a capture read here are the object's masks in each frame (visible
masks, for multi-view completion); a capture written here points its ``mask_path`` at the masks it is given.

:func:`load_capture` reads either layout; :func:`save_capture` writes one folder that is both a views folder and a
nerfstudio capture (the same images and masks, indexed by ``cameras.json`` and ``transforms.json``), so that
``p2g3d reconstruct`` and ``ns-train`` read it alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from p2g3d.cameras import Camera, from_opengl, to_nerfstudio_frame
from p2g3d.errors import InputError
from p2g3d.io import load_image, load_mask, save_json
from p2g3d.types import MaskedView

from .base import VIEWS_INDEX, load_views, save_views

NERFSTUDIO_INDEX = "transforms.json"
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h")


def nerfstudio_camera(frame: dict, defaults: dict, where: str) -> Camera:
    """The camera of one ``transforms.json`` frame (its own intrinsics, else the capture's ``defaults``)."""
    values = {**defaults, **frame}
    model = values.get("camera_model", "OPENCV")
    if model not in PINHOLE_MODELS:
        raise InputError(f"{where}: camera_model {model!r} is not read; expected one of {PINHOLE_MODELS}")
    distorted = [key for key in DISTORTION_KEYS if float(values.get(key, 0.0) or 0.0) != 0.0]
    if distorted:
        raise InputError(f"{where}: the camera has distortion ({', '.join(distorted)}); undistort the images first")
    if "fl_y" not in values and "fl_x" in values:
        values["fl_y"] = values["fl_x"]
    missing = [key for key in (*INTRINSIC_KEYS, "transform_matrix") if key not in values]
    if missing:
        raise InputError(f"{where} lacks {', '.join(missing)}")
    try:
        matrix = np.asarray(values["transform_matrix"], dtype=np.float64)
        if matrix.shape == (3, 4):
            matrix = np.vstack([matrix, [0.0, 0.0, 0.0, 1.0]])
        K = np.array([[values["fl_x"], 0.0, values["cx"]], [0.0, values["fl_y"], values["cy"]], [0.0, 0.0, 1.0]])
        return from_opengl(matrix, K.astype(np.float64), int(values["w"]), int(values["h"]))
    except (TypeError, ValueError) as error:
        raise InputError(f"{where} has no valid camera ({error})") from error


def load_nerfstudio_capture(path: str | os.PathLike) -> list[MaskedView]:
    """The frames of a nerfstudio capture (``transforms.json``, or the folder holding it) as views; every frame
    needs a ``mask_path`` (the object's mask in that frame)."""
    path = Path(path)
    index_file = path / NERFSTUDIO_INDEX if path.is_dir() else path
    if not index_file.is_file():
        raise FileNotFoundError(f"{path} is not a nerfstudio capture (no {NERFSTUDIO_INDEX})")
    try:
        meta = json.loads(index_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InputError(f"{index_file} is not valid JSON ({error})") from error
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        raise InputError(f"{index_file} must be a JSON object with a non-empty 'frames' list")
    defaults = {key: value for key, value in meta.items() if key != "frames"}
    views = []
    for number, frame in enumerate(frames):
        where = f"{index_file}: frame {number}"
        if not isinstance(frame, dict):
            raise InputError(f"{where} must be an object, got {type(frame).__name__}")
        missing = [key for key in ("file_path", "mask_path") if key not in frame]
        if missing:
            raise InputError(f"{where} lacks {', '.join(repr(key) for key in missing)} (the object's mask per frame)")
        camera = nerfstudio_camera(frame, defaults, where)
        image = load_image(index_file.parent / str(frame["file_path"]))
        mask = load_mask(index_file.parent / str(frame["mask_path"]))
        if image.shape[:2] != (camera.height, camera.width) or mask.shape != image.shape[:2]:
            raise InputError(
                f"{where}: image {image.shape[1]}x{image.shape[0]} and mask {mask.shape[1]}x{mask.shape[0]} must "
                f"match the camera's w x h = {camera.width}x{camera.height} (downscaled images are not read)"
            )
        views.append(MaskedView(image, mask, camera))
    return views


def write_nerfstudio_index(
    views: Sequence[MaskedView], folder: str | os.PathLike, images: Sequence[str], masks: Sequence[str]
) -> Path:
    """Write ``folder/transforms.json`` for images and masks already in ``folder`` (paths relative to it)."""
    frames = []
    for view, image, mask in zip(views, images, masks, strict=True):
        frame = to_nerfstudio_frame(view.camera, image)
        frame["mask_path"] = mask
        frames.append(frame)
    return save_json(Path(folder) / NERFSTUDIO_INDEX, {"camera_model": "OPENCV", "frames": frames})


def load_capture(path: str | os.PathLike) -> list[MaskedView]:
    """Views from a views folder (``cameras.json``) or a nerfstudio capture (``transforms.json`` or its folder)."""
    path = Path(path)
    if path.is_dir() and (path / VIEWS_INDEX).is_file():
        return load_views(path)
    if (path.is_dir() and (path / NERFSTUDIO_INDEX).is_file()) or (path.is_file() and path.suffix == ".json"):
        return load_nerfstudio_capture(path)
    raise FileNotFoundError(
        f"{path} has no {VIEWS_INDEX} (a views folder) and no {NERFSTUDIO_INDEX} (a nerfstudio capture)"
    )


def save_capture(views: Sequence[MaskedView], folder: str | os.PathLike, *, header: dict | None = None) -> Path:
    """Write ``views`` as a views folder (:func:`~.base.save_views`) that is also a nerfstudio capture: the same
    ``view_NNN.png`` and ``view_NNN_mask.png`` indexed by ``transforms.json`` too. Returns the folder."""
    names = [f"view_{index:03d}" for index in range(len(views))]
    save_views(views, folder, names=names, header=header)
    write_nerfstudio_index(views, folder, [f"{n}.png" for n in names], [f"{n}_mask.png" for n in names])
    return Path(folder)
