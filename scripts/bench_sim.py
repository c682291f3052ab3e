#!/usr/bin/env python3
"""Throughput of the bit-accurate numba simulator against torch's float forward, in one run.

    python scripts/bench_sim.py --data-dir DIR [--model lenet5-classic] [--bits 8] [--json PATH]

Both run on the whole test set in batches of 1000 after a warm-up (JIT compile, first calls);
each figure is the best of --repeat runs.
"""

import argparse
import json
import os
import time

import torch

from hwlenet.checkpoint import resolve_model
from hwlenet.data import load_mnist
from hwlenet.quant.quantize import quantize_model
from hwlenet.sim import simulate


def best_rate(run, images, repeat):
    run(images[:1000])
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for first in range(0, len(images), 1000):
            run(images[first : first + 1000])
        times.append(time.perf_counter() - start)
    return len(images) / min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--model", action="append")
    parser.add_argument("--bits", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    test = load_mnist("test", args.data_dir)
    calibration = load_mnist("train", args.data_dir).images[:1000]
    rows = []
    for name in args.model or ["lenet5-classic", "lenet5-relu"]:
        model = resolve_model(name)[0]
        qmodel = quantize_model(model, calibration, args.bits, args.bits)

        def float_forward(batch):
            with torch.no_grad():
                model(torch.from_numpy(batch).float().unsqueeze(1))

        torch_rate = best_rate(float_forward, test.images, args.repeat)
        sim_rate = best_rate(lambda batch: simulate(qmodel, batch, chunk=1000), test.images,
                             args.repeat)
        rows.append({"model": name, "bits": args.bits, "sim_images_per_s": sim_rate,
                     "torch_float_images_per_s": torch_rate, "ratio": sim_rate / torch_rate})
        print(f"{name} W{args.bits}A{args.bits}: simulator {sim_rate:,.0f} images/s, torch float "
              f"{torch_rate:,.0f} images/s, ratio {sim_rate / torch_rate:.2f} "
              f"(torch threads {torch.get_num_threads()}, cores {os.cpu_count()})")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
