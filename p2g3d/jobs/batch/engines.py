"""Batch engines, all on the same :class:`~.run.BatchRun` core:

* ``in-process`` (default): one model, a progress bar with items/s and ETA;
* ``accelerate``: ``accelerate launch -m p2g3d.cli batch ... --engine accelerate`` shards the items over the
  processes (one model per process, one GPU each); the main process writes the indexes;
* ``ray`` (``pip install 'p2g3d[ray]'``): Ray Data over rows that carry the items, ``map_batches`` over a pool of
  actors (one model and one GPU each where the cluster has GPUs); joins the cluster in ``RAY_ADDRESS`` or starts a
  local one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from ...errors import InputError, MissingDependencyError
from .inputs import read_items
from .run import BatchRun, pending_chunks

ENGINES = ("in-process", "accelerate", "ray")
RAY_OBJECT_STORE_BYTES = 256 * 2**20  # a local cluster's object store: rows hold a few items each


def run_items(run, items: Sequence, make_completer: Callable, seed: int, *, shard=(0, 1), pack: int = 4) -> dict:
    """Process the unfinished items of shard ``index`` of ``count`` (``items[index::count]``) with one completer,
    ``pack`` items per packed completer call. Returns counts for this shard."""
    index, count = shard
    chunks, counts = pending_chunks(run, items[index::count], pack)
    if not chunks:
        return counts
    completer = make_completer()
    total = sum(len(chunk) for chunk in chunks)
    with tqdm(total=total, desc=run.description, unit="item", disable=index != 0, smoothing=0.1) as progress:
        for chunk in chunks:
            for key, value in run.process(completer, chunk, seed).items():
                counts[key] += value
            progress.update(len(chunk))
    return counts


def connect_ray():
    """Join the cluster named by ``RAY_ADDRESS`` (e.g. ``auto`` on a node where ``ray start --head`` ran) or start
    a local one. Only a local cluster gets a small object store (the rows are a few items each); a running
    cluster's object store was sized when it started, and ``ray.init`` refuses to resize it."""
    try:
        import ray
    except ImportError as error:
        raise MissingDependencyError(f"the ray engine needs Ray Data: pip install 'p2g3d[ray]' ({error})") from error
    if not ray.is_initialized():
        if os.environ.get("RAY_ADDRESS"):
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False, object_store_memory=RAY_OBJECT_STORE_BYTES)
    return ray


def run_ray(
    run,
    items: Sequence,
    make_completer: Callable,
    seed: int,
    *,
    pack: int = 4,
    actors: int | None = None,
) -> dict:
    """Process the unfinished items on a Ray cluster: Ray Data over rows that each carry one chunk of ``pack``
    items (as JSON), ``map_batches`` over ``actors`` concurrent workers (default: one per GPU of the cluster, else
    one), each holding one model and one GPU where the cluster has GPUs."""
    ray = connect_ray()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    actors = actors or max(1, gpus)
    chunks, counts = pending_chunks(run, items, pack)
    if not chunks:
        return counts

    import torch

    threads = torch.get_num_threads()  # Ray starts workers with OMP_NUM_THREADS=1: other rounding, other pixels

    class Worker:  # one model per actor, built once
        def __init__(self):
            torch.set_num_threads(threads)
            self.completer = make_completer()

        def __call__(self, batch: dict) -> dict:  # one chunk per call: chunks are fixed (see pending_chunks)
            chunk = [run.item_from_json(text) for text in json.loads(str(batch["items"][0]))]
            counts = run.process(self.completer, chunk, seed)
            return {"processed": np.array([counts["processed"]]), "failed": np.array([counts["failed"]])}

    rows = [{"items": json.dumps([item.to_json() for item in chunk])} for chunk in chunks]
    results = (
        ray.data.from_items(rows)
        .map_batches(Worker, batch_size=1, concurrency=actors, num_gpus=1 if gpus else 0)
        .take_all()
    )
    for row in results:
        counts["processed"] += int(row["processed"])
        counts["failed"] += int(row["failed"])
    return counts


def run_batch(
    source: str | os.PathLike,
    output: str | os.PathLike,
    make_completer: Callable,
    fingerprint: dict,
    *,
    images: str | os.PathLike | None = None,
    seed: int = 0,
    engine: str = "in-process",
    pack: int = 4,
) -> dict:
    """Complete every item of ``source`` into ``output`` on ``engine``, ``pack`` items per packed completer call
    (their objects and samples share the UNet batches); returns a summary: ``items``, ``done``, ``failed``,
    ``objects`` over the whole output folder (on the main process), ``processed``, ``failed_this_run`` and
    ``skipped`` by this run, ``seconds``."""
    started = time.perf_counter()
    items = read_items(source, images)
    run = BatchRun(output, {**fingerprint, "seed": seed, "input": str(source)})
    summary, counts = run_on_engine(run, items, make_completer, seed, engine=engine, pack=pack)
    this_run = {"processed": counts["processed"], "failed_this_run": counts["failed"], "skipped": counts["skipped"]}
    return {**summary, **this_run, "seconds": round(time.perf_counter() - started, 1)}


def run_on_engine(run, items: Sequence, make_completer: Callable, seed: int, *, engine: str, pack: int):
    """Prepare ``run``, process its unsettled ``items`` on ``engine`` and finalize it (on the main process);
    returns ``(run.finalize(items) or {} on other processes, this process's counts)``. ``run`` is a
    :class:`~.run.BatchRun` or anything with its methods (``prepare``, ``is_settled``, ``process``, ``finalize``,
    ``item_from_json``), such as the evaluation's run."""
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine in ("in-process", "ray"):
        run.prepare()
        runner = run_items if engine == "in-process" else run_ray
        counts = runner(run, items, make_completer, seed, pack=pack)
        summary = run.finalize(items)
    else:
        from accelerate import PartialState

        state = PartialState()
        if state.is_main_process:
            run.prepare()
        state.wait_for_everyone()
        counts = run_items(
            run, items, make_completer, seed, shard=(state.process_index, state.num_processes), pack=pack
        )
        state.wait_for_everyone()
        summary = run.finalize(items) if state.is_main_process else {}
    return summary, counts
