"""How fast the command line answers ``--help`` and argument errors (it should be well under a second).

    python benchmarks/cli_startup.py [--repeats 3]

Prints a markdown table: the median wall time of ``p2g3d --help``, of each command's ``--help``, and of each
command called without its required arguments (an argument error, exit status 2).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (
    "convert",
    "complete",
    "views",
    "image-to-3d",
    "reconstruct",
    "evaluate",
    "demo",
    "make-data",
    "train",
    "eval-amodal",
)


def timed(argv: list[str], repeats: int) -> tuple[float, int]:
    """Median seconds of ``python -m p2g3d.cli ARGV`` and its exit status."""
    times, code = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        code = subprocess.run([sys.executable, "-m", "p2g3d.cli", *argv], capture_output=True).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| call | seconds (median) | exit status |\n|---|---:|---:|")
    calls = (
        [["--help"]] + [[c, "--help"] for c in COMMANDS] + [[c] for c in COMMANDS if c not in ("demo", "eval-amodal")]
    )
    for argv in calls:
        seconds, code = timed(argv, args.repeats)
        print(f"| p2g3d {' '.join(argv)} | {seconds:.2f} | {code} |")


if __name__ == "__main__":
    main()
