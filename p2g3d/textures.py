"""Colours, textures and backgrounds for synthetic images (float RGB in [0, 255], ``(H, W, 3)``). Numpy only.

Used by the composited training data (:mod:`p2g3d.training.composite`) and the cluttered 3D scenes
(:mod:`p2g3d.scenes`).
"""

from __future__ import annotations

import math

import numpy as np
import PIL.Image

from .errors import InputError

BACKGROUND_STYLES = ("white", "solid", "gradient", "noise", "stripes", "checker")


def random_color(rng: np.random.Generator, max_value: float = 0.85) -> np.ndarray:
    """A random RGB colour (float, 0-255) no lighter than ``max_value``, so that an object is never read as white."""
    hue = rng.uniform()
    rgb = np.clip(np.abs((hue * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0 - 3.0) - 1.0, 0.0, 1.0)
    value, saturation = rng.uniform(0.15, max_value), rng.uniform(0.0, 1.0)
    return 255.0 * value * (1 - saturation + saturation * rgb)


def light_color(rng: np.random.Generator) -> np.ndarray:
    return random_color(rng, max_value=1.0) * 0.5 + 127.5 * rng.uniform(0.0, 1.0)


def unit_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates scaled to about [-1, 1] on the longer side."""
    scale = max(height, width) / 2
    rows, cols = np.mgrid[0:height, 0:width] + 0.5
    return (cols - width / 2) / scale, (rows - height / 2) / scale


def smooth_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(H, W)`` smooth noise in [0, 1] (random low-resolution field, bicubic upsampled)."""
    cells = int(rng.integers(2, 9))
    field = rng.uniform(0, 255, (cells, cells)).astype(np.uint8)
    return np.asarray(PIL.Image.fromarray(field).resize((width, height), PIL.Image.Resampling.BICUBIC)) / 255.0


def stripes(rng: np.random.Generator, height: int, width: int, checker: bool = False) -> np.ndarray:
    """``(H, W)`` 0 / 1 stripes (or a checkerboard) at a random angle and period."""
    x, y = unit_grid(height, width)
    angle, period = rng.uniform(0, math.pi), rng.uniform(0.08, 0.5)
    u = x * math.cos(angle) + y * math.sin(angle)
    first = np.floor(u / period) % 2
    if not checker:
        return first
    v = -x * math.sin(angle) + y * math.cos(angle)
    return (first + np.floor(v / period)) % 2


def paint(rng: np.random.Generator, height: int, width: int, base: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` colouring of an object: flat, two-tone gradient, stripes, spots or radial shading."""
    style = int(rng.integers(5))
    flat = np.broadcast_to(base, (height, width, 3)).astype(np.float64)
    if style == 0:
        return flat.copy()
    other = random_color(rng)
    if style == 1:
        x, y = unit_grid(height, width)
        angle = rng.uniform(0, 2 * math.pi)
        t = np.clip((x * math.cos(angle) + y * math.sin(angle) + 1) / 2, 0, 1)[..., None]
        return flat * (1 - t) + other * t
    if style == 2:
        return np.where(stripes(rng, height, width)[..., None] > 0, flat, other)
    if style == 3:
        t = (smooth_noise(rng, height, width) > rng.uniform(0.4, 0.7))[..., None]
        return np.where(t, other, flat)
    x, y = unit_grid(height, width)
    cx, cy = rng.uniform(-0.5, 0.5, 2)
    light = np.clip(1.2 - 0.8 * np.hypot(x - cx, y - cy), 0.35, 1.0)[..., None]
    return flat * light


def background(style: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """``(H, W, 3)`` float background of a style in :data:`BACKGROUND_STYLES`, in light-to-mid colours."""
    first, second = light_color(rng), light_color(rng)
    if style == "white":
        return np.full((height, width, 3), 255.0)
    if style == "solid":
        return np.broadcast_to(first, (height, width, 3)).copy()
    if style == "gradient":
        x, y = unit_grid(height, width)
        angle = rng.uniform(0, 2 * math.pi)
        t = np.clip((x * math.cos(angle) + y * math.sin(angle) + 1) / 2, 0, 1)[..., None]
        return first * (1 - t) + second * t
    if style == "noise":
        t = smooth_noise(rng, height, width)[..., None]
        return first * (1 - t) + second * t + rng.normal(0, 6, (height, width, 3))
    if style in ("stripes", "checker"):
        return np.where(stripes(rng, height, width, checker=style == "checker")[..., None] > 0, first, second)
    raise InputError(f"unknown background style {style!r}; expected one of {BACKGROUND_STYLES}")
