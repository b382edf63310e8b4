"""``p2g3d app``: serve the interactive app (:mod:`p2g3d.app`) on this machine.

Safe by default: it binds to 127.0.0.1 (``--host`` to bind elsewhere, with a warning), makes no share link unless
``--share``, refuses uploads above ``--max-upload-mb`` and photos above ``--max-image-side`` pixels, and queues
requests with at most ``--concurrency`` running at once (one by default: two users cannot run the model out of
memory together).
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..settings import RuntimeSettings, nested, option
from ..validation import check_number

logger = logging.getLogger(__name__)

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class AppJob:
    """Settings of :func:`run_app` (the ``p2g3d app`` options)."""

    port: int = option(7860, "--port", "port to serve on")
    host: str = option("127.0.0.1", "--host", "address to bind (anything but localhost serves the network)")
    share: bool = option(False, "--share", "also make a public Gradio share link (off by default)")
    model: str | None = option(None, "--model", "pix2gestalt model folder or hub id (default: the embedded model)")
    zero123_model: str | None = option(
        None, "--zero123-model", "Zero-1-to-3 folder or hub id for 'make 3D' (default: the embedded model)"
    )
    sam_model: str | None = option(
        None, "--sam-model", "SAM hub id or folder for clicks (default facebook/sam-vit-base)"
    )
    max_upload_mb: int = option(10, "--max-upload-mb", "largest upload accepted, in MB")
    max_image_side: int = option(2048, "--max-image-side", "largest photo side accepted, in pixels")
    concurrency: int = option(1, "--concurrency", "requests running the models at once")
    queue_size: int = option(16, "--queue-size", "requests waiting at most")
    runtime: RuntimeSettings = nested(RuntimeSettings)

    def __post_init__(self):
        check_number(self, "port", integer=True, low=1, high=65535)
        check_number(self, "max_upload_mb", integer=True, low=1, high=1024)
        check_number(self, "max_image_side", integer=True, low=64, high=16384)
        check_number(self, "concurrency", integer=True, low=1, high=64)
        check_number(self, "queue_size", integer=True, low=1, high=10000)


def example_files(folder: Path) -> list[tuple[Path, Path]]:
    """One example photo and its visible mask: view 0 of a synthetic occluded scene (the embedded model knows such
    objects)."""
    from ..io import save_png
    from ..scenes import make_scene

    view = make_scene(3, num_views=4, image_size=192, style="cluttered", occluded_views=(0,)).views[0]
    return [
        (save_png(folder / "example_photo.png", view.image), save_png(folder / "example_mask.png", view.visible_mask))
    ]


def build(job: AppJob):
    """The app's :class:`gradio.Blocks`, queued as ``job`` says (not launched)."""
    from ..app.callbacks import AppModels
    from ..app.ui import build_app
    from ..errors import MissingDependencyError
    from ..runtime import resolve_device

    try:
        import gradio  # noqa: F401
    except ImportError as error:
        raise MissingDependencyError(f"the app needs Gradio: pip install 'p2g3d[app]' ({error})") from error
    device = resolve_device(job.runtime.device)
    models = AppModels(job.model, job.zero123_model, job.sam_model, device)
    note = (
        f"Models: pix2gestalt {job.model or 'embedded demonstration model (synthetic objects, 64 px)'}, "
        f"Zero-1-to-3 {job.zero123_model or 'embedded demonstration model'}; device {device}."
    )
    if job.model is None:
        note += " The embedded models run on a CPU out of the box; real photos need the official weights (--model)."
    examples = example_files(Path(tempfile.mkdtemp(prefix="p2g3d-app-examples-")))
    app = build_app(models, max_side=job.max_image_side, examples=examples, note=note)
    return app.queue(max_size=job.queue_size, default_concurrency_limit=job.concurrency)


def serve(job: AppJob, *, block: bool = True):
    """Build and launch the app as ``job`` says; with ``block`` False, return the running app at once (tests call
    ``app.close()``)."""
    if job.host not in LOCAL_HOSTS:
        logger.warning("serving on %s: anyone who can reach this machine can use the app", job.host)
    app = build(job)
    app.launch(
        server_name=job.host,
        server_port=job.port,
        share=job.share,
        max_file_size=f"{job.max_upload_mb}mb",
        show_error=True,  # an upload Gradio cannot read shows its one-line reason on the page
        footer_links=["api"],
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return app


def run_app(job: AppJob) -> dict:
    """Serve the app until interrupted."""
    serve(job)
    return {"served": f"http://{job.host}:{job.port}"}
