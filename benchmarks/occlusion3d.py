"""3D occlusion benchmark: reconstruct occluded targets from visible, all-foreground and amodal masks, and from
completed masks, per view and fused in 3D.

    python benchmarks/occlusion3d.py --scenes 10 [--style cluttered|simple] [--occluded-views K] [--kinds held-out]
        [--complete [--model DIR] [--fusion log-odds log-odds:share k-of-n intersection]] [--bound B] [--json FILE]

Prints a markdown table (protocol named) of Chamfer, F-score, volume IoU and the mean IoU of the masks with the true
amodal masks per mask source, averaged over synthetic scenes with seeds start..start+N-1 (default style "cluttered":
occluders of any shape and colour in views 0, 3 and 5 of 8, or in the first K views with --occluded-views K,
textured backgrounds; "simple": one grey box in view 0, white background). With --complete, the completer's amodal
masks (the embedded demonstration model unless --model names another) are added per view, and the consistent masks
of each --fusion (METHOD[:EVIDENCE], p2g3d.fusion) from the same completions; a second table gives the share of the
visible -> oracle gap each closes, and the time of completion and of each fusion.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from p2g3d.evaluation.occlusion3d import COMPLETED, fused_method, gap_closed, run_benchmark, summary_table
from p2g3d.fusion import EVIDENCE, FUSION_METHODS, SilhouetteFusion, VoxelGrid
from p2g3d.jobs.stages import benchmark_carver
from p2g3d.scenes import SCENE_STYLES, make_scene
from p2g3d.training.multiview import HELD_OUT_KINDS, TRAIN_KINDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=10)
    parser.add_argument("--start", type=int, default=0, help="seed of the first scene")
    parser.add_argument("--views", type=int, default=8)
    parser.add_argument("--style", default="cluttered", choices=SCENE_STYLES)
    parser.add_argument("--occluded-views", type=int, default=None, help="occluders in the first K views")
    parser.add_argument("--kinds", default="any", choices=("any", "train", "held-out"), help="target shape families")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--resolution", type=int, default=96, help="carving (and fusion) voxels per side")
    parser.add_argument("--bound", type=float, default=None, help="half side of the box (default: 1)")
    parser.add_argument("--protocol", default="syncdreamer", choices=("syncdreamer", "triposr", "raw"))
    parser.add_argument("--complete", action="store_true", help="add the completer's masks")
    parser.add_argument("--model", default=None, help="pix2gestalt model folder (default: the embedded model)")
    parser.add_argument("--steps", type=int, default=50, help="completer DDIM steps")
    parser.add_argument("--samples", type=int, default=4, help="completer samples per view")
    parser.add_argument("--seed", type=int, default=0, help="completion seed of the run (per scene and view)")
    parser.add_argument(
        "--fusion",
        nargs="*",
        default=["log-odds", "log-odds:share", "k-of-n", "intersection"],
        help=f"fusions as METHOD[:EVIDENCE], methods {FUSION_METHODS}, evidence {EVIDENCE} (default vote)",
    )
    parser.add_argument("--json", default=None, help="write every row here")
    args = parser.parse_args()

    start = time.perf_counter()
    kinds = {"any": None, "train": TRAIN_KINDS, "held-out": HELD_OUT_KINDS}[args.kinds]
    occluded = None if args.occluded_views is None else tuple(range(args.occluded_views))
    scenes = [
        make_scene(
            seed,
            num_views=args.views,
            image_size=args.image_size,
            style=args.style,
            occluded_views=occluded,
            target_kind=None if kinds is None else kinds[seed % len(kinds)],
        )
        for seed in range(args.start, args.start + args.scenes)
    ]
    completer = None
    if args.complete or args.model:
        from p2g3d import AmodalCompleter

        completer = AmodalCompleter.from_pretrained(
            args.model, num_inference_steps=args.steps, num_samples=args.samples
        )
    carver = benchmark_carver(args.resolution, args.bound)
    grid = VoxelGrid.cube(args.bound or 1.0, args.resolution)
    seconds: dict = {}
    fusions = [SilhouetteFusion(*name.split(":")) for name in args.fusion] if completer is not None else ()
    rows = run_benchmark(
        scenes, carver, completer, seed=args.seed, fusions=fusions, grid=grid, seconds=seconds, protocol=args.protocol
    )
    print(summary_table(rows, args.protocol))
    if completer is not None:
        print("\n| masks | Chamfer gap closed | volume IoU gap closed | seconds per scene |")
        print("|---|---:|---:|---:|")
        timed = {COMPLETED: seconds["completion"], **{fused_method(f): seconds[fused_method(f)] for f in fusions}}
        for method, total in timed.items():
            gap = gap_closed(rows, method)
            extra = " (+ completion)" if method != COMPLETED else ""
            print(
                f"| {method} | {100 * gap['chamfer']:.0f}% | {100 * gap['volume_iou']:.0f}% | "
                f"{total / len(scenes):.2f}{extra} |"
            )
    hidden = [scene.views[v].occluded_fraction for scene in scenes for v in scene.occluded_views]
    print(
        f"\n{args.scenes} scenes x {args.views} views of {args.image_size} px, carving {args.resolution}^3 in a box of "
        f"half side {args.bound or 1.0}; mean hidden share of the target in the occluded views "
        f"{sum(hidden) / len(hidden):.2f}; {time.perf_counter() - start:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as file:
            json.dump([dataclasses.asdict(row) for row in rows], file, indent=2)


if __name__ == "__main__":
    main()
