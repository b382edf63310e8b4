"""The backend registry (entry points and run-time registrations) and the command line built from the settings."""

from __future__ import annotations

import dataclasses

import pytest

from p2g3d.cli import build_parser, main, settings_from_arguments
from p2g3d.integrations.carving import VisualHullReconstructor
from p2g3d.integrations.registry import available_backends, backend_factory, create_backend, register_backend
from p2g3d.settings import CompletionSettings, NovelViewSettings
from p2g3d.training.trainer import TrainConfig


def test_built_in_backends_come_from_entry_points():
    assert {"carve", "pytorch3d", "nerfstudio"} <= set(available_backends())
    assert backend_factory("carve") is VisualHullReconstructor
    carve = create_backend("carve", resolution=16, bounds=((-1, -1, -1), (1, 1, 1)))
    assert isinstance(carve, VisualHullReconstructor) and carve.resolution == 16


def test_options_a_backend_lacks_are_refused_not_ignored():
    with pytest.raises(ValueError, match="does not take iterations"):
        create_backend("carve", iterations=10)
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        create_backend("nope")


def test_run_time_registration_and_protocol_check():
    class Echo:
        def __init__(self, scale: float = 1.0):
            self.scale = scale

        def reconstruct(self, views):
            return views

    register_backend("echo-test", Echo)
    assert "echo-test" in available_backends()
    assert create_backend("echo-test", scale=2.0).scale == 2.0
    register_backend("not-a-backend", lambda: object())
    with pytest.raises(TypeError, match="no reconstruct"):
        create_backend("not-a-backend")


def test_cli_refuses_backend_options_in_one_line(tmp_path, capsys):
    code = main(
        ["reconstruct", str(tmp_path), "-o", str(tmp_path / "m.glb"), "--backend", "nerfstudio", "--resolution", "9"]
    )
    assert code == 2 and "does not take resolution" in capsys.readouterr().err


@pytest.mark.parametrize(
    "command, settings_class, required",
    [
        ("complete", CompletionSettings, ["img.png", "--mask", "m.png", "-o", "out"]),
        ("views", NovelViewSettings, ["img.png", "--model", "m", "-o", "out"]),
        ("eval-amodal", CompletionSettings, []),
    ],
)
def test_command_line_defaults_are_the_library_defaults(command, settings_class, required):
    args = build_parser([command]).parse_args([command, *required])
    assert settings_from_arguments(settings_class, args) == dataclasses.asdict(settings_class())


def test_train_options_are_the_config_fields():
    args = build_parser(["train"]).parse_args(
        ["train", "--data", "d", "-o", "run", "--lr", "0.5", "--calibrate-latent-scale"]
    )
    config = TrainConfig(**settings_from_arguments(TrainConfig, args))
    defaults = TrainConfig(data="d", output_dir="run", learning_rate=0.5, calibrate_latent_scale=True)
    assert config == defaults


def test_unregister_and_the_deprecated_group(monkeypatch):
    """unregister_backend removes a run-time registration; entry points still in the old group 'p2g3d.backends'
    are found, with a DeprecationWarning."""
    from importlib.metadata import EntryPoint

    from p2g3d.integrations import registry

    register_backend("echo-gone", VisualHullReconstructor)
    registry.unregister_backend("echo-gone")
    assert "echo-gone" not in available_backends()
    with pytest.raises(ValueError, match="no backend 'echo-gone'"):
        registry.unregister_backend("echo-gone")

    old = EntryPoint("old-carve", "p2g3d.integrations.carving:VisualHullReconstructor", "p2g3d.backends")
    real = registry.entry_points
    monkeypatch.setattr(
        registry, "entry_points", lambda group: [old] if group == "p2g3d.backends" else list(real(group=group))
    )
    with pytest.warns(DeprecationWarning, match="p2g3d.backends"):
        assert backend_factory("old-carve") is VisualHullReconstructor
    assert "carve" in available_backends()
