"""``p2g3d demo``: the main job end to end, on any machine: complete occluded objects in synthetic multi-view
scenes, reconstruct meshes with and without completion, export them, and measure how much completion helps.

Runs the embedded demonstration model by default (or any model folder), on the CPU in a few minutes.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from ..scenes import SCENE_STYLES
from ..settings import CompletionSettings, option
from ..validation import check_choice, check_number

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoJob:
    """Settings of :func:`run_demo` (the ``p2g3d demo`` options)."""

    output: Path = option(Path("p2g3d-demo"), "--output", "output folder", type=Path)
    model: str | None = option(None, "--model", "model folder (default: the embedded demonstration model)")
    scenes: int = option(2, "--scenes", "synthetic scenes (seeds seed .. seed + scenes - 1)")
    steps: int = option(20, "--steps", "DDIM steps")
    samples: int = option(3, "--samples", "samples per object, voted per pixel")
    seed: int = option(0, "--seed", "first scene seed and base seed of the seed rule")
    style: str = option("cluttered", "--style", "scene style", choices=SCENE_STYLES)
    device: str | None = option(None, "--device", "cpu, cuda, cuda:N (default: cuda if available)")

    def __post_init__(self):
        check_number(self, "scenes", integer=True, low=1, high=100)
        CompletionSettings(num_inference_steps=self.steps, num_samples=self.samples)  # their checks, once
        check_number(self, "seed", integer=True, low=0)
        check_choice(self, "style", SCENE_STYLES)


def run_demo(job: DemoJob) -> str:
    """Run the demo; returns the metrics table (also written to ``output/metrics.md`` and ``metrics.json``).

    Scenes have the seeds ``seed`` .. ``seed + scenes - 1`` and the given :func:`~p2g3d.scenes.make_scene` style
    (default ``"cluttered"``: occluders of any shape and colour in several views, textured backgrounds); every
    view's target is completed once from its visible mask (view V of scene S is the item ``scene_S_view_V`` of the
    seed rule), the target is carved from visible, all-foreground, completed and oracle amodal masks, each mesh is
    exported as ``scene_S/<method>.glb`` next to the ground truth, and ``scene_S/preview.png`` shows the views with
    each method's masks over the true amodal mask.
    """
    from ..completer import AmodalCompleter  # torch, diffusers and the 3D stack load here, not when the CLI starts
    from ..evaluation.occlusion3d import run_benchmark, summary_table
    from ..io import check_output_folder, save_json, write_atomic
    from ..scenes import make_scene
    from .stages import benchmark_carver

    output = check_output_folder(job.output)
    started = time.perf_counter()
    completer = AmodalCompleter.from_pretrained(
        job.model, device=job.device, num_samples=job.samples, num_inference_steps=job.steps
    )
    scenes = [make_scene(scene_seed, style=job.style) for scene_seed in range(job.seed, job.seed + job.scenes)]
    rows = run_benchmark(scenes, benchmark_carver(), completer, seed=job.seed, output=output)
    table = summary_table(rows, "syncdreamer")
    write_atomic(output / "metrics.md", (table + "\n").encode())
    save_json(output / "metrics.json", {"rows": [{"seed": r.seed, "method": r.method, **r.metrics} for r in rows]})
    logger.info("demo finished in %.0f s", time.perf_counter() - started)
    return table


def report(table: str, job: DemoJob) -> str:
    """What ``p2g3d demo`` prints: the table and where the files are."""
    return f"{table}\n\nmeshes (.glb), previews and metrics in {job.output}/"
