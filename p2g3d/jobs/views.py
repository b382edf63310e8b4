"""``p2g3d views``: Zero-1-to-3 novel views of one object, written as a views folder."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..cameras import ZERO123_RADIUS
from ..settings import MAX_SAMPLES, MAX_VIEWS, NovelViewSettings, RuntimeSettings, nested, option
from ..validation import check_number

logger = logging.getLogger(__name__)

ELEVATION_HELP = "elevation of the generated views, degrees"


@dataclass(frozen=True)
class ViewsJob:
    """Settings of :func:`run_views` (the ``p2g3d views`` options). Elevations are in degrees, in (-90, 90)."""

    image: Path = option(None, "image", "RGBA cut-out (alpha = object), or RGB with --mask", type=Path)
    mask: Path | None = option(None, "--mask", "object mask for an RGB image", type=Path)
    output: Path = option(None, "--output", "output folder", type=Path, required=True)
    model: str | None = option(
        None, "--model", "converted Zero-1-to-3 folder, community folder or hub id (default: the embedded model)"
    )
    samples: int = option(1, "--samples", "samples per view")
    views: int = option(8, "--views", "views evenly spaced in azimuth, starting at the input's")
    input_elevation: float = option(0.0, "--input-elevation", "elevation of the input view, degrees")
    elevation: float | None = option(None, "--elevation", ELEVATION_HELP + " (default: the input's)")
    radius: float = option(ZERO123_RADIUS, "--radius", "camera distance")
    sampling: NovelViewSettings = nested(NovelViewSettings)
    runtime: RuntimeSettings = nested(RuntimeSettings)

    def __post_init__(self):
        check_number(self, "samples", integer=True, low=1, high=MAX_SAMPLES)
        check_number(self, "views", integer=True, low=1, high=MAX_VIEWS)
        check_number(self, "input_elevation", low=-90, high=90, low_open=True, high_open=True)
        check_number(self, "radius", low=0, low_open=True)
        if self.elevation is not None:
            check_number(self, "elevation", low=-90, high=90, low_open=True, high_open=True)


def run_views(job: ViewsJob) -> dict:
    """Generate ``job.samples`` views at each of ``job.views`` cameras and write them with ``input.png`` and
    ``cameras.json`` to ``job.output``; returns where and how many."""
    from ..integrations.base import save_views
    from ..io import check_output_folder, load_cutout, save_png
    from ..novel_views import NovelViewGenerator

    source = load_cutout(job.image, job.mask)
    check_output_folder(job.output)
    generator = NovelViewGenerator.from_pretrained(
        job.model, device=job.runtime.device, dtype=job.runtime.dtype, **vars(job.sampling)
    )
    framed = generator.frame(source)
    elevation = job.input_elevation if job.elevation is None else job.elevation
    cameras = generator.orbit(job.views, elevation_deg=elevation, radius=job.radius)
    views = generator(
        framed,
        cameras,
        input_elevation=job.input_elevation,
        input_radius=job.radius,
        num_samples=job.samples,
        seed=job.runtime.seed,
    )
    save_png(job.output / "input.png", framed.image)
    header = {
        "input": {"file": "input.png", "camera": generator.input_camera(job.input_elevation, job.radius).to_dict()},
        "settings": {
            **vars(job.sampling),
            "seed": job.runtime.seed,
            "samples": job.samples,
            "input_elevation": job.input_elevation,
            "elevation": elevation,
            "radius": job.radius,
        },
    }
    save_views(
        [view.masked_view() for view in views],
        job.output,
        names=[view.stem for view in views],
        extra=[view.index_fields for view in views],
        header=header,
    )
    logger.info("wrote %d view(s) to %s", len(views), job.output)
    return {"output": str(job.output), "views": len(views)}
