"""Image-to-3D: framing and cameras, silhouette matching, the registry's image-to-3D kind, the zero123 and shap-e
backends (tiny models built from configs; the shap-e decoder with real marching-cubes tables), the command, the
single-view protocol and its metric protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from conftest import requires_3d

from p2g3d.cameras import ZERO123_FOV_DEG, intrinsics_from_fov, orbit_camera
from p2g3d.framing import frame_on_white
from p2g3d.integrations.image_to_3d import ImageTo3D, ImageTo3DResult, fit_radius, match_silhouette
from p2g3d.integrations.registry import IMAGE_TO_3D, available_backends, create_backend, register_backend
from p2g3d.novel_views import input_camera


def _object(height=50, width=90):
    """A source image with an off-centre coloured ellipse (its mask) on grey."""
    rows, cols = np.mgrid[:height, :width]
    mask = ((rows - 30) / 14.0) ** 2 + ((cols - 60) / 24.0) ** 2 <= 1
    image = np.full((height, width, 3), 120, np.uint8)
    image[mask] = (200, 40, 40)
    return image, mask


def _dilate(mask, pixels):
    from scipy import ndimage

    return ndimage.binary_dilation(mask, iterations=pixels)


def test_framing_maps_source_pixels_and_the_camera_back_to_the_source():
    image, mask = _object()
    framed, framed_mask, framing = frame_on_white((image, mask), 64)
    rows, cols = np.nonzero(framed_mask)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 == round(64 * 200 / 256)
    assert (framed.min(-1)[~_dilate(framed_mask, 2)] > 250).all()  # on white: the gray rule sees no object there
    src_rows, src_cols = np.nonzero(mask)
    corner = framing.matrix @ np.array([src_cols.min(), src_rows.min(), 1.0])
    assert corner[:2] == pytest.approx([cols.min(), rows.min()], abs=1.0)
    camera = input_camera(64, 20.0)
    source_camera = framing.camera_in_source(camera)
    assert (source_camera.width, source_camera.height) == (90, 50)
    points = np.random.default_rng(0).uniform(-0.4, 0.4, (50, 3))
    framed_uv, _ = camera.project(points)
    source_uv, _ = source_camera.project(points)
    mapped = (framing.matrix @ np.c_[source_uv, np.ones(len(points))].T).T[:, :2]
    np.testing.assert_allclose(mapped, framed_uv, atol=1e-9)
    with pytest.raises(ValueError, match="empty"):
        frame_on_white((image, np.zeros_like(mask)), 64)


@requires_3d
def test_silhouette_matching_finds_a_camera_that_explains_the_view():
    from p2g3d.render import render
    from p2g3d.scenes import make_target

    mesh = make_target(np.random.default_rng(4), "chair", resolution=40)
    K = intrinsics_from_fov(ZERO123_FOV_DEG, 64, 64)
    truth = orbit_camera(20.0, 75.0, 1.8, K, 64, 64)
    mask = render([mesh], truth).mask(0)
    match = match_silhouette(mesh, mask)
    elevations, azimuths = (-10.0, 0.0, 10.0, 20.0, 30.0, 45.0), tuple(range(0, 360, 15))
    assert match.scores[elevations.index(20.0), azimuths.index(75)] > 0.8  # the true view scores high ...
    assert match.iou >= 0.8 and match.scores.min() < match.iou - 0.2  # ... and the views differ
    fitted = fit_radius(mesh, orbit_camera(match.elevation, match.azimuth, 3.0, K, 64, 64), mask)
    rows, cols = np.nonzero(render([mesh], fitted).mask(0))
    true_rows, true_cols = np.nonzero(mask)
    assert max(np.ptp(rows), np.ptp(cols)) == pytest.approx(max(np.ptp(true_rows), np.ptp(true_cols)), abs=2)


def test_the_registry_has_an_image_to_3d_kind_that_third_parties_extend():
    assert {"zero123", "shap-e"} <= set(available_backends(IMAGE_TO_3D))
    assert "zero123" not in available_backends()  # the reconstruction kind is separate

    class Echo:
        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def generate(self, source, *, seed=0, show_progress=True):
            raise NotImplementedError

    register_backend("echo-image-to-3d", Echo, kind=IMAGE_TO_3D)
    backend = create_backend("echo-image-to-3d", IMAGE_TO_3D, scale=2.0)
    assert isinstance(backend, ImageTo3D) and backend.scale == 2.0
    register_backend("no-generate", lambda: object(), kind=IMAGE_TO_3D)
    with pytest.raises(TypeError, match="generate"):
        create_backend("no-generate", IMAGE_TO_3D)
    with pytest.raises(ValueError, match="kind"):
        available_backends("p2g3d.other")
    with pytest.raises(ValueError, match="does not take"):
        create_backend("zero123", IMAGE_TO_3D, grid_size=16)


@requires_3d
def test_zero123_backend_expresses_the_mesh_against_the_source_camera(tmp_path):
    """With a reconstructor that carves the framed input alone (twice), every mesh vertex must project into the
    object's mask in the SOURCE image through the returned camera: the framing and camera are consistent."""
    from tiny_models import make_tiny_zero123_pipeline

    from p2g3d.integrations.carving import VisualHullReconstructor

    make_tiny_zero123_pipeline().save_pretrained(tmp_path / "zero123")

    class InputOnly(VisualHullReconstructor):
        def reconstruct(self, views):
            return super().reconstruct([views[0], views[0]])

    register_backend("input-only", InputOnly)
    backend = create_backend(
        "zero123",
        IMAGE_TO_3D,
        model=str(tmp_path / "zero123"),
        reconstructor="input-only",
        num_views=2,
        ring_elevations=(0.0,),
        input_elevation=15.0,
        num_inference_steps=2,
        device="cpu",
        reconstructor_options={"resolution": 48, "bounds": ((-0.8,) * 3, (0.8,) * 3)},
    )
    image, mask = _object()
    result = backend.generate((image, mask), seed=0, show_progress=False)
    assert isinstance(result, ImageTo3DResult) and result.backend == "zero123" and len(result.views) == 3
    assert (result.camera.width, result.camera.height) == (90, 50)
    rows, cols, inside = result.camera.pixel_indices(np.asarray(result.mesh.vertices))
    assert inside.all()
    assert _dilate(mask, 3)[rows, cols].all()  # marching-cubes vertices lie up to half a voxel (~2 px) outside
    assert result.mesh.visual.kind == "vertex"
    with pytest.raises(ValueError, match="ring_elevations"):
        create_backend("zero123", IMAGE_TO_3D, model=str(tmp_path / "zero123"), ring_elevations=(95.0,))


@requires_3d
def test_the_shap_e_fixture_tables_mesh_a_sphere():
    from diffusers.pipelines.shap_e.renderer import MeshDecoder
    from tiny_models import marching_cubes_tables

    decoder = MeshDecoder()
    cases, masks = marching_cubes_tables()
    decoder.cases.copy_(cases)
    decoder.masks.copy_(masks)
    axis = torch.linspace(-1, 1, 24)
    x, y, z = torch.meshgrid(axis, axis, axis, indexing="ij")
    out = decoder(0.6 - torch.sqrt(x**2 + y**2 + z**2), torch.tensor([-1.0] * 3), torch.tensor([2.0] * 3))
    mesh = trimesh.Trimesh(out.verts.numpy(), out.faces.numpy())
    assert mesh.is_watertight
    assert np.linalg.norm(mesh.vertices, axis=1) == pytest.approx(0.6, abs=0.01)
    assert abs(mesh.volume) == pytest.approx(4 / 3 * np.pi * 0.6**3, rel=0.03)


@requires_3d
def test_shap_e_backend_gives_a_coloured_mesh_and_a_camera_in_the_source_frame():
    from tiny_models import make_tiny_shap_e_pipeline

    from p2g3d.integrations.shap_e import ShapEImageTo3D, decoded_to_trimesh

    backend = ShapEImageTo3D(pipeline=make_tiny_shap_e_pipeline(), grid_size=20, num_inference_steps=2, device="cpu")
    image, mask = _object()
    result = backend.generate((image, mask), seed=1, show_progress=False)
    again = backend.generate((image, mask), seed=1, show_progress=False)
    assert result.backend == "shap-e" and len(result.mesh.faces) > 0 and result.mesh.visual.kind == "vertex"
    np.testing.assert_array_equal(result.mesh.vertices, again.mesh.vertices)  # seeded
    assert (result.camera.width, result.camera.height) == (90, 50)
    assert float(np.ptp(result.mesh.vertices, axis=0).max()) <= np.sqrt(2) + 1e-6  # unit box, turned about +Z
    _, _, inside = result.camera.pixel_indices(np.asarray(result.mesh.vertices))
    assert inside.mean() > 0.9  # the estimated camera sees the mesh where the object is
    with pytest.raises(ValueError, match="grid_size"):
        ShapEImageTo3D(grid_size=1000)
    empty = type(
        "Decoded", (), {"verts": torch.zeros(0, 3), "faces": torch.zeros(0, 3, dtype=torch.long), "vertex_channels": {}}
    )
    with pytest.raises(ValueError, match="no surface"):
        decoded_to_trimesh(empty)


@requires_3d
def test_the_unit_box_protocol_forgives_size_and_position_but_not_rotation():
    from p2g3d.metrics import evaluate

    truth = trimesh.creation.box((1.0, 0.5, 0.25))
    moved = truth.copy()
    moved.apply_scale(3.0)
    moved.apply_translation((2.0, -1.0, 0.5))
    assert evaluate(moved, truth, "unit-box", num_points=4000)["chamfer"] < 1e-3
    turned = truth.copy()
    turned.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 0, 1)))
    assert evaluate(turned, truth, "unit-box", num_points=4000)["chamfer"] > 0.05
    assert evaluate(turned, truth, "triposr", num_points=4000)["chamfer"] < 1e-2


def test_image_to_3d_command_refuses_bad_input_before_loading_models(tmp_path, capsys, monkeypatch):
    from p2g3d.cli import main
    from p2g3d.integrations import registry
    from p2g3d.io import save_png

    def no_models(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(registry, "create_backend", no_models)
    image, mask = _object()
    save_png(tmp_path / "image.png", image)
    save_png(tmp_path / "small.png", mask[:20])
    (tmp_path / "broken.obj").write_text("not a mesh")
    save_png(tmp_path / "mask.png", mask)
    cases = [
        (["--mask", str(tmp_path / "missing.png")], "missing.png"),
        (["--mask", str(tmp_path / "small.png")], "20x90"),
        (["--mask", str(tmp_path / "mask.png"), "--ground-truth", str(tmp_path / "broken.obj")], "broken.obj"),
    ]
    for extra, expected in cases:
        assert main(["image-to-3d", str(tmp_path / "image.png"), "-o", str(tmp_path / "out"), *extra]) == 2
        error = capsys.readouterr().err.strip()
        assert expected in error and len(error.splitlines()) == 1, error
    assert not (tmp_path / "out").exists()


@requires_3d
def test_embedded_models_turn_an_occluded_synthetic_image_into_a_coloured_mesh(tmp_path, capsys):
    """The whole chain on a fresh CPU machine: `p2g3d image-to-3d` with the embedded pix2gestalt and Zero-1-to-3."""
    import json

    from p2g3d.cli import main
    from p2g3d.io import save_png
    from p2g3d.meshes import as_trimesh
    from p2g3d.scenes import make_scene

    scene = make_scene(3, style="cluttered")
    save_png(tmp_path / "scene.png", scene.views[0].image)
    save_png(tmp_path / "visible.png", scene.views[0].visible_mask)
    scene.target.export(tmp_path / "truth.glb")
    out = tmp_path / "out"
    argv = [
        "image-to-3d",
        str(tmp_path / "scene.png"),
        "--mask",
        str(tmp_path / "visible.png"),
        "-o",
        str(out),
        "--steps",
        "4",
        "--samples",
        "2",
        "--backend-steps",
        "4",
        "--views",
        "4",
        "--input-elevation",
        "25",
        "--ground-truth",
        str(tmp_path / "truth.glb"),
        "--protocol",
        "unit-box",
        "--device",
        "cpu",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "object 0" in printed and "chamfer" in printed
    mesh = as_trimesh(out / "object_00.glb")
    assert len(mesh.faces) > 100 and mesh.visual.kind == "vertex"
    colors = np.asarray(mesh.visual.vertex_colors)[:, :3]
    assert colors.std() > 1.0  # coloured from the views, not one flat grey
    summary = json.loads((out / "summary.json").read_text())
    record = summary["objects"][0]
    assert summary["completed"] and record["backend"] == "zero123" and 0 < record["occluded_fraction"] < 1
    assert record["metrics"]["protocol"] == "unit-box" and record["metrics"]["chamfer"] < 0.2
    assert (out / "object_00_preview.png").is_file()


@requires_3d
def test_the_single_view_protocol_runs_every_method_through_one_backend():
    from p2g3d import AmodalCompleter
    from p2g3d.evaluation.single_view import METHODS, run_single_view_benchmark, single_view_sources
    from p2g3d.scenes import make_scene

    scene = make_scene(1, style="cluttered")
    completer = AmodalCompleter.from_pretrained(num_samples=1, num_inference_steps=3, device="cpu")
    sources = single_view_sources(scene, completer)
    assert list(sources) == list(METHODS)
    assert sources["visible"][1].sum() < sources[METHODS[2]].amodal_mask.sum()  # the completion adds the hidden part
    np.testing.assert_array_equal(sources["whole (oracle)"][1], scene.views[0].amodal_mask)
    backend = create_backend(
        "zero123", IMAGE_TO_3D, num_views=4, num_inference_steps=3, input_elevation=25.0, device="cpu"
    )
    rows = run_single_view_benchmark([scene], backend, completer, num_points=2000)
    assert [row.method for row in rows] == list(METHODS)
    assert all(row.metrics["protocol"] == "unit-box" and np.isfinite(row.metrics["chamfer"]) for row in rows)

    class Failing:
        def generate(self, source, *, seed=0, show_progress=True):
            raise ValueError("no surface")

    failed = run_single_view_benchmark([scene], Failing(), completer)  # a failed run is a row, not the end
    assert [row.metrics for row in failed] == [{"error": "no surface"}] * len(METHODS)


@requires_3d
def test_carving_with_min_agreement_outvotes_a_view_that_disagrees():
    from p2g3d.integrations.carving import VisualHullReconstructor
    from p2g3d.render import render
    from p2g3d.types import MaskedView

    sphere = trimesh.creation.icosphere(3, radius=0.4)
    K = intrinsics_from_fov(40.0, 48, 48)
    views = [
        MaskedView(render([sphere], c).rgb, render([sphere], c).mask(0), c)
        for c in (orbit_camera(0.0, 0.0, 2.0, K, 48, 48), orbit_camera(0.0, 90.0, 2.0, K, 48, 48))
    ]
    wrong = np.zeros((48, 48), bool)
    wrong[:4, :4] = True  # a generated view that shows something else
    bad = MaskedView(views[0].image, wrong, orbit_camera(60.0, 45.0, 2.0, K, 48, 48))
    strict, voting = VisualHullReconstructor(resolution=32), VisualHullReconstructor(resolution=32, min_agreement=0.6)
    with pytest.raises(ValueError, match="carve the whole volume away"):
        strict.reconstruct([*views, bad])
    two_views, outvoted = strict.occupancy(views), voting.occupancy([*views, bad])
    assert (outvoted | two_views).sum() == outvoted.sum()  # everything both good views hold survives
    assert outvoted.sum() - two_views.sum() < 0.01 * two_views.sum()
    lonely = VisualHullReconstructor(resolution=32, min_agreement=0.9).occupancy([*views, bad])
    np.testing.assert_array_equal(lonely, outvoted)  # nobody reaches 90%: the voxels most views agree on are kept
    with pytest.raises(ValueError, match="min_agreement"):
        VisualHullReconstructor(min_agreement=0.0)
