"""Throughput of amodal completion at full size: the naive path and the optimised paths side by side, in one run.

    python benchmarks/throughput.py [--device cuda] [--steps 50] [--batch-sizes 1 8 32] [--samples 16] [--compile MODE]
    python benchmarks/throughput.py --device cpu --steps 3 --batch-sizes 1 4 --samples 4      # a CPU in minutes

The model is the full-size pix2gestalt architecture (12-channel SD-1 UNet, SD VAE, CLIP ViT-L/14) with random
weights, built from the packaged official config: nothing is downloaded, and speed does not depend on the weights.
Rows (images = completed samples; one scene with one object unless said otherwise):

* ``naive``: the official way, one pipeline call per sample, re-encoding the scene (CLIP + VAE) every time;
* ``encode once, batch B``: :class:`~p2g3d.completer.AmodalCompleter`: the scene and mask encoded once, B
  samples per UNet batch;
* ``latency, 1 sample`` and ``latency, N-sample voted mask``: the completer end to end for one image;
* with ``--compile MODE``: the same completer rows again with the UNet compiled (:func:`p2g3d.acceleration.
  compile_unet`, checked against eager first; ``reduce-overhead`` adds CUDA graphs), each shape warmed up untimed.

Prints a markdown table with images/s, seconds and peak memory (CUDA: allocated by torch; CPU: the process's
peak resident size, which only grows).
"""

from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import (
    create_unet_diffusers_config_from_ldm,
    create_vae_diffusers_config_from_ldm,
)
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from p2g3d import AmodalCompleter, CCProjection, Pix2GestaltPipeline
from p2g3d.convert import default_config
from p2g3d.loading import quiet_loading
from p2g3d.pipelines.official_ddim import official_ddim_scheduler
from p2g3d.runtime import resolve_device, resolve_dtype

SIZE = 256
CLIP_VIT_L14 = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "projection_dim": 768,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
}


def full_size_pipeline(device: torch.device, dtype: torch.dtype) -> Pix2GestaltPipeline:
    """The official architecture from the packaged yaml, random weights."""
    config = default_config("pix2gestalt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        unet = UNet2DConditionModel(**create_unet_diffusers_config_from_ldm(config, {}, image_size=SIZE))
        vae = AutoencoderKL(**create_vae_diffusers_config_from_ldm(config, {}, image_size=SIZE))
    clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**CLIP_VIT_L14))
    pipe = Pix2GestaltPipeline(
        vae=vae,
        image_encoder=clip,
        unet=unet,
        cc_projection=CCProjection(768, 768),
        scheduler=official_ddim_scheduler(),
    )
    pipe.set_progress_bar_config(disable=True)
    with quiet_loading():  # diffusers' notes on casting components hold nothing here
        return pipe.to(device, dtype)


def scene() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mask = np.zeros((SIZE, SIZE), bool)
    mask[60:180, 70:200] = True
    return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8), mask


def peak_memory_gib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def timed(device: torch.device, work) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=None, help="default: cuda if available")
    parser.add_argument("--dtype", default=None, help="default: fp16 on cuda, fp32 on cpu")
    parser.add_argument("--steps", type=int, default=50, help="requested DDIM steps (CFG 2.0)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--samples", type=int, default=16, help="samples of the voted-mask latency row")
    parser.add_argument(
        "--compile",
        default=None,
        choices=("default", "reduce-overhead", "max-autotune"),
        help="also measure the completer with a compiled UNet",
    )
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    started = time.perf_counter()
    pipe = full_size_pipeline(device, dtype)
    image, mask = scene()
    total = max(args.batch_sizes)
    print(
        f"full-size pix2gestalt, random weights, {device.type} {str(dtype).removeprefix('torch.')}, {SIZE} px, "
        f"{args.steps} steps, CFG 2.0 (built in {time.perf_counter() - started:.0f} s)\n"
    )
    print("| path | images | seconds | images/s | peak memory (GiB) |\n|---|---:|---:|---:|---:|")

    def row(name: str, images: int, seconds: float) -> None:
        print(
            f"| {name} | {images} | {seconds:.2f} | {images / seconds:.3f} | {peak_memory_gib(device):.2f} |",
            flush=True,
        )

    def naive() -> None:
        for k in range(total):
            pipe(
                image,
                mask,
                num_inference_steps=args.steps,
                generator=torch.Generator().manual_seed(k),
                output_type="np",
            )

    completer = AmodalCompleter(pipe, num_inference_steps=args.steps, num_samples=1)
    completer(image, mask, show_progress=False)  # warm-up (kernels, allocator)
    row("naive: one call per sample, scene re-encoded", total, timed(device, naive))
    completer_rows(pipe, image, mask, args, row, device, prefix="")
    if args.compile:
        from p2g3d.acceleration import compile_unet

        deviation = compile_unet(pipe, args.compile)
        completer_rows(pipe, image, mask, args, row, device, prefix=f"compiled ({args.compile}), ", warm_up=True)
        print(f"\ncompiled UNet: max |compiled - eager| of the predicted noise {deviation:.2e}")


def completer_rows(pipe, image, mask, args, row, device, prefix: str, warm_up: bool = False) -> None:
    """Encode-once batches, single-sample latency and the voted-mask latency (shapes warmed up first if asked)."""
    total = max(args.batch_sizes)
    runs = [(f"encode once, batch {b}", total, total, b) for b in args.batch_sizes]
    runs += [
        ("latency, 1 sample", 1, 1, 1),
        (f"latency, {args.samples}-sample voted mask", args.samples, args.samples, args.samples),
    ]
    for name, images, num_samples, batch_size in runs:
        completer = AmodalCompleter(
            pipe, num_inference_steps=args.steps, num_samples=num_samples, batch_size=batch_size
        )
        if warm_up:
            AmodalCompleter(pipe, num_inference_steps=1, num_samples=batch_size, batch_size=batch_size)(
                image, mask, show_progress=False
            )
        row(prefix + name, images, timed(device, lambda c=completer: c(image, mask, show_progress=False)))


if __name__ == "__main__":
    main()
