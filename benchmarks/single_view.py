"""Single-view benchmark: ONE occluded image -> image-to-3D -> mesh, with and without amodal completion.

    python benchmarks/single_view.py --scenes 12 [--backend zero123] [--backend-model DIR] [--model DIR] [--output DIR]

Synthetic cluttered scenes (seeds 0..N-1, true meshes known); view 0 (occluded) is the input, given to the
backend as (a) the visible cut-out, (b) the all-foreground cut-out, (c) the pix2gestalt completion, (d) the true
whole object. Prints a markdown table (protocol "unit-box": both meshes normalised to a unit bounding box, no
rotation, since the backends' frames are tied to the input camera) of mean +- std per method. Defaults: the embedded
demonstration models (pix2gestalt and Zero-1-to-3), input elevation = the scenes' true 25 degrees for every method.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from p2g3d.evaluation.occlusion3d import summary_table
from p2g3d.evaluation.single_view import run_single_view_benchmark
from p2g3d.integrations.registry import IMAGE_TO_3D, available_backends, create_backend
from p2g3d.metrics import PROTOCOLS
from p2g3d.scenes import make_scene

SCENE_ELEVATION = 25.0  # make_scene's default camera ring


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=12)
    parser.add_argument("--backend", default="zero123", choices=available_backends(IMAGE_TO_3D))
    parser.add_argument("--backend-model", default=None, help="backend model (default: the backend's own)")
    parser.add_argument("--backend-steps", type=int, default=50, help="backend sampling steps")
    parser.add_argument("--views", type=int, default=8, help="zero123: views per ring")
    parser.add_argument("--model", default=None, help="pix2gestalt model folder (default: the embedded model)")
    parser.add_argument("--steps", type=int, default=50, help="completer DDIM steps")
    parser.add_argument("--samples", type=int, default=3, help="completer samples per object")
    parser.add_argument("--protocol", default="unit-box", choices=PROTOCOLS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="write meshes and previews here")
    parser.add_argument("--json", default=None, help="write every row here")
    args = parser.parse_args()

    from p2g3d import AmodalCompleter

    start = time.perf_counter()
    options = {"model": args.backend_model, "num_inference_steps": args.backend_steps}
    if args.backend == "zero123":
        options.update(num_views=args.views, input_elevation=SCENE_ELEVATION)
    backend = create_backend(args.backend, IMAGE_TO_3D, **options)
    completer = AmodalCompleter.from_pretrained(args.model, num_inference_steps=args.steps, num_samples=args.samples)
    scenes = [make_scene(seed, style="cluttered") for seed in range(args.scenes)]
    rows = run_single_view_benchmark(
        scenes, backend, completer, seed=args.seed, protocol=args.protocol, output=args.output
    )
    print(summary_table(rows, args.protocol))
    hidden = sum(scene.views[0].occluded_fraction for scene in scenes) / len(scenes)
    print(
        f"\n{args.scenes} scenes, input view 0 (mean hidden share {hidden:.2f}), backend {args.backend}; "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump([dataclasses.asdict(row) for row in rows], file, indent=2)


if __name__ == "__main__":
    main()
