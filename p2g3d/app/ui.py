"""The app's page (Gradio): photo and visible mask in, whole object, amodal mask and a 3D model out.

Named API endpoints (``gradio_client``): ``/complete`` (photo file, visible-mask file -> whole object RGBA, amodal
mask, JSON of the numbers; the page's settings at their defaults) and ``/make_3d`` (nothing -> GLB of the last
completion of the session). Errors in an upload or a setting become a message on the page (``gr.Error``), never a
traceback, and the app keeps serving.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import InputError, MissingDependencyError
from ..schedulers import SCHEDULERS
from ..settings import MAX_SAMPLES, CompletionSettings
from . import callbacks

logger = logging.getLogger(__name__)

USER_ERRORS = (InputError, MissingDependencyError, OSError)
DEFAULT_SETTINGS = {"samples": 3, "steps": 20, "guidance": 2.0, "seed": 0, "scheduler": "model default"}


def as_settings(values: dict) -> tuple[CompletionSettings, int]:
    """The page's settings -> ``(CompletionSettings, seed)``; InputError for values out of range."""
    scheduler = values.get("scheduler")
    return (
        CompletionSettings(
            num_samples=int(values["samples"]),
            num_inference_steps=int(values["steps"]),
            guidance_scale=float(values["guidance"]),
            scheduler=None if scheduler in (None, "model default") else scheduler,
        ),
        int(values["seed"]),
    )


def user_message(error: Exception) -> str:
    """One line for the page."""
    return " ".join(str(error).split()) or error.__class__.__name__


def build_app(models: callbacks.AppModels, *, max_side: int = callbacks.MAX_IMAGE_SIDE, examples=(), note: str = ""):
    """The :class:`gradio.Blocks` page over ``models``; ``examples`` are ``(photo, visible mask)`` file pairs;
    ``note`` is shown under the title (which models run, on which device)."""
    import gradio as gr

    def run_complete(photo, visible_mask, values, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        try:
            settings, seed = as_settings(values)
            done = callbacks.complete(models, photo, visible_mask, settings, seed=seed, max_side=max_side)
        except USER_ERRORS as error:
            raise gr.Error(user_message(error)) from None
        return done.whole_rgba, done.amodal_mask, done.numbers, done

    def show_details(done):
        if done is None:
            return None, []
        return done.overlay, [(sample, f"sample {index}") for index, sample in enumerate(done.samples)]

    def run_make_3d(done, views, steps, values, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        try:
            _, seed = as_settings(values)
            files = callbacks.make_3d(
                models, None if done is None else done.result, views=int(views), steps=int(steps), seed=seed
            )
        except USER_ERRORS as error:
            raise gr.Error(user_message(error)) from None
        return files["glb"], [files[key] for key in ("glb", "mask", "rle", "whole", "views")]

    def segment(photo, clicks):
        try:
            mask, score = callbacks.mask_from_clicks(models, photo, clicks)
        except USER_ERRORS as error:
            raise gr.Error(user_message(error)) from None
        path = Path(callbacks.tempfile.mkdtemp(prefix="p2g3d-sam-")) / "visible_mask.png"
        callbacks.save_png(path, mask)
        gr.Info(f"SAM's score for this mask: {score:.2f}")
        return str(path)

    def add_click(clicks, kind, event: gr.SelectData):
        x, y = event.index
        return [*clicks, (float(x), float(y), 1 if kind == "object" else 0)]

    def drawing_as_mask(drawing):
        layers = (drawing or {}).get("layers") or []
        if not layers:
            raise gr.Error("draw over the visible part of the object first")
        import numpy as np

        alpha = np.max([np.asarray(layer)[..., 3] for layer in layers], axis=0) > 0
        if not alpha.any():
            raise gr.Error("the drawing is empty: paint over the visible part of the object")
        path = Path(callbacks.tempfile.mkdtemp(prefix="p2g3d-drawn-")) / "visible_mask.png"
        callbacks.save_png(path, alpha)
        return str(path)

    with gr.Blocks(title="p2g3d: see the whole object") as app:
        gr.Markdown(
            "# p2g3d: see the whole object\nGive a photo and the visible part of an object (click it, draw it or "
            "upload its mask); pix2gestalt synthesises the whole object and its amodal mask; then make it 3D."
            + (f"\n\n{note}" if note else "")
        )
        values = gr.State(dict(DEFAULT_SETTINGS))
        last = gr.State(None)
        clicks = gr.State([])
        with gr.Row():
            with gr.Column():
                photo = gr.Image(type="filepath", label="Photo (click the object to segment it)", elem_id="photo")
                with gr.Row():
                    kind = gr.Radio(["object", "occluder"], value="object", label="A click marks")
                    segment_button = gr.Button("Segment clicks with SAM")
                    clear_button = gr.Button("Clear clicks")
                mask = gr.Image(
                    type="filepath", image_mode="L", label="Visible mask (upload, or from clicks)", elem_id="mask"
                )
                with gr.Accordion("Draw the visible mask", open=False):
                    drawing = gr.ImageEditor(type="numpy", label="Paint over the visible part", image_mode="RGBA")
                    use_drawing = gr.Button("Use the drawing as the visible mask")
                if examples:
                    gr.Examples([list(map(str, pair)) for pair in examples], inputs=[photo, mask])
                with gr.Accordion("Settings", open=False):
                    samples = gr.Slider(1, MAX_SAMPLES, DEFAULT_SETTINGS["samples"], step=1, label="Samples")
                    steps = gr.Slider(2, 200, DEFAULT_SETTINGS["steps"], step=1, label="Steps")
                    guidance = gr.Slider(0.0, 10.0, DEFAULT_SETTINGS["guidance"], step=0.5, label="Guidance")
                    seed = gr.Number(DEFAULT_SETTINGS["seed"], precision=0, minimum=0, label="Seed")
                    scheduler = gr.Dropdown(["model default", *SCHEDULERS], value="model default", label="Sampler")
                complete_button = gr.Button("Complete", variant="primary", elem_id="complete")
            with gr.Column():
                whole = gr.Image(label="Whole object", image_mode="RGBA", format="png", elem_id="whole")
                amodal = gr.Image(label="Amodal mask", image_mode="L", format="png", elem_id="amodal")
                numbers = gr.JSON(label="Numbers")
                overlay = gr.Image(label="On the photo: visible (blue), completed hidden part (orange)")
                gallery = gr.Gallery(label="Every sample", columns=4, height="auto")
                with gr.Row():
                    views = gr.Slider(1, 16, 4, step=1, label="Novel views per ring")
                    view_steps = gr.Slider(2, 100, 10, step=1, label="Novel-view steps")
                make_button = gr.Button("Make 3D", elem_id="make3d")
                model3d = gr.Model3D(label="3D model", elem_id="model3d")
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")

        def remember(samples, steps, guidance, seed, scheduler):
            return {"samples": samples, "steps": steps, "guidance": guidance, "seed": seed, "scheduler": scheduler}

        for control in (samples, steps, guidance, seed, scheduler):
            control.change(
                remember, [samples, steps, guidance, seed, scheduler], values, api_visibility="private", queue=False
            )
        photo.select(add_click, [clicks, kind], clicks, api_visibility="private", queue=False)
        photo.upload(lambda: [], None, clicks, api_visibility="private", queue=False)
        clear_button.click(lambda: [], None, clicks, api_visibility="private", queue=False)
        segment_button.click(segment, [photo, clicks], mask, api_visibility="private")
        use_drawing.click(drawing_as_mask, drawing, mask, api_visibility="private")
        complete_button.click(
            run_complete, [photo, mask, values], [whole, amodal, numbers, last], api_name="complete"
        ).then(show_details, last, [overlay, gallery], api_visibility="private", queue=False)
        make_button.click(run_make_3d, [last, views, view_steps, values], [model3d, downloads], api_name="make_3d")
    return app
