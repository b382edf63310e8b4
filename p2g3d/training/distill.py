"""Latent consistency distillation (LCD) of a pix2gestalt model into a few-step student with guidance folded in.

Method: Luo et al., "Latent Consistency Models: Synthesizing High-Resolution Images with Few-Step Inference"
(arXiv 2310.04378, 2023), Algorithm 1, built on consistency distillation (Song et al., "Consistency Models", ICML
2023). Chosen over progressive distillation (Salimans & Ho, ICLR 2022; with guidance, Meng et al., CVPR 2023)
because it is ONE training phase (progressive distillation halves the steps in rounds, 50 -> 4 takes four, each
trained to convergence) and folds classifier-free guidance into the same phase through the guided teacher solver,
and because its sampler is diffusers' ``LCMScheduler``. One step of it, for a batch of encoded training samples:

1. draw n uniformly in {0, ..., N-1} (N = ``solver_steps``, skip k = 1000 / N): ``t = (n + 1) k - 1`` and
   ``s = t - k`` (0 at the end), noise the target latent to ``z_t``;
2. teacher, guided (one ``[uncond; cond]`` call, zero context and zero concat latents for the unconditional half,
   as at inference): one DDIM step ``z_t -> z_s`` (eta 0) with the guided eps;
3. student (conditional only): ``f(z_t, t) = c_skip(t) z_t + c_out(t) x0(z_t, eps_student)``; target network (an
   EMA of the student, decay 0.95, no gradient): ``f(z_s, s)``; the boundary scalings are ``LCMScheduler``'s
   (sigma_data 0.5, timestep scaling 10), so f is the identity at t = 0 and sampling matches training;
4. loss: pseudo-Huber distance ``sqrt(|a - b|^2 + c^2) - c`` (LCM's choice, c = 0.001) per element, mean.

The student starts from the teacher's weights; VAE, CLIP and ``cc_projection`` stay frozen and are shared. The saved
model is the target network, with an ``LCMScheduler`` (the teacher's noise schedule, ``original_inference_steps``
= N) and sampling defaults ``student_steps`` steps, guidance 1 (one UNet call per step), saved in the folder.

Everything a run shares with ``p2g3d train`` (encoded dataset cache, per-step generators, atomic checkpoints and
exact resuming, learning-rate schedule, accelerate) is the trainer's.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import InputError
from ..io import publish_folder, save_json
from ..loading import resolve_model_name
from .distill_config import DistillConfig
from .gestalt import ENCODED_DATASET, encode_batch, load_batch, load_or_encode_dataset
from .trainer import (
    end_step,
    learning_rate_factor,
    resume_run,
    step_generators,
    truncate_log,
)

logger = logging.getLogger(__name__)

SIGMA_DATA = 0.5  # LCMScheduler's boundary condition


def boundary_scalings(timesteps: torch.Tensor, timestep_scaling: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(c_skip, c_out)`` of the consistency function at ``timesteps`` (``(B,)``), as ``LCMScheduler`` uses them:
    ``c_skip = s^2 / ((t k)^2 + s^2)``, ``c_out = t k / sqrt((t k)^2 + s^2)`` with s = 0.5, k = 10."""
    scaled = timesteps.float() * timestep_scaling
    c_skip = SIGMA_DATA**2 / (scaled**2 + SIGMA_DATA**2)
    c_out = scaled / (scaled**2 + SIGMA_DATA**2) ** 0.5
    return c_skip.view(-1, 1, 1, 1), c_out.view(-1, 1, 1, 1)


def predicted_original(latents: torch.Tensor, eps: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """x0 from z_t and eps: ``(z_t - sqrt(1 - a) eps) / sqrt(a)``; ``alpha_bar`` ``(B, 1, 1, 1)``."""
    return (latents - (1 - alpha_bar).sqrt() * eps) / alpha_bar.sqrt()


def consistency_function(unet, latents, timesteps, context, concat, alphas_cumprod) -> torch.Tensor:
    """``f(z_t, t) = c_skip z_t + c_out x0(z_t, eps)`` with one conditional UNet call."""
    eps = unet(torch.cat([latents, concat], dim=1), timesteps, encoder_hidden_states=context).sample.float()
    c_skip, c_out = boundary_scalings(timesteps)
    alpha_bar = alphas_cumprod[timesteps].view(-1, 1, 1, 1)
    return c_skip * latents + c_out * predicted_original(latents, eps, alpha_bar)


@torch.no_grad()
def guided_ddim_step(teacher, latents, start, end, context, concat, guidance_scale, alphas_cumprod) -> torch.Tensor:
    """The teacher's guided DDIM step (eta 0) from ``z_start`` to ``z_end`` (``(B,)`` timesteps, ``end < start``)."""
    doubled = torch.cat([torch.cat([latents, torch.zeros_like(concat)], 1), torch.cat([latents, concat], 1)])
    contexts = torch.cat([torch.zeros_like(context), context])
    eps_uncond, eps_cond = teacher(doubled, start.repeat(2), encoder_hidden_states=contexts).sample.float().chunk(2)
    eps = eps_uncond + guidance_scale * (eps_cond - eps_uncond)
    alpha_start = alphas_cumprod[start].view(-1, 1, 1, 1)
    alpha_end = alphas_cumprod[end].view(-1, 1, 1, 1)
    original = predicted_original(latents, eps, alpha_start)
    return alpha_end.sqrt() * original + (1 - alpha_end).sqrt() * eps


def consistency_loss(prediction: torch.Tensor, target: torch.Tensor, kind: str, huber_c: float) -> torch.Tensor:
    """Pseudo-Huber (``sqrt(d^2 + c^2) - c`` per element) or squared error, mean."""
    difference = prediction.float() - target.float()
    if kind == "l2":
        return difference.pow(2).mean()
    return ((difference.pow(2) + huber_c**2).sqrt() - huber_c).mean()


def distillation_loss(pipe, teacher, target, batch: dict, config: DistillConfig, generator) -> torch.Tensor:
    """The LCD loss of one encoded batch (module docstring); ``pipe.unet`` is the student."""
    device = pipe.unet.device
    alphas_cumprod = pipe.scheduler.alphas_cumprod.to(device)
    mean, concat, clip = (batch[k].to(device) for k in ("mean", "concat", "clip"))
    latents = pipe.normalize_latents(mean)
    context = pipe.cc_projection(clip).detach()
    skip = pipe.scheduler.config.num_train_timesteps // config.solver_steps
    index = torch.randint(0, config.solver_steps, (len(mean),), generator=generator)
    start = ((index + 1) * skip - 1).to(device)
    end = (start - skip).clamp(min=0)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    noisy = pipe.scheduler.add_noise(latents, noise, start)
    prediction = consistency_function(pipe.unet, noisy, start, context, concat, alphas_cumprod)
    previous = guided_ddim_step(teacher, noisy, start, end, context, concat, config.guidance_scale, alphas_cumprod)
    with torch.no_grad():
        goal = consistency_function(target, previous, end, context, concat, alphas_cumprod)
    loss = consistency_loss(prediction, goal, config.loss, config.huber_c)
    if config.data_weight:
        loss = loss + config.data_weight * consistency_loss(prediction, latents, config.loss, config.huber_c)
    return loss


@torch.no_grad()
def update_target(target, student, decay: float) -> None:
    """``target <- decay * target + (1 - decay) * student``, parameter by parameter."""
    for mine, theirs in zip(target.parameters(), student.parameters()):
        mine.lerp_(theirs.detach().to(mine.dtype), 1 - decay)


def student_scheduler(teacher_scheduler_config, solver_steps: int):
    """``LCMScheduler`` on the teacher's noise schedule, its skipping-step grid = the distillation's."""
    from diffusers import LCMScheduler

    keys = ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "trained_betas", "prediction_type")
    shared = {key: teacher_scheduler_config[key] for key in keys if key in teacher_scheduler_config}
    return LCMScheduler(**shared, original_inference_steps=solver_steps, timestep_scaling=10.0)


def _load_teacher(config: DistillConfig):
    from ..loading import quiet_loading, validate_model_folder
    from ..pipelines.pix2gestalt import Pix2GestaltPipeline

    folder = resolve_model_name(config.teacher)
    validate_model_folder(folder, "Pix2GestaltPipeline")
    with quiet_loading():
        pipe = Pix2GestaltPipeline.from_pretrained(folder, dtype=torch.float32)
    if pipe.scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise InputError(f"the teacher must predict eps, {folder} predicts {pipe.scheduler.config.prediction_type}")
    if pipe.sampling_defaults.get("guidance_scale", 2.0) == 1.0:
        raise InputError(f"{folder} is already a distilled student (guidance folded in); distil its teacher instead")
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _initial_student(teacher, init_student: str | None):
    """A frozen copy of the teacher's UNet, or of the UNet of the student model ``init_student`` (same architecture)."""
    if init_student is None:
        return copy.deepcopy(teacher)
    from diffusers import UNet2DConditionModel

    from ..loading import quiet_loading, validate_model_folder

    folder = resolve_model_name(init_student)
    validate_model_folder(folder, "Pix2GestaltPipeline")
    with quiet_loading():
        unet = UNet2DConditionModel.from_pretrained(Path(folder) / "unet", torch_dtype=torch.float32)
    ignored = {"_name_or_path", "_diffusers_version", "_use_default_values"}
    differing = sorted(k for k in teacher.config if k not in ignored and unet.config.get(k) != teacher.config[k])
    if differing:
        raise InputError(f"--init-student {init_student}: its UNet differs from the teacher's in {differing}")
    return unet.to(teacher.device).requires_grad_(False).eval()


def distill(config: DistillConfig) -> Path:
    """Run (or resume) a distillation; returns the folder of the student model (``OUTPUT_DIR/model``).

    Checkpoints go to ``OUTPUT_DIR/checkpoints/step_NNNNNNN`` (student, target network, optimiser, schedule) every
    ``checkpoint_every`` steps; the same command resumes from the latest complete one, exactly. Losses go to
    ``OUTPUT_DIR/train_log.jsonl``. Several GPUs: ``accelerate launch -m p2g3d.cli distill ...``.
    """
    from accelerate import Accelerator

    from ..datasets import GestaltDataset

    output = Path(config.output_dir)
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {config.output_dir} exists and is not a folder")
    dataset = GestaltDataset(config.data)
    accelerator = Accelerator(mixed_precision=config.mixed_precision, cpu=not torch.cuda.is_available())
    pipe = _load_teacher(config)
    image_size = config.image_size or pipe.default_size
    if image_size % pipe.vae_scale_factor:
        raise InputError(f"image_size must be a multiple of {pipe.vae_scale_factor}, got {image_size}")
    for module in (pipe.vae, pipe.image_encoder, pipe.unet, pipe.cc_projection):
        module.requires_grad_(False)
    teacher = pipe.unet.eval()
    target = _initial_student(teacher, config.init_student)
    student = copy.deepcopy(target).requires_grad_(True).train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda n: learning_rate_factor(n, config.warmup_steps, config.steps, config.decay_steps)
    )
    student, optimizer, schedule = accelerator.prepare(student, optimizer, schedule)
    accelerator.register_for_checkpointing(target)
    pipe.to(accelerator.device)
    target.to(accelerator.device)
    start_step = resume_run(accelerator, config, output)
    save_json(output / "training.json", {**asdict(config), "recipe": "latent-consistency-distillation"})
    truncate_log(output / "train_log.jsonl", start_step)
    encoded = None  # large datasets (the official 837K pairs) are encoded batch by batch
    if len(dataset) <= config.cache_limit:
        encoded = load_or_encode_dataset(pipe, dataset, image_size, output / ENCODED_DATASET)
    pipe.unet = student  # the loss calls the student through the pipeline; the teacher stays in ``teacher``

    started = time.perf_counter()
    progress = tqdm(range(start_step, config.steps), initial=start_step, total=config.steps, desc="distill")
    with open(output / "train_log.jsonl", "a") as log:
        for step in progress:
            rng, generator = step_generators(config.seed, step, accelerator.process_index)
            indices = rng.choice(len(dataset), config.batch_size, replace=len(dataset) < config.batch_size)
            if encoded is not None:
                batch = {key: value[torch.as_tensor(indices)] for key, value in encoded.items()}
            else:
                batch = encode_batch(pipe, load_batch(dataset, indices, image_size))
            with accelerator.autocast():
                loss = distillation_loss(pipe, teacher, target, batch, config, generator)
            accelerator.backward(loss)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            update_target(target, accelerator.unwrap_model(student), config.target_ema_decay)
            end_step(step + 1, loss, schedule, log, progress, accelerator, output / "checkpoints", config)
    pipe.unet = teacher
    return save_student(pipe, target, output, config, time.perf_counter() - started)


def save_student(pipe, target, output: Path, config: DistillConfig, seconds: float) -> Path:
    """The student model folder (``output/model``, written atomically): the teacher's VAE, CLIP tower and
    ``cc_projection``, the target network's UNet, an ``LCMScheduler`` and the student's sampling defaults."""
    student = type(pipe)(
        vae=pipe.vae,
        image_encoder=pipe.image_encoder,
        unet=target,
        cc_projection=pipe.cc_projection,
        scheduler=student_scheduler(pipe.scheduler.config, config.solver_steps),
        sampling_defaults={"num_inference_steps": config.student_steps, "guidance_scale": 1.0},
    )
    staging = output / ".model.partial"
    shutil.rmtree(staging, ignore_errors=True)
    student.save_pretrained(staging, safe_serialization=True)
    save_json(
        staging / "training.json",
        {**asdict(config), "recipe": "latent-consistency-distillation", "seconds_this_run": round(seconds, 1)},
    )
    return publish_folder(staging, output / "model")
