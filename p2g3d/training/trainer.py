"""Training and fine-tuning through ``accelerate``: the trainer drives a per-family recipe (:data:`RECIPES`:
``Pix2GestaltPipeline`` with the paper's recipe, :mod:`.gestalt`; ``Zero123Pipeline`` with its own,
:mod:`.novel_view`, on multi-view data, :mod:`.multiview`). A recipe says which pipeline, dataset and encoding a
family uses and what its loss is; the trainer holds what they share (optimiser, schedule, EMA, checkpoints,
resuming, saving) and never branches on the family. Recipes never import the trainer.

Recipe (paper section 4 and the official training code):

* eps-prediction MSE; target latent = ``VAE(whole).sample() * scaling_factor``; concat latents = posterior means
  (unscaled) of the occluded scene and the visible mask, as at inference;
* per-sample classifier-free-guidance dropout with ``p = 0.05``: ``r < p`` drops the CLIP embedding only,
  ``p <= r < 2p`` drops both, ``2p <= r < 3p`` drops the concat latents only. As in the official training code the
  CLIP embedding is zeroed BEFORE ``cc_projection`` (inference zeroes the context after it);
* AdamW, ``cc_projection`` at 10x the UNet's learning rate, linear warm-up from 1e-6 over 100 steps, then constant;
* EMA of the UNet weights (decay 0.9999 with the ``(1 + n) / (10 + n)`` warm-up of the official ``LitEma``); the
  saved model holds the EMA weights, as the official checkpoint's inference path uses;
* VAE and CLIP frozen.

For a small autoencoder trained from scratch, ``calibrate_latent_scale`` centres the target latents on the latent of
the empty white canvas and scales them to unit standard deviation (:func:`calibrate_latents`; stored as the VAE
config's ``latents_mean`` / ``latents_std`` / ``scaling_factor``), and ``target_latent="mode"`` trains on posterior
means instead of samples.

Every step draws its batch, noise, timesteps and dropout from generators seeded by ``(seed, step)``, so a run
resumed from a checkpoint continues exactly as an uninterrupted one. Mixed precision and several GPUs come from
``accelerate`` (``accelerate launch -m p2g3d.cli train ...``).

``init="scratch"`` builds a small model from configs (:func:`~.models.scratch_components`). ``stage="vae"`` trains the
autoencoder of a model built from scratch (L1 reconstruction + 1e-6 KL, as LDM) before
the diffusion stage, since a small from-scratch model has no pretrained VAE.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..io import publish_folder, save_json, write_atomic
from .config import TrainConfig
from .gestalt import Pix2GestaltRecipe
from .losses import autoencoder_loss
from .models import identity_projection, scratch_components, take_autoencoder
from .novel_view import Zero123Recipe

logger = logging.getLogger(__name__)

WARMUP_START = 1e-6


RECIPES = {recipe.name: recipe for recipe in (Pix2GestaltRecipe(), Zero123Recipe())}


def load_start(config: TrainConfig):
    """The model a run starts from: ``"scratch"`` or a model folder (converted official weights, earlier runs), in
    float32 whatever dtype the folder stores (mixed precision is accelerate's job); transformers would otherwise
    keep a stored fp16 CLIP tower in fp16. With ``config.autoencoder``, that folder's VAE and CLIP tower are used."""
    recipe = RECIPES[config.pipeline]
    pipeline_class = recipe.pipeline_class
    if config.init == "scratch":  # identity cc_projection on CLIP (zero on the pose), as both papers initialise it
        components = scratch_components(config.image_size, config.seed, in_channels=recipe.in_channels)
        pipe = pipeline_class(**components, cc_projection=identity_projection(64, 64, recipe.extra_features))
    else:
        from ..loading import quiet_loading, validate_model_folder

        validate_model_folder(config.init, pipeline_class.__name__)
        with quiet_loading():
            pipe = pipeline_class.from_pretrained(config.init, dtype=torch.float32)
    if config.autoencoder is not None:
        take_autoencoder(pipe, config.autoencoder)
    return pipe


def step_generators(seed: int, step: int, process: int = 0) -> tuple[np.random.Generator, torch.Generator]:
    """The numpy and torch generators of one step (of one process, under ``accelerate launch``): a resumed run draws
    exactly what an uninterrupted run drew, and each process draws its own batch."""
    rng = np.random.default_rng([seed, step, process] if process else [seed, step])
    return rng, torch.Generator().manual_seed(int(rng.integers(2**62)))


@torch.no_grad()
def calibrate_latents(vae, latents: torch.Tensor, image_size: int) -> None:
    """Centre the diffusion latents on the empty white canvas and scale them to unit standard deviation.

    ``latents_mean`` := the latent of a white image (per channel), ``latents_std`` := 1, ``scaling_factor`` :=
    1 / std of the centred latents (Latent Diffusion's rule; 0.18215 for SD's VAE). Every target is an object on
    white, so the background becomes 0 in diffusion space: at the last training timestep the little signal left
    (``sqrt(alpha_bar) ~ 0.07``) then agrees with the pure noise sampling starts from. Uncentred, the model learns to
    read the background level from that residual, and about a third of the samples started from pure noise came out
    with a grey or black background.
    """
    white = torch.ones(1, 3, image_size, image_size, device=vae.device, dtype=vae.dtype)
    canvas = vae.encode(white).latent_dist.mean.float().mean(dim=(0, 2, 3))
    scale = 1.0 / float((latents.float() - canvas.cpu().view(1, -1, 1, 1)).std())
    vae.register_to_config(latents_mean=canvas.tolist(), latents_std=[1.0] * len(canvas), scaling_factor=scale)
    logger.info("latents centred on the white canvas %s, scaling factor %.4f", canvas.tolist(), scale)


CHECKPOINT_STATE = "trainer_state.json"


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest COMPLETE checkpoint in ``folder``: a ``step_NNNNNNN`` folder holding its ``trainer_state.json``.

    A checkpoint is written as ``.step_NNNNNNN.partial`` and renamed only once its state file is in place, so a
    crash while saving leaves a partial folder that is ignored here (and removed by the next save)."""
    complete = [
        path for path in folder.glob("step_*") if path.name[5:].isdigit() and (path / CHECKPOINT_STATE).is_file()
    ]
    return max(complete, key=lambda path: int(path.name[5:]), default=None)


def save_checkpoint(accelerator, folder: Path, step: int) -> Path:
    """Save the training state at ``step`` to ``folder/step_NNNNNNN`` atomically (see :func:`latest_checkpoint`)."""
    target = folder / f"step_{step:07d}"
    for leftover in folder.glob(".step_*.partial"):  # from a run killed while saving
        shutil.rmtree(leftover, ignore_errors=True)
    staging = folder / f".{target.name}.partial"
    accelerator.save_state(str(staging))
    save_json(staging / CHECKPOINT_STATE, {"step": step})
    return publish_folder(staging, target)


def prune_checkpoints(folder: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest complete checkpoints (incomplete ones are left to the next save)."""
    complete = sorted(
        (path for path in folder.glob("step_*") if path.name[5:].isdigit() and (path / CHECKPOINT_STATE).is_file()),
        key=lambda path: int(path.name[5:]),
    )
    removed = complete[:-keep] if keep < len(complete) else []
    for path in removed:
        shutil.rmtree(path)
    return removed


def learning_rate_factor(step: int, warmup_steps: int, steps: int, decay_steps: int = 0) -> float:
    """Factor on the learning rate at ``step``: linear warm-up from ~0 over ``warmup_steps``, 1, then a linear decay
    reaching 0 at ``steps`` over the last ``decay_steps``. A function of the step alone, so resumed runs follow it."""
    warmup = max(1, warmup_steps)
    if step < warmup:
        return WARMUP_START + (1 - WARMUP_START) * step / warmup
    if decay_steps and step > steps - decay_steps:
        return max(0.0, (steps - step) / decay_steps)
    return 1.0


def resume_run(accelerator, config: TrainConfig, output: Path) -> int:
    """Load the latest complete checkpoint of ``output`` if any; returns the step to continue from. Refuses settings
    that differ from the run's ``training.json`` (unless ``allow_changed_settings``) and a step count below the
    checkpoint's."""
    latest = latest_checkpoint(output / "checkpoints")
    if latest is None:
        return 0
    step = json.loads((latest / CHECKPOINT_STATE).read_text())["step"]
    saved_file = output / "training.json"
    saved = json.loads(saved_file.read_text()) if saved_file.is_file() else {}
    conflicts = config.resume_conflicts(saved)
    if conflicts and not config.allow_changed_settings:
        raise InputError(
            f"{output} holds a run with other settings: {'; '.join(conflicts)}. Use another output folder, or "
            "--allow-changed-settings to resume with the new ones"
        )
    if config.steps < step:
        raise InputError(
            f"{output} has already trained {step} steps; --steps {config.steps} would not train them again"
        )
    accelerator.load_state(str(latest))
    logger.info("resumed from %s at step %d", latest, step)
    return step


def _prepare_training(config: TrainConfig, accelerator):
    """The model, the trained modules' optimizer and schedule (prepared by accelerate), and the EMA (diffusion)."""
    from diffusers.training_utils import EMAModel

    pipe = load_start(config)
    pipe.set_progress_bar_config(disable=True)
    for module in (pipe.vae, pipe.image_encoder, pipe.unet, pipe.cc_projection):
        module.requires_grad_(False)
    names = ["unet", "cc_projection"] if config.stage == "diffusion" else ["vae"]
    scales = {"unet": 1.0, "vae": 1.0, "cc_projection": config.cc_projection_lr_scale}
    groups = [{"params": list(getattr(pipe, n).parameters()), "lr": config.learning_rate * scales[n]} for n in names]
    for name in names:
        getattr(pipe, name).requires_grad_(True).train()
    optimizer = torch.optim.AdamW(groups)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda n: learning_rate_factor(n, config.warmup_steps, config.steps, config.decay_steps)
    )
    *modules, optimizer, schedule = accelerator.prepare(*(getattr(pipe, n) for n in names), optimizer, schedule)
    for name, module in zip(names, modules):
        setattr(pipe, name, module)
    pipe.to(accelerator.device)
    ema = None
    if config.stage == "diffusion":
        ema = EMAModel(accelerator.unwrap_model(pipe.unet).parameters(), decay=config.ema_decay)
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    return pipe, optimizer, schedule, ema


def _step_loss(pipe, recipe, config: TrainConfig, dataset, encoded, step: int, process: int = 0) -> torch.Tensor:
    """The loss of training step ``step`` (its batch and randomness come from ``(seed, step)``)."""
    rng, generator = step_generators(config.seed, step, process)
    if config.stage == "vae":
        return autoencoder_loss(pipe, recipe.autoencoder_batch(dataset, config, rng), config.kl_weight, generator)
    return recipe.diffusion_loss(pipe, dataset, encoded, config, rng, generator)


def end_step(done: int, loss, schedule, log, progress, accelerator, checkpoints: Path, config) -> None:
    """After optimisation step ``done`` (1-based): log the loss every ``config.log_every`` steps (and at the end) to
    ``log`` and the progress bar; write a checkpoint every ``config.checkpoint_every`` steps, keeping the newest."""
    if done % config.log_every == 0 or done == config.steps:
        record = {"step": done, "loss": float(loss.detach()), "lr": schedule.get_last_lr()[0]}
        log.write(json.dumps(record) + "\n")
        log.flush()
        progress.set_postfix(loss=f"{record['loss']:.5f}")
    if done % config.checkpoint_every == 0 or done == config.steps:
        save_checkpoint(accelerator, checkpoints, done)
        prune_checkpoints(checkpoints, config.keep_checkpoints)


def truncate_log(log: Path, step: int) -> None:
    """Drop the log entries past ``step``: steps a killed run logged after its last checkpoint are trained again."""
    if log.is_file():
        kept = [line for line in log.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        write_atomic(log, "".join(line + "\n" for line in kept).encode())


def train(config: TrainConfig) -> Path:
    """Run (or resume) training; returns the folder of the final model (``OUTPUT_DIR/model``).

    Checkpoints go to ``OUTPUT_DIR/checkpoints/step_NNNNNNN`` every ``checkpoint_every`` steps; a run started again
    with the same output folder resumes from the latest complete one. Losses go to ``OUTPUT_DIR/train_log.jsonl``.
    """
    from accelerate import Accelerator

    if Path(config.output_dir).exists() and not Path(config.output_dir).is_dir():
        raise InputError(f"--output {config.output_dir} exists and is not a folder")
    recipe = RECIPES[config.pipeline]
    dataset = recipe.open_dataset(config.data)
    output = Path(config.output_dir)
    checkpoints = output / "checkpoints"
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
    pipe, optimizer, schedule, ema = _prepare_training(config, accelerator)
    multiple = pipe.vae_scale_factor * 2 ** (len(pipe.unet.config.block_out_channels) - 1)
    if config.image_size % multiple:
        raise InputError(f"image_size must be a multiple of {multiple} for this model, got {config.image_size}")
    start_step = resume_run(accelerator, config, output)
    save_json(output / "training.json", asdict(config))
    truncate_log(output / "train_log.jsonl", start_step)

    encoded = recipe.encode(pipe, dataset, config) if config.stage == "diffusion" else None
    if config.calibrate_latent_scale and config.stage == "diffusion":  # deterministic: a resumed run gets the same
        calibrate_latents(accelerator.unwrap_model(pipe.vae), recipe.latent_means(encoded), config.image_size)
    started = time.perf_counter()
    progress = tqdm(
        range(start_step, config.steps), initial=start_step, total=config.steps, desc=f"train {config.stage}"
    )
    with open(output / "train_log.jsonl", "a") as log:
        for step in progress:
            with accelerator.autocast():
                loss = _step_loss(pipe, recipe, config, dataset, encoded, step, accelerator.process_index)
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            if ema is not None:
                ema.step(accelerator.unwrap_model(pipe.unet).parameters())
            end_step(step + 1, loss, schedule, log, progress, accelerator, checkpoints, config)
    return _save_final(pipe, ema, accelerator, output, config, time.perf_counter() - started)


def _save_final(pipe, ema, accelerator, output: Path, config: TrainConfig, seconds: float) -> Path:
    """Save the model (EMA UNet weights for the diffusion stage) to ``output/model`` atomically."""
    final = type(pipe)(
        vae=accelerator.unwrap_model(pipe.vae),
        image_encoder=pipe.image_encoder,
        unet=accelerator.unwrap_model(pipe.unet),
        cc_projection=accelerator.unwrap_model(pipe.cc_projection),
        scheduler=pipe.scheduler,
    )
    if ema is not None:
        ema.store(final.unet.parameters())
        ema.copy_to(final.unet.parameters())
    staging = output / ".model.partial"
    shutil.rmtree(staging, ignore_errors=True)
    final.save_pretrained(staging, safe_serialization=True)
    save_json(staging / "training.json", {**asdict(config), "seconds_this_run": round(seconds, 1)})
    if ema is not None:
        ema.restore(final.unet.parameters())
    return publish_folder(staging, output / "model")  # the old model is deleted only once the new one is in place
