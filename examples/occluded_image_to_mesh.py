"""One occluded image -> completed object -> mesh (.glb) with the embedded models, on a CPU, no downloads.

    python examples/occluded_image_to_mesh.py [--image scene.png --mask mask.png] [--output out/]

Without --image it builds a cluttered synthetic scene, takes its occluded view 0, and also compares the mesh with the
true object (unit-box protocol). The same as ``p2g3d image-to-3d``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from p2g3d import AmodalCompleter
from p2g3d.integrations.registry import IMAGE_TO_3D, create_backend
from p2g3d.io import load_image, load_mask
from p2g3d.jobs.image_to_3d import occluded_image_to_meshes
from p2g3d.scenes import make_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, default=None)
    parser.add_argument("--mask", type=Path, default=None, help="visible mask of the object")
    parser.add_argument("--input-elevation", type=float, default=25.0, help="camera elevation of the image, degrees")
    parser.add_argument("--output", type=Path, default=Path("occluded_image_to_mesh"))
    args = parser.parse_args()

    truth = None
    if args.image is None:
        scene = make_scene(3, style="cluttered")  # the target is partly hidden in view 0
        image, mask, truth = scene.views[0].image, scene.views[0].visible_mask, scene.target
    else:
        image, mask = load_image(args.image), load_mask(args.mask)
    completer = AmodalCompleter.from_pretrained(num_samples=3, num_inference_steps=20)
    backend = create_backend("zero123", IMAGE_TO_3D, input_elevation=args.input_elevation, num_inference_steps=20)
    for record in occluded_image_to_meshes(
        image, mask, backend, args.output, completer=completer, ground_truth=truth, protocol="unit-box"
    ):
        print(f"object {record['object']}: {args.output / record['mesh']}, preview {args.output / record['preview']}")
        if "metrics" in record:
            iou = record["metrics"]["volume_iou"]
            iou_text = "n/a" if iou is None else f"{iou:.4f}"
            print(f"  chamfer {record['metrics']['chamfer']:.4f}, volume IoU {iou_text} (unit-box)")


if __name__ == "__main__":
    main()
