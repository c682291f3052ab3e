"""Run a sweep on a Dask cluster: one task per stage of each point, results as a table.

:func:`explore` turns an :class:`~hwlenet.explore.spec.ExploreSpec` into Dask tasks (a
point's co-simulation depends on its export, which depends on its quantization; stages shared
by several points are one task), runs them on a ``LocalCluster`` or an existing scheduler,
and gathers one row per point. The data (calibration, scored and vector images) is loaded once
by the caller and scattered to the workers, so workers need hwlenet and its tools installed
but no data folder. Worker deaths are Dask's to handle: the scheduler reruns a dead worker's
tasks on the others (up to ``distributed.scheduler.allowed-failures`` times), and the stages'
caching (:mod:`hwlenet.explore.stages`) keeps a rerun from mixing with a half-written result.
"""

import logging
import os
import time

from ..defaults import resolve_jobs
from ..errors import HwlenetError
from .stages import cosim_stage, emit_stage, quantize_stage, simulate_stage, synth_stage

__all__ = ["ROW_FIELDS", "explore", "start_client"]

#: The columns of the results table, in order. ``accuracy`` is the numba simulator's on
#: ``test_images``; ``bit_exact``, ``mismatches`` and ``vectors`` come from the co-simulation,
#: ``cycles_exact`` says whether it took exactly the cycles the plan predicts;
#: ``cycles_per_image`` and ``utilization`` are the plan's steady state; LUTs to ``fits`` come
#: from place and route; ``error`` is the first failing stage's message.
ROW_FIELDS = ("model", "precision", "array", "target", "arch", "weight_memory_bits",
              "accuracy", "test_images", "bit_exact", "mismatches", "vectors", "cycles_exact",
              "cycles_per_image", "utilization", "luts", "flip_flops", "dsps", "block_ram",
              "fmax_mhz", "images_per_second", "fits", "error")


def start_client(scheduler=None, workers=None):
    """A Dask client: connected to ``scheduler`` (``tcp://host:8786``) when given, else to a
    new ``LocalCluster`` of ``workers`` single-threaded worker processes (default: one per
    CPU). Returns ``(client, cluster)``; ``cluster`` is ``None`` for an existing scheduler."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="10s"), None
        except (OSError, TimeoutError, ValueError) as error:
            raise HwlenetError(f"cannot connect to the Dask scheduler at {scheduler}: "
                               f"{error}") from None
    cluster = LocalCluster(n_workers=resolve_jobs(workers, "workers"), threads_per_worker=1,
                           processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
    return Client(cluster), cluster


def _provide(value):
    return value


def _precision_label(precision):
    label = (f"{precision['bits']} bits" if "bits" in precision
             else os.path.basename(precision["config"]))
    return label + (f" + QAT {precision['qat_epochs']}" if precision["qat_epochs"] else "")


def _array_label(array):
    return None if array is None else f"{array[0]}x{array[1]}"


def submit_sweep(client, spec, root, data):
    """Submit every stage of every point of ``spec``; returns ``(points, futures)`` where
    each point is a dict of its identity and the futures of its stages by name.

    ``data`` holds ``calibration``, ``test_images``, ``test_labels`` and ``vectors`` (uint8
    image arrays and labels), and ``train`` (``(images, labels)``) when a point runs QAT. Each
    becomes one task that returns it, not scattered data: the scheduler can recompute a task
    whose worker died, never a scattered value.
    """
    from dask.distributed import Future

    root = os.path.abspath(root)
    shared = {name: client.submit(_provide, value, pure=False,
                                  key=f"data-{name}-{time.time_ns()}")
              for name, value in data.items()}
    tasks = {}

    def task(name, function, *args):
        # one task per distinct stage: points that share a stage share its future
        key = (name, *(arg.key if isinstance(arg, Future) else repr(arg) for arg in args[1:]))
        if key not in tasks:
            tasks[key] = client.submit(function, *args, pure=False,
                                       key=f"{name}-{len(tasks)}-{time.time_ns()}")
        return tasks[key]

    points = []
    for part, model, precision, array, target in spec.points():
        stages = {"quantize": task("quantize", quantize_stage, root, model, precision,
                                   shared["calibration"],
                                   shared["train"] if precision["qat_epochs"] else None)}
        stages["simulate"] = task("simulate", simulate_stage, root, stages["quantize"],
                                  shared["test_images"], shared["test_labels"])
        if part.runs("emit"):
            stages["emit"] = task("emit", emit_stage, root, stages["quantize"], array,
                                  shared["vectors"])
        if part.runs("cosim"):
            stages["cosim"] = task("cosim", cosim_stage, root, stages["emit"], part.simulator)
        if part.runs("synth"):
            stages["synth"] = task("synth", synth_stage, root, stages["emit"], target,
                                   part.seed)
        points.append({"model": model, "precision": _precision_label(precision),
                       "array": _array_label(array), "target": target, "stages": stages})
    return points, list(tasks.values())


def _result(future):
    """A stage's result, or ``{"error": ...}`` when its task raised (a stage turns its input
    errors into results itself; this catches the rest: a worker lost too often, a tool
    crashing, a cache folder deleted under the sweep)."""
    try:
        return future.result()
    except Exception as error:  # noqa: BLE001 - reported in the point's row
        return {"error": f"{type(error).__name__}: {error}", "cached": False}


def _row(point, results):
    row = dict.fromkeys(ROW_FIELDS)
    row.update(model=point["model"], precision=point["precision"], array=point["array"],
               target=point["target"])
    errors = [result["error"] for result in results.values() if "error" in result]
    if errors:
        row["error"] = errors[0]
    quantized = results["quantize"]
    row["arch"] = quantized.get("arch")
    row["weight_memory_bits"] = quantized.get("weight_memory_bits")
    scored = results["simulate"]
    row["accuracy"], row["test_images"] = scored.get("accuracy"), scored.get("images")
    if "emit" in results:
        row["cycles_per_image"] = results["emit"].get("cycles_per_image")
        row["utilization"] = results["emit"].get("utilization")
    if "cosim" in results:
        cosim = results["cosim"]
        row["bit_exact"], row["mismatches"] = cosim.get("bit_exact"), cosim.get("mismatches")
        row["vectors"] = cosim.get("images")
        if cosim.get("cycles") is not None:
            row["cycles_exact"] = cosim["cycles"] == cosim.get("predicted_cycles")
    if "synth" in results:
        synth = results["synth"]
        resources = synth.get("resources") or {}
        for name in ("luts", "dsps", "block_ram"):
            row[name] = (resources.get(name) or {}).get("used")
        for name in ("flip_flops", "fmax_mhz", "images_per_second", "fits"):
            row[name] = synth.get(name)
    return row


def explore(spec, root, data, client, progress=True):
    """Run ``spec``'s sweep on ``client``, caching every stage under ``root``.

    Parameters
    ----------
    spec : ExploreSpec
    root : path-like
        The output folder; stage results live in ``root/stages/`` (see
        :mod:`hwlenet.explore.stages`).
    data : dict
        ``calibration``, ``test_images``, ``test_labels`` and ``vectors`` arrays.
    client : dask.distributed.Client
    progress : bool
        A progress bar over the tasks on standard error.

    Returns
    -------
    dict
        ``rows`` (one per point, the :data:`ROW_FIELDS`), ``tasks``, ``computed`` and
        ``cached`` (tasks that found their result stored), ``failed`` (points with an
        error), ``workers`` and ``seconds``.
    """
    from dask.distributed import as_completed
    from tqdm import tqdm

    start = time.perf_counter()
    points, futures = submit_sweep(client, spec, root, data)
    computed = cached = 0
    with tqdm(total=len(futures), desc="explore", unit="task", disable=not progress,
              dynamic_ncols=True) as bar:
        for future in as_completed(futures):
            result = _result(future)
            if result.get("cached"):
                cached += 1
            else:
                computed += 1
            bar.set_postfix(computed=computed, cached=cached, refresh=False)
            bar.update()
    rows = [_row(point, {name: _result(future) for name, future in point["stages"].items()})
            for point in points]
    return {"rows": rows, "tasks": len(futures), "computed": computed, "cached": cached,
            "failed": sum(row["error"] is not None for row in rows),
            "workers": len(client.scheduler_info()["workers"]),
            "seconds": time.perf_counter() - start}
