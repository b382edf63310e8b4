"""Synthetic training and evaluation data made with pix2gestalt's compositing recipe.

pix2gestalt builds its pairs by taking a whole object in its own scene and pasting OTHER objects over it as
occluders. Here every factor a small model could memorise is drawn at random instead:

* target: a 2D shape (:data:`SHAPES_2D`: ellipses, superellipses, polygons, Fourier blobs, crosses, rings, random
  unions of primitives with or without mirror symmetry, ...) or a rendered 3D object (:data:`SHAPES_3D`: the
  procedural objects of :mod:`p2g3d.scenes` and random unions of 3D primitives, from a random viewpoint, with
  shading), with flat, two-tone, striped, spotted or shaded colouring;
* background (:data:`BACKGROUNDS`): white, a flat colour, a gradient, smooth noise, stripes, a checkerboard, or
  other objects behind the target;
* occluders (:data:`OCCLUDERS`): 1-3 of other objects, random polygons, smooth blobs, thin bars and boxes, any
  colour (the target's own colour too), from any side, hiding 10-70% of the target;
* framing: source images of 48-256 px with aspect ratios 1:2 to 2:1, the target anywhere at any scale; the sample
  is then brought to the model's square exactly as :class:`p2g3d.AmodalCompleter` frames its input (``"squash"``);
* the visible mask is perturbed as a segmenter's would be (eroded, dilated or ragged by a pixel or two).

The held-out factors (:data:`HELD_OUT`) never appear in ``factors="train"`` data, in any role. ``factors="held-out"``
makes the out-of-distribution set: each sample takes ONE held-out factor value (cycling through them) and draws
everything else as in training, so the evaluation can report each left-out factor on its own. The factors of every
sample are returned with it (``GestaltSample.factors``). Everything is deterministic given the seed.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw
from scipy import ndimage

from ..datasets import GestaltSample, write_dataset
from ..errors import InputError
from ..framing import frame_image, frame_mask, make_frame
from ..settings import MAX_IMAGE_SIZE
from ..textures import background, paint, random_color

SHAPES_2D = (
    "ellipse",
    "superellipse",
    "polygon",
    "blob",
    "cross",
    "ring",
    "crescent",
    "union",
    "symmetric",
    "star",
    "heart",
)
SHAPES_3D = ("table", "mug", "lamp", "chair", "dumbbell", "snowman", "L-block", "arch", "composite")
BACKGROUNDS = ("white", "solid", "gradient", "noise", "stripes", "clutter", "checker")
OCCLUDERS = ("object", "polygon", "bar", "box", "blob")
HELD_OUT = {"shape": ("star", "heart", "mug", "snowman"), "background": ("checker",), "occluder": ("blob",)}
FACTOR_SETS = ("train", "held-out")
OCCLUSION_RANGE = (0.1, 0.7)
MAX_COUNT = 10_000_000  # samples of one dataset
SOURCE_SIZES = (48, 256)


def _allowed(names: tuple[str, ...], factor: str) -> tuple[str, ...]:
    return tuple(name for name in names if name not in HELD_OUT[factor])


TRAIN_SHAPES = _allowed(SHAPES_2D, "shape") + _allowed(SHAPES_3D, "shape")
TRAIN_BACKGROUNDS = _allowed(BACKGROUNDS, "background")
TRAIN_OCCLUDERS = _allowed(OCCLUDERS, "occluder")


@dataclass(frozen=True, eq=False)
class Sprite:
    """An object cut out on a transparent canvas: ``rgb`` ``(h, w, 3)`` float in [0, 255], ``alpha`` ``(h, w)``
    float in [0, 1], tight around the object."""

    rgb: np.ndarray
    alpha: np.ndarray


# ---- 2D shapes as polygon operations ---------------------------------------------------------------------------------


def _ellipse(a: float, b: float, rotation: float = 0.0, center=(0.0, 0.0), power: float = 2.0) -> np.ndarray:
    """``(N, 2)`` outline of a (super)ellipse with half axes ``a``, ``b``."""
    t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = a * np.sign(c) * np.abs(c) ** (2 / power)
    y = b * np.sign(s) * np.abs(s) ** (2 / power)
    return _rotate(np.stack([x, y], -1), rotation) + center


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _radial(radii: np.ndarray, rotation: float) -> np.ndarray:
    t = np.linspace(0, 2 * math.pi, len(radii), endpoint=False) + rotation
    return np.stack([radii * np.cos(t), radii * np.sin(t)], -1)


def _rectangle(half_w: float, half_h: float, rotation: float, center=(0.0, 0.0)) -> np.ndarray:
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    return _rotate(corners, rotation) + center


def _primitive(rng: np.random.Generator, center, scale: float) -> np.ndarray:
    u = rng.uniform
    kind = int(rng.integers(3))
    if kind == 0:
        return _ellipse(scale * u(0.4, 1), scale * u(0.4, 1), u(0, math.pi), center)
    if kind == 1:
        return _rectangle(scale * u(0.2, 1), scale * u(0.2, 1), u(0, math.pi), center)
    return _radial(scale * u(0.5, 1, 3), u(0, 2 * math.pi)) + center


def _shape_2d(kind: str, rng: np.random.Generator) -> list[tuple[np.ndarray, bool]]:
    """A 2D shape as ``[(outline (N, 2), adds)]`` in about [-1, 1]; ``adds=False`` cuts the outline out."""
    u = rng.uniform
    rotation = u(0, 2 * math.pi)
    if kind == "ellipse":
        return [(_ellipse(1.0, u(0.3, 1.0), rotation), True)]
    if kind == "superellipse":
        return [(_ellipse(1.0, u(0.3, 1.0), rotation, power=u(3, 10)), True)]
    if kind == "polygon":
        sides = int(rng.integers(3, 9))
        radii = np.ones(sides) if u() < 0.5 else u(0.6, 1.0, sides)
        return [(_radial(radii, rotation), True)]
    if kind == "blob":
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        radii = 0.7 + sum(u(0, 0.25 / k) * np.cos(k * t + u(0, 2 * math.pi)) for k in range(2, 6))
        return [(_radial(radii, rotation), True)]
    if kind == "cross":
        arm = u(0.15, 0.4)
        return [(_rectangle(1.0, arm, rotation), True), (_rectangle(arm, u(0.5, 1.0), rotation), True)]
    if kind == "ring":
        return [(_ellipse(1.0, 1.0), True), (_ellipse(u(0.3, 0.7), u(0.3, 0.7)), False)]
    if kind == "crescent":
        offset = u(0.3, 0.7) * np.array([math.cos(rotation), math.sin(rotation)])
        return [(_ellipse(1.0, 1.0), True), (_ellipse(u(0.7, 1.0), u(0.7, 1.0), 0.0, offset), False)]
    if kind == "union":
        parts, centers = [], [np.zeros(2)]
        for _ in range(int(rng.integers(2, 5))):
            center = centers[int(rng.integers(len(centers)))] + u(-0.5, 0.5, 2)
            parts.append((_primitive(rng, center, u(0.25, 0.6)), True))
            centers.append(center)
        return parts
    if kind == "symmetric":
        half = [
            (_primitive(rng, (u(0, 0.5), u(-0.5, 0.5)), u(0.25, 0.6)), True) for _ in range(int(rng.integers(1, 4)))
        ]
        body = [(_ellipse(u(0.2, 0.5), u(0.4, 1.0)), True)]
        mirrored = [(outline * np.array([-1.0, 1.0]), adds) for outline, adds in half]
        return [(_rotate(o, rotation), a) for o, a in body + half + mirrored]
    if kind == "star":
        points = int(rng.integers(5, 9))
        radii = np.tile([1.0, u(0.35, 0.6)], points)
        return [(_radial(radii, rotation), True)]
    if kind == "heart":
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return [(_rotate(np.stack([x, y], -1) / 17, u(-0.5, 0.5)), True)]
    raise InputError(f"unknown 2D shape {kind!r}; expected one of {SHAPES_2D}")


def _rasterise(parts: list[tuple[np.ndarray, bool]], size: int, supersample: int = 4) -> np.ndarray:
    """Outlines in [-1, 1] -> ``(size, size)`` float coverage, anti-aliased by supersampling."""
    big = size * supersample
    canvas = PIL.Image.new("L", (big, big), 0)
    draw = PIL.ImageDraw.Draw(canvas)
    for outline, adds in parts:
        pixels = (outline * 0.5 + 0.5) * big
        draw.polygon([tuple(p) for p in pixels], fill=255 if adds else 0)
    return np.asarray(canvas.resize((size, size), PIL.Image.Resampling.BOX)) / 255.0


def _sprite_from_alpha(rng: np.random.Generator, alpha: np.ndarray, base: np.ndarray | None = None) -> Sprite | None:
    rows, cols = np.nonzero(alpha > 0.02)
    if len(rows) == 0:
        return None
    alpha = alpha[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    base = random_color(rng) if base is None else base
    return Sprite(paint(rng, *alpha.shape, base), alpha)


def shape_sprite_2d(
    kind: str, rng: np.random.Generator, size: int = 96, base: np.ndarray | None = None
) -> Sprite | None:
    """A painted 2D shape of kind ``kind`` (:data:`SHAPES_2D`), about ``size`` px across."""
    parts = _shape_2d(kind, rng)
    outlines = np.concatenate([outline for outline, _ in parts])
    extent = np.abs(outlines).max()
    parts = [(outline / extent * 0.98, adds) for outline, adds in parts]
    aspect = math.exp(rng.uniform(-0.4, 0.4))
    parts = [(outline * np.array([min(1, aspect), min(1, 1 / aspect)]), adds) for outline, adds in parts]
    return _sprite_from_alpha(rng, _rasterise(parts, size), base)


class MeshPool:
    """Procedural 3D objects, reused: a new mesh is built with probability ``fresh`` (marching cubes is the costly
    part), otherwise a kept one of the same kind is drawn; each use renders a new viewpoint and shading."""

    def __init__(self, fresh: float = 0.25, keep: int = 32):
        self.fresh, self.keep = fresh, keep
        self.meshes: dict[str, list] = {}

    def mesh(self, kind: str, rng: np.random.Generator):
        from ..scenes import make_target

        kept = self.meshes.setdefault(kind, [])
        if not kept or rng.uniform() < self.fresh:
            mesh = make_target(rng, kind, resolution=48)
            if len(kept) < self.keep:
                kept.append(mesh)
            else:
                kept[int(rng.integers(self.keep))] = mesh
            return mesh
        return kept[int(rng.integers(len(kept)))]


def shape_sprite_3d(kind: str, rng: np.random.Generator, pool: MeshPool, size: int = 64) -> Sprite:
    """A procedural 3D object (:data:`SHAPES_3D`) rendered from a random viewpoint with random shading."""
    from ..cameras import intrinsics_from_fov, orbit_camera
    from ..render import render

    mesh = pool.mesh(kind, rng)
    camera = orbit_camera(
        rng.uniform(-20, 70), rng.uniform(0, 360), 2.4, intrinsics_from_fov(40.0, size, size), size, size
    )
    view = render([mesh], camera, ambient=rng.uniform(0.2, 0.7))
    mask = view.mask(0)
    rows, cols = np.nonzero(mask)
    box = slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1)
    return Sprite(view.rgb[box].astype(np.float64) * 0.85, mask[box].astype(np.float64))


def _object_sprite(kind: str, rng: np.random.Generator, pool: MeshPool, base: np.ndarray | None = None) -> Sprite:
    while True:
        sprite = shape_sprite_3d(kind, rng, pool) if kind in SHAPES_3D else shape_sprite_2d(kind, rng, base=base)
        if sprite is not None and (sprite.alpha > 0.5).sum() >= 16:
            return sprite


# ---- canvases -------------------------------------------------------------------------------------------------------


def _background(
    style: str, rng: np.random.Generator, height: int, width: int, shapes: tuple[str, ...], pool: MeshPool
) -> np.ndarray:
    """``(H, W, 3)`` float background of a style in :data:`BACKGROUNDS` (``"clutter"``: objects on a flat colour)."""
    if style != "clutter":
        return background(style, rng, height, width)
    canvas = background("solid", rng, height, width)
    for _ in range(int(rng.integers(1, 4))):
        sprite = _object_sprite(shapes[int(rng.integers(len(shapes)))], rng, pool)
        _paste(canvas, _scaled(sprite, rng.uniform(0.3, 0.9) * min(height, width)), rng.integers(0, [height, width]))
    return canvas


def _scaled(sprite: Sprite, longest: float) -> Sprite:
    """The sprite resized so that its longer side is ``longest`` px (at least 2)."""
    h, w = sprite.alpha.shape
    factor = max(2.0, longest) / max(h, w)
    size = (max(2, round(w * factor)), max(2, round(h * factor)))
    rgb = np.asarray(
        PIL.Image.fromarray(np.clip(sprite.rgb, 0, 255).astype(np.uint8)).resize(size, PIL.Image.Resampling.BILINEAR)
    )
    alpha = np.asarray(
        PIL.Image.fromarray((sprite.alpha * 255).astype(np.uint8)).resize(size, PIL.Image.Resampling.BILINEAR)
    )
    return Sprite(rgb.astype(np.float64), alpha / 255.0)


def _layer(sprite: Sprite, center, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The sprite centred at ``center`` (row, col) on an ``(H, W)`` canvas: ``(rgb (H, W, 3), alpha (H, W))``,
    clipped at the borders."""
    h, w = sprite.alpha.shape
    top, left = int(center[0]) - h // 2, int(center[1]) - w // 2
    rgb, alpha = np.zeros((height, width, 3)), np.zeros((height, width))
    r0, c0, r1, c1 = max(top, 0), max(left, 0), min(top + h, height), min(left + w, width)
    if r0 < r1 and c0 < c1:
        rgb[r0:r1, c0:c1] = sprite.rgb[r0 - top : r1 - top, c0 - left : c1 - left]
        alpha[r0:r1, c0:c1] = sprite.alpha[r0 - top : r1 - top, c0 - left : c1 - left]
    return rgb, alpha


def _paste(canvas: np.ndarray, sprite: Sprite, center) -> np.ndarray:
    """Alpha-blend the sprite onto ``canvas`` in place; returns the sprite's alpha on the canvas."""
    rgb, alpha = _layer(sprite, center, *canvas.shape[:2])
    canvas *= 1 - alpha[..., None]
    canvas += rgb * alpha[..., None]
    return alpha


def _occluder(
    kind: str, rng: np.random.Generator, extent: float, target_color: np.ndarray, shapes, pool: MeshPool
) -> Sprite:
    """An occluder of a kind in :data:`OCCLUDERS`, about ``extent`` px across."""
    base = target_color if rng.uniform() < 0.2 else random_color(rng, max_value=1.0)
    u = rng.uniform
    if kind == "object":
        return _scaled(_object_sprite(shapes[int(rng.integers(len(shapes)))], rng, pool, base), extent * u(0.5, 1.2))
    if kind == "polygon":
        outline = _radial(u(0.3, 1.0, int(rng.integers(3, 9))), u(0, 2 * math.pi))
    elif kind == "blob":
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        outline = _radial(0.6 + sum(u(0, 0.3 / k) * np.cos(k * t + u(0, 6.3)) for k in range(1, 5)), 0.0)
    elif kind == "bar":
        outline = _rectangle(1.0, u(0.03, 0.12), u(0, math.pi))
    elif kind == "box":
        outline = _rectangle(u(0.3, 1.0), u(0.3, 1.0), 0.0 if u() < 0.5 else u(0, math.pi))
    else:
        raise InputError(f"unknown occluder {kind!r}; expected one of {OCCLUDERS}")
    length = extent * (u(1.0, 2.5) if kind == "bar" else u(0.4, 1.1))
    sprite = _sprite_from_alpha(rng, _rasterise([(outline / np.abs(outline).max() * 0.98, True)], 96), base)
    return _scaled(sprite, length)


def _noisy_mask(mask: np.ndarray, rng: np.random.Generator, radius: int) -> np.ndarray:
    """A segmenter-like version of ``mask``: unchanged, eroded, dilated or with ragged edges."""
    kind = int(rng.integers(4))
    structure = ndimage.generate_binary_structure(2, 1)
    if kind == 1:
        noisy = ndimage.binary_erosion(mask, structure, iterations=radius)
        return noisy if noisy.any() else mask
    if kind == 2:
        return ndimage.binary_dilation(mask, structure, iterations=radius)
    if kind == 3:
        edge = mask ^ ndimage.binary_erosion(mask, structure)
        edge |= ndimage.binary_dilation(mask, structure) & ~mask
        flips = edge & (rng.uniform(size=mask.shape) < 0.35)
        noisy = mask ^ flips
        return noisy if noisy.any() else mask
    return mask


# ---- samples --------------------------------------------------------------------------------------------------------


def _factor_pools(factors: str, index: int) -> tuple[tuple, tuple, tuple, str | None]:
    """Shapes, backgrounds and occluders to draw from for sample ``index``, and the held-out factor it shows."""
    if factors == "train":
        return TRAIN_SHAPES, TRAIN_BACKGROUNDS, TRAIN_OCCLUDERS, None
    held = [(factor, value) for factor, values in HELD_OUT.items() for value in values]
    factor, value = held[index % len(held)]
    return (
        (value,) if factor == "shape" else TRAIN_SHAPES,
        (value,) if factor == "background" else TRAIN_BACKGROUNDS,
        (value,) if factor == "occluder" else TRAIN_OCCLUDERS,
        f"{factor}:{value}",
    )


def _compose(rng: np.random.Generator, pool: MeshPool, shapes, backgrounds, occluders, occlusion_range) -> tuple | None:
    """One source-resolution composition, or None when no occluder placement hit ``occlusion_range``."""
    longest = int(rng.integers(SOURCE_SIZES[0], SOURCE_SIZES[1] + 1))
    aspect = math.exp(rng.uniform(-math.log(2), math.log(2)))
    height, width = (
        (longest, max(24, round(longest / aspect))) if aspect >= 1 else (max(24, round(longest * aspect)), longest)
    )
    shape = shapes[int(rng.integers(len(shapes)))]
    background_style = backgrounds[int(rng.integers(len(backgrounds)))]
    clutter_shapes = TRAIN_SHAPES if len(shapes) > 1 else (*TRAIN_SHAPES, *shapes)
    scene = _background(background_style, rng, height, width, clutter_shapes, pool)
    target = _scaled(_object_sprite(shape, rng, pool), rng.uniform(0.3, 0.85) * min(height, width))
    h, w = target.alpha.shape
    center = (rng.uniform(h / 2, max(h / 2 + 1, height - h / 2)), rng.uniform(w / 2, max(w / 2 + 1, width - w / 2)))
    target_rgb, target_alpha = _layer(target, center, height, width)
    amodal = target_alpha > 0.5
    if amodal.sum() < 16:
        return None
    for _ in range(30):
        kinds = [occluders[int(rng.integers(len(occluders)))] for _ in range(int(rng.integers(1, 4)))]
        layers = []
        for kind in kinds:
            sprite = _occluder(kind, rng, max(h, w), target.rgb[h // 2, w // 2], clutter_shapes, pool)
            spot = (center[0] + rng.uniform(-0.6, 0.6) * h, center[1] + rng.uniform(-0.6, 0.6) * w)
            layers.append(_layer(sprite, spot, height, width))
        hidden = np.zeros((height, width), bool)
        for _, alpha in layers:
            hidden |= alpha > 0.5
        share = 1.0 - (amodal & ~hidden).sum() / amodal.sum()
        if occlusion_range[0] <= share <= occlusion_range[1]:
            break
    else:
        return None
    image = scene * (1 - target_alpha[..., None]) + target_rgb * target_alpha[..., None]
    for rgb, alpha in layers:
        image = image * (1 - alpha[..., None]) + rgb * alpha[..., None]
    whole = 255.0 * (1 - target_alpha[..., None]) + target_rgb * target_alpha[..., None]
    visible = _noisy_mask(amodal & ~hidden, rng, max(1, round(longest / 96)))
    factors = {"shape": shape, "background": background_style, "occluders": kinds, "occluded": round(float(share), 3)}
    return _to_uint8(image), _to_uint8(whole), amodal, visible, {**factors, "source_size": [height, width]}


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def composite_samples(
    seed: int,
    count: int,
    image_size: int = 64,
    factors: str = "train",
    occlusion_range: tuple[float, float] = OCCLUSION_RANGE,
) -> Iterator[GestaltSample]:
    """``count`` composited samples at the model's ``image_size`` (square, ``"squash"`` framing).

    ``factors="train"`` draws only training factors; ``"held-out"`` gives each sample one held-out factor value
    (see the module docstring). ``GestaltSample.factors`` tells what each sample shows.
    """
    if factors not in FACTOR_SETS:
        raise InputError(f"factors must be one of {FACTOR_SETS}, got {factors!r}")
    rng, pool = np.random.default_rng(seed), MeshPool()
    produced = 0
    while produced < count:
        shapes, backgrounds, occluders, held_out = _factor_pools(factors, produced)
        composed = _compose(rng, pool, shapes, backgrounds, occluders, occlusion_range)
        if composed is None:
            continue
        image, whole, amodal, visible, sample_factors = composed
        frame = make_frame(*image.shape[:2], image_size)
        visible_framed = frame_mask(visible, frame)
        if not visible_framed.any():
            continue
        if held_out is not None:
            sample_factors["held_out"] = held_out
        whole_mask = frame_mask(amodal, frame)
        whole_framed = frame_image(whole, frame).copy()
        whole_framed[~whole_mask] = 255  # hard edges: the gray <= 250 rule reads back exactly the whole mask
        yield GestaltSample(frame_image(image, frame), whole_framed, whole_mask, visible_framed, sample_factors)
        produced += 1


def write_synthetic_dataset(
    folder: str | os.PathLike,
    count: int,
    seed: int = 0,
    image_size: int = 64,
    factors: str = "train",
    *,
    overwrite: bool = False,
) -> Path:
    """Generate and write ``count`` composited samples in pix2gestalt's folder layout (progress bar)."""
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise InputError(f"count must be an int in [1, {MAX_COUNT}], got {count!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 16 <= image_size <= MAX_IMAGE_SIZE:
        raise InputError(f"image_size must be an int in [16, {MAX_IMAGE_SIZE}] pixels, got {image_size!r}")
    if factors not in FACTOR_SETS:
        raise InputError(f"factors must be one of {FACTOR_SETS}, got {factors!r}")
    metadata = {
        "source": "p2g3d composited synthetic objects",
        "seed": seed,
        "image_size": image_size,
        "factor_set": factors,
    }
    samples = composite_samples(seed, count, image_size, factors)
    return write_dataset(samples, folder, metadata, overwrite=overwrite, total=count)
