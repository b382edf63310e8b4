"""3D occlusion benchmark: reconstruct occluded targets from visible, all-foreground and amodal masks.

    python benchmarks/occlusion3d.py --scenes 10 [--style cluttered|simple] [--complete [--model DIR]] [--json FILE]

Prints a markdown table (protocol named) of Chamfer, F-score and volume IoU per mask source, averaged over
synthetic scenes with seeds 0..N-1 (default style "cluttered": occluders of any shape and colour in views 0, 3 and
5 of 8, textured backgrounds; "simple": one grey box in view 0, white background). With --complete, the
completer's amodal masks (the embedded demonstration model unless --model names another) are added as a fourth
method.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from p2g3d.evaluation.occlusion3d import run_benchmark, summary_table
from p2g3d.jobs.stages import benchmark_carver
from p2g3d.scenes import SCENE_STYLES, make_scene


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--style", default="cluttered", choices=SCENE_STYLES)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--resolution", type=int, default=96, help="carving voxels per side")
    parser.add_argument("--protocol", default="syncdreamer", choices=("syncdreamer", "triposr", "raw"))
    parser.add_argument("--complete", action="store_true", help="add the completer's masks")
    parser.add_argument("--model", default=None, help="pix2gestalt model folder (default: the embedded model)")
    parser.add_argument("--steps", type=int, default=50, help="completer DDIM steps")
    parser.add_argument("--samples", type=int, default=4, help="completer samples per view")
    parser.add_argument("--seed", type=int, default=0, help="completion seed of the run (per scene and view)")
    parser.add_argument("--json", default=None, help="write every row here")
    args = parser.parse_args()

    start = time.perf_counter()
    scenes = [
        make_scene(seed, num_views=args.views, image_size=args.image_size, style=args.style)
        for seed in range(args.scenes)
    ]
    completer = None
    if args.complete or args.model:
        from p2g3d import AmodalCompleter

        completer = AmodalCompleter.from_pretrained(
            args.model, num_inference_steps=args.steps, num_samples=args.samples
        )
    carver = benchmark_carver(args.resolution)
    rows = run_benchmark(scenes, carver, completer, seed=args.seed, protocol=args.protocol)
    occluded = [scene.views[v].occluded_fraction for scene in scenes for v in scene.occluded_views]
    print(summary_table(rows, args.protocol))
    print(
        f"\n{args.scenes} scenes x {args.views} views of {args.image_size} px, carving {args.resolution}^3; "
        f"mean hidden share of the target in the occluded views {sum(occluded) / len(occluded):.2f}; "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump([dataclasses.asdict(row) for row in rows], file, indent=2)


if __name__ == "__main__":
    main()
