"""Complete the occluded objects of an image and save each whole object as an RGBA cut-out.

    python examples/complete_object.py scene.png mask_0.png [mask_1.png ...] --model models/pix2gestalt

Each result comes back in the input image's own frame: its amodal mask overlays the scene pixel for pixel.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from p2g3d import AmodalCompleter, load_image, load_mask
from p2g3d.io import save_png

logger = logging.getLogger("complete_object")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path)
    parser.add_argument("masks", type=Path, nargs="+")
    parser.add_argument("--model", default=None, help="folder written by `p2g3d convert` (default: the embedded model)")
    parser.add_argument("--output", type=Path, default=Path("completed"))
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--samples", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    image = load_image(args.image)
    masks = [load_mask(path) for path in args.masks]
    completer = AmodalCompleter.from_pretrained(args.model, num_inference_steps=args.steps, num_samples=args.samples)
    for obj in completer(image, masks, seed=0):
        save_png(args.output / f"object_{obj.label}_rgba.png", obj.whole_rgba)
        logger.info(
            "object %d: %.0f%% of it was hidden, sample agreement %.2f, amodal box %s",
            obj.label,
            100 * obj.occluded_fraction,
            obj.confidence,
            obj.amodal_box,
        )


if __name__ == "__main__":
    main()
