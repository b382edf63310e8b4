"""Complete an occluded object, then look at it from around: pix2gestalt -> Zero-1-to-3 -> a views folder.

    python examples/novel_views.py scene.png visible_mask.png \
        [--views-model models/zero123-xl] [--completion-model models/pix2gestalt] --views 8 --output views/
    p2g3d reconstruct views/ -o object.glb

Writes the completed object and a views folder (every view with its foreground mask and camera in cameras.json,
p2g3d camera convention: world +Z up, OpenCV camera axes, world-to-camera extrinsics, intrinsics in pixels) that
``p2g3d reconstruct`` turns into a mesh. Without model options it runs the embedded demonstration models (64 px,
synthetic objects only).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from p2g3d import AmodalCompleter, load_image, load_mask
from p2g3d.integrations.base import save_views
from p2g3d.io import save_png
from p2g3d.novel_views import NovelViewGenerator

logger = logging.getLogger("novel_views")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path)
    parser.add_argument("mask", type=Path)
    parser.add_argument("--completion-model", default=None, help="pix2gestalt folder (default: the embedded model)")
    parser.add_argument("--views-model", default=None, help="Zero-1-to-3 folder (default: the embedded model)")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--input-elevation", type=float, default=0.0, help="elevation of the input view, degrees")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--output", type=Path, default=Path("views"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    completer = AmodalCompleter.from_pretrained(args.completion_model, num_inference_steps=args.steps)
    (whole,) = completer(load_image(args.image), [load_mask(args.mask)], seed=0, item=args.image.stem)
    save_png(args.output / "completed_rgba.png", whole.whole_rgba)
    logger.info("completed: %.0f%% of the object was hidden", 100 * whole.occluded_fraction)

    generator = NovelViewGenerator.from_pretrained(args.views_model, num_inference_steps=args.steps)
    cameras = generator.orbit(args.views, elevation_deg=args.input_elevation)
    views = generator(whole, cameras, input_elevation=args.input_elevation, seed=0)
    save_views(
        [view.masked_view() for view in views],
        args.output,
        names=[view.stem for view in views],
        extra=[view.index_fields for view in views],
    )
    logger.info("wrote %d views to %s", len(views), args.output)


if __name__ == "__main__":
    main()
