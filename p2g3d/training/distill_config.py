"""The settings of a distillation run: :class:`DistillConfig` (the ``p2g3d distill`` options are generated from it).

Light to import (no torch), so that the command line answers ``--help`` and argument errors at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..settings import MAX_BATCH, option
from ..validation import check_choice, check_number

LOSSES = ("huber", "l2")


@dataclass
class DistillConfig:
    """Settings of one latent-consistency distillation run (saved to ``training.json`` in the output folder).

    The teacher's guided DDIM solver (``solver_steps`` uniform steps, guidance ``guidance_scale``) gives the targets;
    the student learns to map any point of a teacher trajectory to its end in one conditional UNet call, so it
    samples in ``student_steps`` calls with no unconditional branch."""

    data: str = option(None, "--data", "pix2gestalt-format dataset folder (scenes, visible masks, wholes)", type=Path)
    output_dir: str = option(None, "--output", "run folder (checkpoints, log, model/)", type=Path)
    teacher: str = option(
        "embedded", "--teacher", "the model to distil: 'embedded' or a converted model folder (e.g. models/pix2gestalt)"
    )
    steps: int = option(2000, "--steps", "optimisation steps")
    batch_size: int = option(16, "--batch-size", "samples per step")
    learning_rate: float = option(1e-4, "--lr", "student UNet learning rate (AdamW)")
    warmup_steps: int = option(100, "--warmup", "linear warm-up steps")
    decay_steps: int = option(0, "--decay-steps", "linear decay of the rate to 0 over the run's last N steps")
    target_ema_decay: float = option(0.95, "--target-ema", "EMA decay of the target network (LCM: 0.95)")
    guidance_scale: float = option(2.0, "--guidance", "the teacher's classifier-free guidance, folded into the student")
    solver_steps: int = option(50, "--solver-steps", "the teacher's DDIM discretisation (skip 1000 / N timesteps)")
    student_steps: int = option(4, "--student-steps", "the student's default sampling steps, saved with it")
    loss: str = option(
        "huber", "--loss", "consistency distance (pseudo-Huber as LCM, or squared error)", choices=LOSSES
    )
    huber_c: float = 0.001
    data_weight: float = option(
        0.0,
        "--data-weight",
        "weight of a data term: the student's x0 against the training target (0: pure distillation)",
    )
    init_student: str | None = option(
        None, "--init-student", "start the student from this student model's UNet (default: the teacher's)"
    )
    mixed_precision: str = option(
        "no", "--mixed-precision", "accelerate mixed precision", choices=("no", "fp16", "bf16")
    )
    checkpoint_every: int = option(250, "--checkpoint-every", "steps between checkpoints")
    log_every: int = 10
    seed: int = option(0, "--seed", "seed of data order, noise and timesteps")
    image_size: int | None = option(None, "--image-size", "training resolution in pixels (default: the teacher's)")
    cache_limit: int = 50000
    keep_checkpoints: int = option(2, "--keep-checkpoints", "complete checkpoints kept (the newest)")
    allow_changed_settings: bool = option(
        False, "--allow-changed-settings", "resume even though settings differ from the run's training.json"
    )

    def __post_init__(self):
        if self.data is None or self.output_dir is None:
            raise InputError("data and output_dir are required (--data DIR -o RUN_DIR)")
        self.data, self.output_dir, self.teacher = str(self.data), str(self.output_dir), str(self.teacher)
        check_choice(self, "loss", LOSSES)
        check_choice(self, "mixed_precision", ("no", "fp16", "bf16"))
        for name in ("steps", "checkpoint_every", "log_every", "keep_checkpoints", "cache_limit"):
            check_number(self, name, integer=True, low=1)
        check_number(self, "batch_size", integer=True, low=1, high=MAX_BATCH)
        check_number(self, "warmup_steps", integer=True, low=0)
        check_number(self, "decay_steps", integer=True, low=0, high=self.steps)
        check_number(self, "seed", integer=True, low=0)
        check_number(self, "solver_steps", integer=True, low=2, high=1000)
        check_number(self, "student_steps", integer=True, low=1, high=self.solver_steps)
        check_number(self, "learning_rate", low=0, low_open=True)
        check_number(self, "target_ema_decay", low=0, high=1)
        check_number(self, "guidance_scale", low=1)
        check_number(self, "huber_c", low=0, low_open=True)
        check_number(self, "data_weight", low=0)
        if self.init_student is not None:
            self.init_student = str(self.init_student)
        if self.image_size is not None:
            check_number(self, "image_size", integer=True, low=8, high=1024)

    def resume_conflicts(self, saved: dict) -> list[str]:
        """Settings that differ from a run's saved ``training.json`` and would change what a resumed run trains."""
        free = {"steps", "decay_steps", "checkpoint_every", "log_every", "keep_checkpoints", "cache_limit"}
        free |= {"allow_changed_settings", "student_steps"}
        return sorted(
            f"{name} (was {saved[name]!r}, now {value!r})"
            for name, value in vars(self).items()
            if name not in free and name in saved and saved[name] != value
        )
