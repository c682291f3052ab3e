#!/usr/bin/env python3
"""Speedup of ``hwlenet explore`` from 1 to N local Dask workers on the same sweep.

    python scripts/bench_explore.py [--spec examples/explore-bench.yaml] [--workers 1 2]
                                    [--data-dir DIR] [--json PATH]

For each worker count: starts a ``LocalCluster`` of single-threaded worker processes, warms
every worker up (imports, compiled kernels) outside the timed part, runs the whole sweep into
a new empty cache folder (so every stage computes), and reports the wall time, the tasks and
the speedup over the first worker count. Goal (issue 12): >= 1.8x from 1 to 2 workers on this
2-core machine for a sweep of at least 8 points.
"""

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from hwlenet.explore import explore, load_spec, start_client, sweep_data

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "examples" / "explore-bench.yaml"


def warm_up():
    """Import the heavy modules and load the compiled kernels on a worker."""
    import numpy as np
    import torch  # noqa: F401

    from hwlenet.api import quantize
    from hwlenet.sim import simulate

    images = np.zeros((2, 28, 28), np.uint8)
    simulate(quantize("lenet5-relu", images), images)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(DEFAULT_SPEC))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    spec = load_spec(args.spec)
    data, _ = sweep_data(spec, args.data_dir)
    runs = []
    for workers in args.workers:
        root = Path(tempfile.mkdtemp(prefix=f"hwlenet-bench-explore-{workers}-"))
        client, cluster = start_client(workers=workers)
        try:
            client.run(warm_up)
            summary = explore(spec, root, data, client, progress=False)
        finally:
            client.close()
            cluster.close()
            shutil.rmtree(root, ignore_errors=True)
        if summary["failed"] or summary["cached"]:
            raise SystemExit(f"bench_explore: the sweep with {workers} workers had "
                             f"{summary['failed']} failed points and {summary['cached']} "
                             "cached tasks")
        runs.append({"workers": workers, "seconds": summary["seconds"],
                     "tasks": summary["tasks"], "points": len(summary["rows"])})
        print(f"{workers} worker{'s' if workers > 1 else ''}: {summary['seconds']:6.1f} s, "
              f"{summary['tasks']} tasks, {len(summary['rows'])} points", flush=True)
    base = runs[0]["seconds"]
    for run in runs:
        run["speedup"] = base / run["seconds"]
    print("speedup: " + ", ".join(f"{run['workers']} workers {run['speedup']:.2f}x"
                                  for run in runs[1:]))
    if args.json:
        Path(args.json).write_text(json.dumps({"spec": args.spec, "runs": runs}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
