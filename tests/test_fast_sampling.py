"""Fast sampling: guidance on a limited interval, sampling defaults saved with a model, latent consistency
distillation (the loss's parts, a resumable run on a tiny model) and the embedded few-step student."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import requires_3d
from diffusers import LCMScheduler
from safetensors.torch import load_file

from p2g3d import AmodalCompleter, Pix2GestaltPipeline
from p2g3d.cli import main
from p2g3d.errors import InputError
from p2g3d.loading import default_fast_model_path, resolve_model_name, validate_model_folder
from p2g3d.settings import CompletionSettings
from p2g3d.training.distill import (
    boundary_scalings,
    consistency_function,
    distill,
    guided_ddim_step,
    student_scheduler,
)
from p2g3d.training.distill_config import DistillConfig


class RowCounter:
    """Rows the UNet evaluates, call by call."""

    def __init__(self, unet):
        self.calls = []
        self.handle = unet.register_forward_hook(lambda module, inputs, output: self.calls.append(inputs[0].shape[0]))


def _scene(size=32):
    image = np.full((size, size, 3), 255, np.uint8)
    image[8:24, 8:24] = (200, 40, 40)
    image[8:24, 16:24] = (40, 40, 200)  # the occluder
    mask = np.zeros((size, size), bool)
    mask[8:24, 8:16] = True
    return image, mask


def test_guidance_on_a_limited_interval_doubles_only_its_steps(tiny_pipeline):
    completer = AmodalCompleter(tiny_pipeline, num_samples=1, num_inference_steps=10, guidance_interval=(0.5, 1.0))
    counter = RowCounter(tiny_pipeline.unet)
    completer(*_scene(), seed=0, show_progress=False)
    counter.handle.remove()
    # official timesteps 801, 701, ..., 1: the four with t / 1000 >= 0.5 are guided (2 rows), the five others not
    assert counter.calls == [2, 2, 2, 2, 1, 1, 1, 1, 1]
    everywhere = AmodalCompleter(tiny_pipeline, num_samples=1, num_inference_steps=10, guidance_interval=(0.0, 1.0))
    plain = AmodalCompleter(tiny_pipeline, num_samples=1, num_inference_steps=10)
    a = everywhere(*_scene(), seed=3, show_progress=False)[0].sample_images
    b = plain(*_scene(), seed=3, show_progress=False)[0].sample_images
    np.testing.assert_array_equal(a, b)  # the whole interval is the official sampler


@pytest.mark.parametrize("interval", [(0.8, 0.2), (-0.1, 0.5), (0.2, 1.5), (0.5,), ("a", 1)])
def test_bad_guidance_intervals_are_refused(interval):
    with pytest.raises(InputError, match="guidance_interval"):
        CompletionSettings(guidance_interval=interval)


def test_the_guidance_interval_option_on_the_command_line(tmp_path, capsys):
    assert main(["complete", "x.png", "--mask", "m.png", "-o", str(tmp_path), "--guidance-interval", "0.9", "0.1"]) == 2
    assert "guidance_interval must be" in capsys.readouterr().err


def test_sampling_defaults_are_saved_with_a_model_and_used_when_none_are_given(tiny_pipeline, tmp_path):
    student = Pix2GestaltPipeline(
        **tiny_pipeline.components,
        sampling_defaults={"num_inference_steps": 3, "guidance_scale": 1.0},
    )
    student.scheduler = student_scheduler(tiny_pipeline.scheduler.config, 50)
    student.save_pretrained(tmp_path / "student")
    validate_model_folder(tmp_path / "student", "Pix2GestaltPipeline")
    loaded = AmodalCompleter.from_pretrained(tmp_path / "student", num_samples=2)
    assert isinstance(loaded.pipeline.scheduler, LCMScheduler)
    assert (loaded.settings.num_inference_steps, loaded.settings.guidance_scale) == (3, 1.0)
    counter = RowCounter(loaded.pipeline.unet)
    loaded(*_scene(), seed=0, show_progress=False)
    assert counter.calls == [2, 2, 2]  # 3 steps, one conditional row per sample
    explicit = AmodalCompleter.from_pretrained(tmp_path / "student", num_inference_steps=5, guidance_scale=2.0)
    assert (explicit.settings.num_inference_steps, explicit.settings.guidance_scale) == (5, 2.0)
    swapped = AmodalCompleter(loaded.pipeline, scheduler="official-ddim")
    assert swapped.pipeline.sampling_defaults == {"num_inference_steps": 3, "guidance_scale": 1.0}
    teacher = AmodalCompleter(tiny_pipeline)
    assert (teacher.settings.num_inference_steps, teacher.settings.guidance_scale) == (50, 2.0)


def test_boundary_scalings_are_the_lcm_schedulers():
    scheduler = LCMScheduler()
    for t in (0, 19, 259, 999):
        c_skip, c_out = boundary_scalings(torch.tensor([t]))
        expected = scheduler.get_scalings_for_boundary_condition_discrete(t)
        assert float(c_skip) == pytest.approx(float(expected[0]), rel=1e-5)
        assert float(c_out) == pytest.approx(float(expected[1]), rel=1e-5, abs=1e-9)
    c_skip, c_out = boundary_scalings(torch.tensor([0]))
    assert float(c_skip) == 1.0 and float(c_out) == 0.0  # f is the identity at t = 0


def test_the_teacher_step_is_a_guided_ddim_step(tiny_pipeline):
    """Against the pipeline's own guided eps and diffusers' DDIM step (eta 0) from 519 to 499."""
    from diffusers import DDIMScheduler

    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(2, 4, 4, 4, generator=generator)
    context = torch.randn(2, 1, 16, generator=generator)
    concat = torch.randn(2, 8, 4, 4, generator=generator)
    alphas = tiny_pipeline.scheduler.alphas_cumprod
    start, end = torch.tensor([519, 519]), torch.tensor([499, 499])
    ours = guided_ddim_step(tiny_pipeline.unet, latents, start, end, context, concat, 2.0, alphas)
    eps = tiny_pipeline.predict_noise(latents, 519, context, concat, 2.0)
    ddim = DDIMScheduler.from_config(tiny_pipeline.scheduler.config, timestep_spacing="leading", steps_offset=19)
    ddim.set_timesteps(50)
    assert 519 in ddim.timesteps.tolist()
    reference = ddim.step(eps, 519, latents, eta=0.0).prev_sample
    torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-5)
    # at t = 0 the consistency function returns its input
    same = consistency_function(tiny_pipeline.unet, latents, torch.tensor([0, 0]), context, concat, alphas)
    torch.testing.assert_close(same, latents)


@pytest.fixture(scope="module")
def distill_data(tmp_path_factory):
    from p2g3d.datasets import write_dataset
    from p2g3d.training.composite import composite_samples

    return write_dataset(composite_samples(seed=0, count=8, image_size=32), tmp_path_factory.mktemp("d") / "data")


def _config(data, output, teacher, **overrides) -> DistillConfig:
    settings = dict(
        data=data, output_dir=output, teacher=str(teacher), steps=4, batch_size=4, warmup_steps=1,
        checkpoint_every=2, log_every=1, solver_steps=10, student_steps=3,
    )  # fmt: skip
    return DistillConfig(**{**settings, **overrides})


@requires_3d
def test_distillation_resumes_exactly_and_saves_a_student(distill_data, tiny_model_dir, tmp_path):
    straight = distill(_config(distill_data, tmp_path / "straight", tiny_model_dir))
    distill(_config(distill_data, tmp_path / "resumed", tiny_model_dir, steps=2))
    resumed = distill(_config(distill_data, tmp_path / "resumed", tiny_model_dir))
    a, b = Pix2GestaltPipeline.from_pretrained(straight), Pix2GestaltPipeline.from_pretrained(resumed)
    assert all(torch.equal(x, y) for x, y in zip(a.unet.parameters(), b.unet.parameters()))
    teacher = Pix2GestaltPipeline.from_pretrained(tiny_model_dir)
    assert not all(torch.equal(x, y) for x, y in zip(a.unet.parameters(), teacher.unet.parameters()))
    for name in ("vae", "image_encoder", "cc_projection"):  # frozen and shared
        assert all(
            torch.equal(x, y) for x, y in zip(getattr(a, name).parameters(), getattr(teacher, name).parameters())
        )
    assert isinstance(a.scheduler, LCMScheduler) and a.scheduler.config.original_inference_steps == 10
    assert a.sampling_defaults == {"num_inference_steps": 3, "guidance_scale": 1.0}
    log = [json.loads(line) for line in (tmp_path / "straight" / "train_log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1, 2, 3, 4] and all(np.isfinite(entry["loss"]) for entry in log)
    with pytest.raises(InputError, match="already a distilled student"):
        distill(_config(distill_data, tmp_path / "again", straight))
    with pytest.raises(InputError, match="other settings"):
        distill(_config(distill_data, tmp_path / "resumed", tiny_model_dir, guidance_scale=3.0, steps=6))


@requires_3d
def test_a_student_can_start_from_another_and_learn_from_data_too(distill_data, tiny_model_dir, tmp_path, monkeypatch):
    from p2g3d.training import distill as distill_module

    first = distill(_config(distill_data, tmp_path / "first", tiny_model_dir, steps=2))
    teacher = Pix2GestaltPipeline.from_pretrained(tiny_model_dir)
    start = distill_module._initial_student(teacher.unet, str(first))
    saved = Pix2GestaltPipeline.from_pretrained(first).unet
    assert all(torch.equal(x, y) for x, y in zip(start.parameters(), saved.parameters()))
    assert not any(p.requires_grad for p in start.parameters())
    with pytest.raises(InputError, match="differs from the teacher's"):
        distill_module._initial_student(teacher.unet, "embedded-fast")
    goals = []  # the data term compares the student's x0 with the training target, weighted
    original = distill_module.consistency_loss
    monkeypatch.setattr(
        distill_module, "consistency_loss", lambda a, b, *rest: goals.append(b) or original(a, b, *rest)
    )
    distill(
        _config(distill_data, tmp_path / "second", tiny_model_dir, steps=1, init_student=str(first), data_weight=0.5)
    )
    assert len(goals) == 2  # consistency, then data
    encoded = load_file(str(tmp_path / "second" / "encoded_dataset.safetensors"))
    targets = teacher.normalize_latents(encoded["mean"])
    assert any(torch.allclose(goals[1][0], row) for row in targets)


@requires_3d
def test_the_distill_command(distill_data, tiny_model_dir, tmp_path, capsys):
    output = tmp_path / "run"
    arguments = ["distill", "--data", str(distill_data), "-o", str(output), "--teacher", str(tiny_model_dir)]
    assert main([*arguments, "--steps", "2", "--batch-size", "2", "--solver-steps", "10"]) == 0
    assert (output / "model" / "model_index.json").is_file()
    assert main([*arguments, "--steps", "0"]) == 2
    assert "steps must be" in capsys.readouterr().err
    assert main(["distill", "--data", str(tmp_path / "nowhere"), "-o", str(output)]) == 2


def test_embedded_fast_is_a_three_step_student_without_guidance():
    assert resolve_model_name("embedded-fast") == default_fast_model_path()
    validate_model_folder(default_fast_model_path(), "Pix2GestaltPipeline")
    completer = AmodalCompleter.from_pretrained("embedded-fast", num_samples=3)
    assert (completer.settings.num_inference_steps, completer.settings.guidance_scale) == (3, 1.0)
    counter = RowCounter(completer.pipeline.unet)
    completer(*_scene(64), seed=0, show_progress=False)
    assert counter.calls == [3, 3, 3]  # 3 UNet calls (its saved default), no unconditional rows
    counter.calls.clear()
    AmodalCompleter(completer.pipeline, num_samples=3, num_inference_steps=1)(*_scene(64), seed=0, show_progress=False)
    assert counter.calls == [3]  # one step is a student's choice; the official DDIM refuses it
    with pytest.raises(InputError, match="1 step would run no UNet call"):
        AmodalCompleter.from_pretrained("embedded", num_inference_steps=1)


@pytest.fixture
def used_settings(monkeypatch):
    """The completion settings every completer call of a command ran with."""
    used = []
    original = AmodalCompleter._sample

    def spy(self, prepared, batch, seeds):
        used.append((self.settings.num_inference_steps, self.settings.guidance_scale))
        return original(self, prepared, batch, seeds)

    monkeypatch.setattr(AmodalCompleter, "_sample", spy)
    return used


def _write_scene(folder, name="scene"):
    import PIL.Image

    image, mask = _scene(64)
    folder.mkdir(parents=True, exist_ok=True)
    PIL.Image.fromarray(image).save(folder / f"{name}.png")
    PIL.Image.fromarray(mask.astype(np.uint8) * 255).save(folder / f"{name}_mask0.png")
    return folder / f"{name}.png", folder / f"{name}_mask0.png"


def test_complete_and_batch_take_embedded_fast_with_its_own_steps(tmp_path, used_settings):
    image, mask = _write_scene(tmp_path / "in")
    common = ["--model", "embedded-fast", "--samples", "2", "--device", "cpu"]
    assert main(["complete", str(image), "--mask", str(mask), "-o", str(tmp_path / "one"), *common]) == 0
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "many"), *common]) == 0
    assert used_settings and set(used_settings) == {(3, 1.0)}
    used_settings.clear()
    assert (
        main(["complete", str(image), "--mask", str(mask), "-o", str(tmp_path / "two"), *common, "--steps", "2"]) == 0
    )
    assert set(used_settings) == {(2, 1.0)}


@requires_3d
def test_eval_amodal_and_image_to_3d_take_embedded_fast(tmp_path, used_settings, capsys):
    from p2g3d.training.composite import write_synthetic_dataset

    folder = write_synthetic_dataset(tmp_path / "ood", count=2, seed=4321, image_size=64, factors="held-out")
    assert main(["eval-amodal", "--data", str(folder), "--model", "embedded-fast", "--samples", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["objects"] == 2
    image, mask = _write_scene(tmp_path / "in")
    argv = ["image-to-3d", str(image), "--mask", str(mask), "-o", str(tmp_path / "mesh"), "--model", "embedded-fast"]
    assert main([*argv, "--samples", "2", "--views", "4", "--backend-steps", "2", "--device", "cpu"]) == 0
    assert set(used_settings) == {(3, 1.0)}
    summary = json.loads((tmp_path / "mesh" / "summary.json").read_text())
    assert summary["completed"]
