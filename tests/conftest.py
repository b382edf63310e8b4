"""Shared fixtures: the official reference bundles and tiny pipelines built from configs."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
import torch

from p2g3d.convert import convert_checkpoint

PROJECT_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = Path(os.environ.get("P2G3D_REFERENCE_DIR", PROJECT_ROOT.parent / "shared" / "reference"))
P2G_REFERENCE = REFERENCE_DIR / "pix2gestalt_tiny"
Z123_REFERENCE = REFERENCE_DIR / "zero123_tiny"


requires_3d = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("open3d", "skimage")),
    reason="the 3D extra (open3d, scikit-image) is not installed",
)


def require_extra(module: str, reason: str):
    """Import an optional dependency; skip without it, unless P2G3D_REQUIRE_EXTRAS=1 (CI's extras environment)
    turns the absence into a failure."""
    if os.environ.get("P2G3D_REQUIRE_EXTRAS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=reason)


@pytest.fixture(autouse=True)
def _deterministic_cpu():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def p2g_reference() -> Path:
    if not (P2G_REFERENCE / "pix2gestalt_tiny.ckpt").is_file():
        pytest.skip(f"reference bundle not found at {P2G_REFERENCE} (set P2G3D_REFERENCE_DIR)")
    return P2G_REFERENCE


def _convert_reference(bundle: Path, name: str, tmp_path_factory) -> Path:
    """A reference bundle's official tiny checkpoint converted by our converter (fp32)."""
    output = tmp_path_factory.mktemp("converted") / name
    return convert_checkpoint(bundle / f"{name}.ckpt", output, config_path=bundle / f"{name}.yaml")


@pytest.fixture(scope="session")
def converted_tiny(p2g_reference, tmp_path_factory) -> Path:
    return _convert_reference(p2g_reference, "pix2gestalt_tiny", tmp_path_factory)


@pytest.fixture(scope="session")
def z123_reference() -> Path:
    if not (Z123_REFERENCE / "zero123_tiny.ckpt").is_file():
        pytest.skip(f"reference bundle not found at {Z123_REFERENCE} (set P2G3D_REFERENCE_DIR)")
    return Z123_REFERENCE


@pytest.fixture(scope="session")
def converted_z123(z123_reference, tmp_path_factory) -> Path:
    return _convert_reference(z123_reference, "zero123_tiny", tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_pipeline():
    from tiny_models import make_tiny_pipeline

    return make_tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_pipeline, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny") / "model"
    tiny_pipeline.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_z123_dir(tmp_path_factory) -> Path:
    """A tiny Zero-1-to-3 built from configs, saved as a model folder (no reference bundle needed)."""
    from tiny_models import make_tiny_zero123_pipeline

    folder = tmp_path_factory.mktemp("tiny_z123") / "model"
    make_tiny_zero123_pipeline().save_pretrained(folder)
    return folder
