#!/usr/bin/env python3
"""Verilator co-simulation throughput on the whole MNIST test set.

    python scripts/bench_cosim.py --data-dir DIR [--model lenet5-relu] [--images 10000]
                                  [--array 8x8] [--jobs 2] [--out build-bench] [--json PATH]

Quantizes the model at 8 bits, exports it with --images test vectors, builds the Verilator
bench and checks every image; prints images/s (simulation only) and the build time.
"""

import argparse
import json
import time

from hwlenet.checkpoint import resolve_model
from hwlenet.data import load_mnist
from hwlenet.quant.quantize import quantize_model
from hwlenet.verify.cosim import run_cosim
from hwlenet.verify.emit import emit_verilog
from hwlenet.rtl.plan import parse_array


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", default="lenet5-relu")
    parser.add_argument("--images", type=int, default=10000)
    parser.add_argument("--array", default="8x8")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="build-bench")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows, cols = parse_array(args.array)
    test = load_mnist("test", args.data_dir).head(args.images)
    qmodel = quantize_model(resolve_model(args.model)[0],
                            load_mnist("train", args.data_dir).images[:1000])
    start = time.perf_counter()
    emit_verilog(qmodel, args.out, rows, cols, test.images)
    export_seconds = time.perf_counter() - start
    report = run_cosim(args.out, "verilator", len(test), jobs=args.jobs)
    report["export_seconds"] = export_seconds
    print(f"{args.model} {args.array}: {report['images']} images, {report['mismatches']} "
          f"mismatches, bit-exact {report['bit_exact']}; simulation {report['seconds']:.1f} s "
          f"= {report['images_per_second']:.1f} images/s with {args.jobs} processes; build "
          f"{report['build_seconds']:.1f} s, export {export_seconds:.1f} s; "
          f"{report['cycles_per_image']:.1f} cycles/image (analytic "
          f"{report['analytic_cycles_per_image']:.1f})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)
    return 0 if report["bit_exact"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
