"""``p2g3d evaluate``: 3D metrics of a predicted mesh against the ground truth, under a named protocol."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..metrics import PROTOCOLS
from ..settings import option
from ..validation import check_choice, check_number


@dataclass(frozen=True)
class EvaluateJob:
    """Settings of :func:`run_evaluate` (the ``p2g3d evaluate`` options; defaults of :func:`p2g3d.metrics.evaluate`)."""

    pred: Path = option(None, "pred", "predicted mesh", type=Path)
    gt: Path = option(None, "gt", "ground-truth mesh", type=Path)
    protocol: str = option("syncdreamer", "--protocol", "alignment and normalisation protocol", choices=PROTOCOLS)
    points: int = option(20000, "--points", "surface points sampled per mesh")
    volume_resolution: int = option(64, "--volume-resolution", "voxels per side of the volume IoU")
    seed: int = option(0, "--seed", "seed of the point sampling")
    output: Path | None = option(None, "--output", "also write the JSON here", type=Path)

    def __post_init__(self):
        check_choice(self, "protocol", PROTOCOLS)
        check_number(self, "points", integer=True, low=1, high=10_000_000)
        check_number(self, "volume_resolution", integer=True, low=8, high=256)
        check_number(self, "seed", integer=True, low=0)


def run_evaluate(job: EvaluateJob) -> dict:
    """The metrics (without the alignment matrix), also written to ``job.output`` with the alignment."""
    from ..io import check_output_file, save_json
    from ..metrics import evaluate

    if job.output is not None:
        check_output_file(job.output)
    result = evaluate(
        job.pred, job.gt, job.protocol, num_points=job.points, volume_resolution=job.volume_resolution, seed=job.seed
    )
    if job.output is not None:
        save_json(job.output, result)
    return {key: value for key, value in result.items() if key != "alignment"}
