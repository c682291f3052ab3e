#!/usr/bin/env python3
"""Fixed-point accuracy against bit width (weights = activations) for the shipped models.

    python scripts/sweep_bits.py --data-dir DIR [--bits 4 5 6 8 10] [--plot sweep.png] [--json]

Prints a Markdown table and draws accuracy against bits.
"""

import argparse
import json

from hwlenet.checkpoint import resolve_model
from hwlenet.data import load_mnist
from hwlenet.plots import plot_accuracy_sweep
from hwlenet.quant.quantize import quantize_model
from hwlenet.sim import compare_with_float


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 5, 6, 7, 8, 10, 12])
    parser.add_argument("--calib", type=int, default=1000)
    parser.add_argument("--plot", default="sweep_bits.png")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    test = load_mnist("test", args.data_dir)
    calibration = load_mnist("train", args.data_dir).images[: args.calib]
    rows = []
    print("| model | bits | float | fixed | agreement |\n| --- | --- | --- | --- | --- |")
    for name in ("lenet5-classic", "lenet5-relu"):
        model = resolve_model(name)[0]
        for bits in args.bits:
            report = compare_with_float(quantize_model(model, calibration, bits, bits),
                                        test.images, test.labels)
            rows.append({"model": name, "bits": bits, **{k: report[k] for k in (
                "float_accuracy", "fixed_accuracy", "agreement")}})
            print(f"| {name} | {bits} | {report['float_accuracy']:.2%} | "
                  f"{report['fixed_accuracy']:.2%} | {report['agreement']:.2%} |", flush=True)
    plot_accuracy_sweep(rows, args.plot)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
