"""SIGKILL in the middle of training and of a conversion: the rerun resumes or starts clean, nothing is lost."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from p2g3d.datasets import GestaltSample, write_dataset
from p2g3d.training.config import TrainConfig
from p2g3d.training.trainer import train


def kill_when(argv: list[str], ready, timeout: float = 120.0) -> None:
    """Start ``p2g3d ARGV``, SIGKILL it as soon as ``ready()`` holds (polled every 2 ms)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "p2g3d.cli", *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + timeout
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    process.kill()
    process.wait()
    assert ready(), "the run ended before the moment to kill it"


def run(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "p2g3d.cli", *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(4):
        mask = np.zeros((32, 32), bool)
        mask[8:24, 6:26] = True
        whole = np.where(mask[..., None], rng.integers(0, 200, 3, dtype=np.uint8), 255).astype(np.uint8)
        samples.append(GestaltSample(whole, whole, mask, mask & (np.arange(32) < 18)[None, :]))
    return write_dataset(samples, tmp_path_factory.mktemp("data") / "data")


def test_training_killed_while_checkpointing_resumes_to_the_same_weights(dataset, tmp_path):
    settings = {
        "steps": 5,
        "checkpoint_every": 1,
        "batch_size": 2,
        "image_size": 32,
        "warmup_steps": 2,
        "ema_decay": 0.9,
        "keep_checkpoints": 2,
    }
    flags = {
        "steps": "--steps",
        "checkpoint_every": "--checkpoint-every",
        "batch_size": "--batch-size",
        "image_size": "--image-size",
        "warmup_steps": "--warmup",
        "ema_decay": "--ema-decay",
        "keep_checkpoints": "--keep-checkpoints",
    }
    argv = ["train", "--data", str(dataset), "-o", str(tmp_path / "killed")]
    argv += [item for name, value in settings.items() for item in (flags[name], str(value))]
    checkpoints = tmp_path / "killed" / "checkpoints"
    kill_when(argv, lambda: any(checkpoints.glob(".step_*.partial")) or (checkpoints / "step_0000003").exists())
    run(argv)
    straight = train(TrainConfig(data=str(dataset), output_dir=str(tmp_path / "straight"), **settings))
    for part in ("unet", "cc_projection"):
        resumed = load_file(tmp_path / "killed" / "model" / part / "diffusion_pytorch_model.safetensors")
        reference = load_file(straight / part / "diffusion_pytorch_model.safetensors")
        assert all((resumed[key] == reference[key]).all() for key in reference), part
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step_0000004", "step_0000005"]  # pruned, no partial
    steps = [
        int(line.split('"step": ')[1].split(",")[0])
        for line in (tmp_path / "killed" / "train_log.jsonl").read_text().splitlines()
    ]
    assert steps == sorted(set(steps))  # no step logged twice


def test_conversion_killed_midway_leaves_nothing_and_reruns_clean(p2g_reference, tmp_path):
    output = tmp_path / "model"
    argv = [
        "convert",
        str(p2g_reference / "pix2gestalt_tiny.ckpt"),
        str(output),
        "--config",
        str(p2g_reference / "pix2gestalt_tiny.yaml"),
    ]
    kill_when(argv, lambda: (tmp_path / ".model.partial").exists())
    assert not output.exists()
    run(argv)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # the staging folder is gone
    assert (output / "conversion.json").is_file()
