"""The interactive app: its callbacks as plain functions, its API through gradio_client, and the page in a real
headless browser (Playwright with the system's Chromium; CI sets P2G3D_REQUIRE_BROWSER=1 so that it runs there)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import trimesh
from conftest import requires_3d

from p2g3d.errors import InputError
from p2g3d.io import decode_segmentation, load_mask, save_png
from p2g3d.settings import CompletionSettings

gradio = pytest.importorskip("gradio", reason="the app needs Gradio (pip install 'p2g3d[app]')")

from p2g3d.app import callbacks  # noqa: E402
from p2g3d.app.ui import as_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = os.environ.get("P2G3D_APP_SCREENSHOT")  # where the browser test saves the page (docs/app.png)


@pytest.fixture(scope="module")
def photo_and_mask(tmp_path_factory) -> tuple[Path, Path]:
    from p2g3d.scenes import make_scene

    view = make_scene(3, num_views=4, image_size=96, style="cluttered", occluded_views=(0,)).views[0]
    folder = tmp_path_factory.mktemp("app_inputs")
    return save_png(folder / "photo.png", view.image), save_png(folder / "mask.png", view.visible_mask)


def test_uploads_are_checked_with_messages_for_the_page(photo_and_mask, tmp_path):
    photo, mask = photo_and_mask
    image = callbacks.read_photo(photo)
    assert image.shape == (96, 96, 3)
    (tmp_path / "notes.txt").write_text("not an image")
    save_png(tmp_path / "small.png", np.ones((10, 10), bool))
    save_png(tmp_path / "empty.png", np.zeros((96, 96), bool))
    cases = [
        (lambda: callbacks.read_photo(None), "upload a photo"),
        (lambda: callbacks.read_photo(tmp_path / "notes.txt"), "image"),
        (lambda: callbacks.read_photo(photo, max_side=64), "up to 64 px"),
        (lambda: callbacks.read_visible_mask(None, image.shape[:2]), "visible mask"),
        (lambda: callbacks.read_visible_mask(tmp_path / "small.png", image.shape[:2]), "the photo's size"),
        (lambda: callbacks.read_visible_mask(tmp_path / "empty.png", image.shape[:2]), "empty"),
        (lambda: as_settings({"samples": 3, "steps": 0, "guidance": 2, "seed": 0}), "num_inference_steps"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message):
            call()
    assert callbacks.read_visible_mask(mask, image.shape[:2]).any()


@requires_3d
def test_complete_then_make_3d_as_plain_functions(photo_and_mask, tiny_model_dir, tiny_z123_dir):
    photo, mask = photo_and_mask
    models = callbacks.AppModels(str(tiny_model_dir), str(tiny_z123_dir))
    settings = CompletionSettings(num_samples=2, num_inference_steps=2)
    done = callbacks.complete(models, photo, mask, settings, seed=3)
    assert done.whole_rgba.shape == (96, 96, 4) and done.amodal_mask.shape == (96, 96)
    assert len(done.samples) == 2 and done.overlay.shape == (96, 96, 3)
    assert done.numbers["samples"] == 2 and 0.0 <= done.numbers["occluded_fraction"] <= 1.0
    np.testing.assert_array_equal(done.amodal_mask > 0, done.result.amodal_mask)
    again = callbacks.complete(models, photo, mask, settings, seed=3)
    np.testing.assert_array_equal(again.whole_rgba, done.whole_rgba)  # the seed rule: same seed, same object
    with pytest.raises(InputError, match="complete an object first"):
        callbacks.make_3d(models, None, views=2, steps=2)
    files = callbacks.make_3d(models, done.result, views=2, steps=2)
    assert trimesh.load(files["glb"], force="mesh").faces.shape[0] > 0
    np.testing.assert_array_equal(load_mask(files["mask"]), done.result.amodal_mask)
    rle = json.loads(Path(files["rle"]).read_text())["segmentation"]
    np.testing.assert_array_equal(decode_segmentation(rle, 96, 96), done.result.amodal_mask)
    assert Path(files["views"]).suffix == ".zip"


def test_clicks_become_a_visible_mask_with_sam(photo_and_mask, tmp_path):
    from tiny_models import make_tiny_sam

    model, processor = make_tiny_sam()
    model.save_pretrained(tmp_path / "sam")
    processor.save_pretrained(tmp_path / "sam")
    models = callbacks.AppModels(sam_model=str(tmp_path / "sam"))
    mask, score = callbacks.mask_from_clicks(models, photo_and_mask[0], [(40.0, 50.0, 1), (10.0, 10.0, 0)])
    assert mask.shape == (96, 96) and mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 255}
    assert isinstance(score, float)
    with pytest.raises(InputError, match="click the object"):
        callbacks.mask_from_clicks(models, photo_and_mask[0], [(10.0, 10.0, 0)])
    missing = callbacks.AppModels(sam_model=str(tmp_path / "no_sam"))
    with pytest.raises(InputError, match="draw or upload the visible mask"):
        callbacks.mask_from_clicks(missing, photo_and_mask[0], [(40.0, 50.0, 1)])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """The app as `p2g3d app` serves it (embedded models, the defaults), on a free local port."""
    from p2g3d.jobs.app import AppJob, serve

    job = AppJob(port=free_port(), max_upload_mb=2)
    app = serve(job, block=False)
    yield f"http://127.0.0.1:{job.port}/"
    app.close()


@requires_3d
def test_the_complete_endpoint_serves_bad_uploads_with_a_message_and_keeps_serving(served, photo_and_mask, tmp_path):
    from gradio_client import Client, handle_file

    photo, mask = photo_and_mask
    client = Client(served, verbose=False)
    (tmp_path / "notes.txt").write_text("not an image")
    save_png(tmp_path / "small.png", np.ones((10, 10), bool))
    for bad_photo, bad_mask, message in (
        (tmp_path / "notes.txt", mask, "image"),
        (photo, tmp_path / "small.png", "photo's size"),
    ):
        with pytest.raises(Exception, match=message):
            client.predict(handle_file(str(bad_photo)), handle_file(str(bad_mask)), api_name="/complete")
    whole, amodal, numbers = client.predict(handle_file(str(photo)), handle_file(str(mask)), api_name="/complete")
    import PIL.Image

    assert PIL.Image.open(whole).mode == "RGBA" and PIL.Image.open(amodal).size == (96, 96)
    assert set(numbers) >= {"occluded_fraction", "confidence", "samples"} and numbers["samples"] == 3


def browser_or_skip():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ImportError:
        chromium = None
    if chromium is None:
        if os.environ.get("P2G3D_REQUIRE_BROWSER") == "1":
            pytest.fail("the browser test needs Playwright and Chromium (apt-get install chromium)")
        pytest.skip("no Playwright or no Chromium (apt-get install chromium; pip install playwright)")
    return chromium


@requires_3d
def test_in_a_browser_upload_complete_see_the_result_and_download_the_glb(served, photo_and_mask, tmp_path):
    chromium = browser_or_skip()
    from playwright.sync_api import sync_playwright

    photo, mask = photo_and_mask
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1400}, accept_downloads=True)
        page.goto(served)
        page.locator("#photo input[type=file]").set_input_files(str(photo))
        page.locator("#mask input[type=file]").set_input_files(str(mask))
        page.locator("#photo img").first.wait_for(timeout=20_000)
        page.locator("#mask img").first.wait_for(timeout=20_000)
        page.locator("#complete").click()
        page.locator("#whole img").first.wait_for(timeout=60_000)
        page.locator("#amodal img").first.wait_for(timeout=20_000)
        page.locator("#make3d").click()
        link = page.locator('#downloads a[download="object.glb"]').first
        link.wait_for(timeout=60_000)
        if SCREENSHOT:
            page.screenshot(path=SCREENSHOT, full_page=True)
        with page.expect_download() as download:
            link.click()
        saved = tmp_path / "object.glb"
        download.value.save_as(saved)
        browser.close()
    assert trimesh.load(saved, force="mesh").faces.shape[0] > 0
