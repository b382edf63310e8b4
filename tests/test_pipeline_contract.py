"""The diffusers call contract, on BOTH pipelines (Pix2GestaltPipeline and Zero123Pipeline), tiny and built from
configs: output types, save/load round trip, scheduler swap, a batch equals its members one by one, the generator
makes runs repeat."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import EulerDiscreteScheduler

from p2g3d import OfficialDDIMScheduler, Pix2GestaltPipeline, Zero123Pipeline


@dataclass
class Family:
    """One pipeline, its class, and a call with fixed conditioning (``batch`` images per call)."""

    name: str
    pipe: object
    pipeline_class: type
    inputs: dict

    def run(self, pipe=None, batch: int = 1, **kwargs):
        settings = dict(num_inference_steps=4, eta=0.0, generator=torch.Generator().manual_seed(0))
        settings.update(kwargs)
        return (pipe or self.pipe)(**self.batched(batch), **settings).images

    def batched(self, batch: int) -> dict:
        if self.name == "pix2gestalt":
            return {**self.inputs, "num_images_per_prompt": batch}
        return {**self.inputs, "polar": [10.0 * k for k in range(batch)], "azimuth": [30.0] * batch, "radius": 0.0}

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        side = self.pipe.default_size // self.pipe.vae_scale_factor
        return (self.pipe.unet.config.out_channels, side, side)


@pytest.fixture(scope="module", params=["pix2gestalt", "zero123"])
def family(request, tiny_pipeline):
    rng = np.random.default_rng(0)
    if request.param == "pix2gestalt":
        size = tiny_pipeline.default_size
        mask = np.zeros((size, size), dtype=bool)
        mask[8:20, 6:18] = True
        image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        return Family("pix2gestalt", tiny_pipeline, Pix2GestaltPipeline, {"image": image, "visible_mask": mask})
    from tiny_models import make_tiny_zero123_pipeline

    pipe = make_tiny_zero123_pipeline()
    pipe.set_progress_bar_config(disable=True)
    size = pipe.default_size
    image = np.full((size, size, 3), 255, np.uint8)
    image[size // 4 : 3 * size // 4, size // 3 : 2 * size // 3] = rng.integers(0, 200, 3, dtype=np.uint8)
    return Family("zero123", pipe, Zero123Pipeline, {"image": image})


def test_output_types(family):
    size = family.pipe.default_size
    pil = family.run()
    np_out = family.run(output_type="np")
    pt = family.run(output_type="pt")
    latent = family.run(output_type="latent")
    assert isinstance(pil[0], PIL.Image.Image) and pil[0].size == (size, size)
    assert np_out.shape == (1, size, size, 3) and pt.shape == (1, 3, size, size)
    assert latent.shape == (1, *family.latent_shape)
    assert 0.0 <= pt.min() and pt.max() <= 1.0
    np.testing.assert_allclose(np_out[0], pt[0].permute(1, 2, 0).numpy())
    np.testing.assert_array_equal(np.asarray(pil[0]), (255.0 * np_out[0]).astype(np.uint8))  # truncation
    torch.testing.assert_close(family.pipe.decode_latents(latent), pt)


def test_save_and_load_roundtrip(family, tmp_path):
    family.pipe.save_pretrained(tmp_path / family.name)
    loaded = family.pipeline_class.from_pretrained(tmp_path / family.name)
    loaded.set_progress_bar_config(disable=True)
    assert isinstance(loaded.scheduler, OfficialDDIMScheduler)
    torch.testing.assert_close(family.run(loaded, output_type="latent"), family.run(output_type="latent"))


def test_other_schedulers_swap_in(family):
    original = family.pipe.scheduler
    try:
        family.pipe.scheduler = EulerDiscreteScheduler.from_config(original.config)
        seen = []
        out = family.run(output_type="pt", callback_on_step_end=lambda p, i, t, kw: seen.append(float(t)) or kw)
        assert torch.isfinite(out).all() and len(seen) == 4
    finally:
        family.pipe.scheduler = original
    assert isinstance(family.pipe.scheduler, OfficialDDIMScheduler)


def test_a_batch_equals_its_members_one_by_one(family):
    x_T = torch.randn(3, *family.latent_shape, generator=torch.Generator().manual_seed(5))
    batched = family.run(batch=3, latents=x_T, output_type="latent")
    singles = []
    for k in range(3):
        inputs = family.batched(3)
        if family.name == "zero123":
            inputs["polar"] = inputs["polar"][k]
            inputs["azimuth"] = inputs["azimuth"][k]
        else:
            inputs["num_images_per_prompt"] = 1
        settings = dict(num_inference_steps=4, eta=0.0, generator=torch.Generator().manual_seed(0))
        singles.append(family.pipe(**inputs, **settings, latents=x_T[k : k + 1], output_type="latent").images)
    torch.testing.assert_close(batched, torch.cat(singles), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(batched[0], batched[1])
    with pytest.raises(ValueError, match="latents must have shape"):
        family.run(latents=x_T, output_type="latent")


def test_the_generator_makes_runs_repeat(family):
    first = family.run(eta=1.0, output_type="latent")
    again = family.run(eta=1.0, output_type="latent")
    other = family.run(eta=1.0, output_type="latent", generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first, other)
