#!/usr/bin/env python3
"""End-to-end co-simulation time on the whole MNIST test set: export with vectors, Verilator
build and simulation, with the breakdown.

    python scripts/bench_cosim.py --data-dir DIR [--model lenet5-relu] [--images 10000]
                                  [--array 8x8] [--jobs 2] [--out DIR] [--json PATH]

Quantizes the model at 8 bits (outside the timed part), then times: writing the design and
bench sources, computing and writing the vectors while Verilator builds the bench in the
background (as a user's machine can), waiting for that build, and the simulation of every
image; prints each phase and the end-to-end wall time, and the simulator processes' CPU time
(the simulation is split over ``--jobs`` processes on consecutive images, so its wall time is
that CPU time over the cores it gets). The export goes to ``--out``, by default a new temporary
folder (never into the source tree), whose path is printed.
"""

import argparse
import json
import resource
import tempfile
import threading
import time

from hwlenet.checkpoint import resolve_model
from hwlenet.data import load_mnist
from hwlenet.quant.quantize import quantize_model
from hwlenet.rtl.plan import parse_array
from hwlenet.verify.cosim import build_bench, run_cosim
from hwlenet.verify.emit import emit_verilog


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default="lenet5-relu")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--array", default="8x8")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default=None,
                        help="export folder (default: a new temporary folder)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.out is None:
        args.out = tempfile.mkdtemp(prefix="hwlenet-bench-cosim-")
    rows, cols = parse_array(args.array)
    test = load_mnist("test", args.data_dir).head(args.images)
    qmodel = quantize_model(resolve_model(args.model)[0],
                            load_mnist("train", args.data_dir).images[:1000])
    marks = {}
    build = {}

    def start_build(directory):
        marks["design"] = time.perf_counter()

        def run():
            build["error"] = None
            try:
                build_bench(directory, "verilator")
            except Exception as error:  # reported after the export finishes
                build["error"] = error
            build["done"] = time.perf_counter()

        build["thread"] = threading.Thread(target=run)
        build["thread"].start()

    start = time.perf_counter()
    emit_verilog(qmodel, args.out, rows, cols, test.images, design_ready=start_build)
    exported = time.perf_counter()
    build["thread"].join()
    if build["error"]:
        raise build["error"]
    built = time.perf_counter()
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = run_cosim(args.out, "verilator", len(test), jobs=args.jobs)
    end = time.perf_counter()
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    simulation_cpu = ((children_after.ru_utime + children_after.ru_stime)
                      - (children_before.ru_utime + children_before.ru_stime))
    report.update({
        "design_seconds": marks["design"] - start,
        "vectors_seconds": exported - marks["design"],
        "build_seconds_background": build["done"] - marks["design"],
        "build_wait_seconds": built - exported,
        "end_to_end_seconds": end - start,
        "simulation_cpu_seconds": simulation_cpu,
        "cycles_per_cpu_second": report["cycles"] / simulation_cpu if simulation_cpu else None,
    })
    print(f"{args.model} {args.array}, {report['images']} images, {args.jobs} processes: "
          f"{report['mismatches']} mismatches, bit-exact {report['bit_exact']}, "
          f"{report['cycles_per_image']:.1f} cycles/image (model "
          f"{report['predicted_cycles']} = run {report['cycles']})")
    print(f"  design + bench sources {report['design_seconds']:6.1f} s")
    print(f"  vectors                {report['vectors_seconds']:6.1f} s   (Verilator build "
          f"{report['build_seconds_background']:.1f} s meanwhile)")
    print(f"  waiting for the build  {report['build_wait_seconds']:6.1f} s")
    print(f"  simulation             {report['seconds']:6.1f} s   "
          f"({report['images_per_second']:.0f} images/s; {simulation_cpu:.1f} CPU-seconds, "
          f"{report['cycles_per_cpu_second'] / 1e3:.0f}k cycles per CPU-second)")
    print(f"  end to end             {report['end_to_end_seconds']:6.1f} s")
    print(f"  export in {args.out}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0 if report["bit_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
