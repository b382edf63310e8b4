"""Peak memory and time of converting a FULL-SIZE pix2gestalt checkpoint.

Writes a checkpoint with every key and shape of the official ``epoch=000005.ckpt`` (zeros, no optimizer states,
8.6 GB), converts it, and prints peak anonymous memory (what the conversion really needs) and peak file-backed
resident memory (memory-mapped checkpoint pages: page cache, reclaimable under pressure).

    python benchmarks/convert_memory.py --workdir /tmp/p2g3d-bench [--keys ../shared/docs/pix2gestalt_ckpt_keys.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from pathlib import Path

import torch

from p2g3d.convert import convert_checkpoint

STATUS_FIELDS = ("RssAnon", "RssFile", "VmRSS")


class PeakMemory:
    """Samples /proc/self/status every 50 ms; peaks in GiB."""

    def __init__(self):
        self.peak = dict.fromkeys(STATUS_FIELDS, 0)
        self._running = False

    def _sample(self):
        while self._running:
            for line in Path("/proc/self/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in self.peak:
                    self.peak[name] = max(self.peak[name], int(value.split()[0]))
            time.sleep(0.05)

    def __enter__(self):
        self._running = True
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._running = False
        self._thread.join()

    def gib(self, name: str) -> float:
        return self.peak[name] / 1024**2


def write_full_size_checkpoint(keys_json: Path, path: Path) -> None:
    shapes = json.loads(keys_json.read_text())
    state_dict = {
        key: torch.zeros(shape, dtype=torch.int32 if key == "model_ema.num_updates" else torch.float32)
        for key, shape in shapes.items()
    }
    torch.save({"state_dict": state_dict, "epoch": 5}, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, required=True, help="scratch folder (needs ~14 GB free)")
    default_keys = Path(__file__).resolve().parents[2] / "shared" / "docs" / "pix2gestalt_ckpt_keys.json"
    parser.add_argument("--keys", type=Path, default=default_keys)
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "fp16"])
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.workdir / "full_size.ckpt"
    if not checkpoint.exists():
        write_full_size_checkpoint(args.keys, checkpoint)
    print(f"checkpoint: {checkpoint.stat().st_size / 1e9:.2f} GB")
    print("| dtype | wall s | peak anonymous GiB | peak file-backed GiB | peak RSS GiB |")
    print("|---|---:|---:|---:|---:|")
    for dtype in args.dtypes:
        output = args.workdir / f"converted_{dtype}"
        start = time.perf_counter()
        with PeakMemory() as memory:
            convert_checkpoint(checkpoint, output, dtype=dtype, overwrite=True)
        seconds = time.perf_counter() - start
        print(
            f"| {dtype} | {seconds:.1f} | {memory.gib('RssAnon'):.2f} | {memory.gib('RssFile'):.2f} "
            f"| {memory.gib('VmRSS'):.2f} |"
        )
        shutil.rmtree(output)


if __name__ == "__main__":
    main()
