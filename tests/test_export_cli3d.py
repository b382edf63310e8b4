"""Mesh export and the 3D command-line tools."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
from conftest import requires_3d

from p2g3d.cli import main
from p2g3d.integrations.base import save_views
from p2g3d.meshes import export_mesh
from p2g3d.scenes import make_scene
from p2g3d.types import MaskedView


@pytest.mark.parametrize("suffix", [".glb", ".obj", ".ply"])
def test_export_keeps_geometry_and_colours(tmp_path, suffix):
    mesh = trimesh.creation.icosphere(subdivisions=2)
    colors = np.random.default_rng(0).integers(0, 256, (len(mesh.vertices), 3)).astype(np.uint8)
    mesh.visual.vertex_colors = np.c_[colors, np.full(len(colors), 255, np.uint8)]
    path = export_mesh(mesh, tmp_path / f"sphere{suffix}")
    loaded = trimesh.load(path, force="mesh", process=False)
    np.testing.assert_allclose(loaded.vertices, mesh.vertices, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(loaded.visual.vertex_colors)[:, :3], colors)
    assert [p.name for p in tmp_path.iterdir()] == [f"sphere{suffix}"]  # atomic: no temporary file left


@requires_3d
def test_export_errors(tmp_path):
    with pytest.raises(ValueError, match="unsupported mesh format"):
        export_mesh(trimesh.creation.box(), tmp_path / "box.stl")
    with pytest.raises(TypeError):
        export_mesh(b"not a mesh object", tmp_path / "x.ply")


@requires_3d
def test_cli_reconstruct_and_evaluate(tmp_path, capsys):
    scene = make_scene(4, num_views=6, image_size=96)
    save_views([MaskedView(v.image, v.amodal_mask, v.camera) for v in scene.views], tmp_path / "views")
    export_mesh(scene.target, tmp_path / "gt.ply")
    assert main(["reconstruct", str(tmp_path / "views"), "-o", str(tmp_path / "mesh.glb"), "--resolution", "48"]) == 0
    mesh = trimesh.load(tmp_path / "mesh.glb", force="mesh")
    assert mesh.visual.kind == "vertex" and len(mesh.faces) > 100
    capsys.readouterr()
    code = main(
        [
            "evaluate",
            str(tmp_path / "mesh.glb"),
            str(tmp_path / "gt.ply"),
            "--points",
            "5000",
            "-o",
            str(tmp_path / "m.json"),
        ]
    )
    printed = json.loads(capsys.readouterr().out)
    assert (
        code == 0 and printed["protocol"] == "syncdreamer" and printed["chamfer"] < 0.05 and printed["volume_iou"] > 0.6
    )
    assert json.loads((tmp_path / "m.json").read_text())["chamfer"] == printed["chamfer"]


def test_cli_reconstruct_errors(tmp_path, capsys):
    assert main(["reconstruct", str(tmp_path), "-o", str(tmp_path / "mesh.glb")]) == 2
    assert "cameras.json" in capsys.readouterr().err
    assert main(["reconstruct", str(tmp_path), "-o", str(tmp_path / "mesh.stl")]) == 2
    assert "output must end" in capsys.readouterr().err
