"""Novel-view quality of a Zero-1-to-3 model: generated-view mask IoU against true renders, on held-out objects.

    python benchmarks/novel_views.py --data DIR [--model DIR] [--targets 3] [--steps 20] [--limit N]

DIR is a multi-view folder (Zero-1-to-3's render layout, e.g. written by
``p2g3d.training.multiview.write_multiview_dataset``). View 0 of each object is the input, views 1..targets the
targets. Prints JSON: mean IoU (percent) of the generated views' masks and of the input-silhouette baseline.
Default model: the embedded demonstration model.
"""

from __future__ import annotations

import argparse
import json
import time

from p2g3d.evaluation.novel_views import evaluate_novel_views
from p2g3d.loading import default_zero123_path, load_pipeline
from p2g3d.pipelines import Zero123Pipeline
from p2g3d.runtime import resolve_device, resolve_dtype
from p2g3d.training.multiview import MultiViewDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default=None)
    parser.add_argument("--targets", type=int, default=3, help="target views per object")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None)
    args = parser.parse_args()

    start = time.perf_counter()
    device = resolve_device(args.device)
    pipe = load_pipeline(Zero123Pipeline, args.model or default_zero123_path(), device, resolve_dtype(None, device))
    pipe.set_progress_bar_config(disable=True)
    result = evaluate_novel_views(
        pipe,
        MultiViewDataset(args.data),
        targets_per_object=args.targets,
        num_inference_steps=args.steps,
        guidance_scale=args.guidance,
        seed=args.seed,
        limit=args.limit,
    )
    print(json.dumps({**result, "seconds": round(time.perf_counter() - start, 1)}, indent=2))


if __name__ == "__main__":
    main()
