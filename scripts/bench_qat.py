#!/usr/bin/env python3
"""Low-bit accuracy on the MNIST test set: post-training quantization against QAT.

    python scripts/bench_qat.py --data-dir DIR [--epochs 8] [--json bench_qat.json]
        [--checkpoints FOLDER]

For each shipped model and uniform width (W4A4, W3A3, W2A2: weights and hidden activations at
the width, uint8 pixels, wide logits) it fine-tunes the float checkpoint with
:func:`hwlenet.quant.qat.qat_finetune` on the training split, quantizes the result with the
formats QAT recorded, and runs the bit-accurate simulator on the whole test set. It prints a
Markdown table (float, PTQ as ``hwlenet quantize --bits B`` gives it, QAT as simulated, the QAT
model's own evaluation, their class agreement and whether the logits are bit-identical, the
issue's goal) and writes the rows as JSON.
"""

import argparse
import json
import time

import numpy as np
import torch

from hwlenet.checkpoint import resolve_model, save_checkpoint
from hwlenet.data import load_mnist
from hwlenet.quant.qat import (choose_config, classes_of, default_lr, fake_quant_logits,
                               qat_finetune)
from hwlenet.quant.quantize import quantize_model
from hwlenet.sim import simulate
from hwlenet.train import evaluate_model

#: The issue's goals (test accuracy, percent) per model and width; None: report only.
GOALS = {("lenet5-relu", 4): 99.0, ("lenet5-relu", 3): 98.9, ("lenet5-relu", 2): 98.3,
         ("lenet5-classic", 4): 98.6, ("lenet5-classic", 3): 98.3, ("lenet5-classic", 2): None,
         ("lenet5-classic-fc", 4): 98.6, ("lenet5-classic-fc", 3): 98.3,
         ("lenet5-classic-fc", 2): None}
def learning_rates(text):
    """``--lr``: one rate for every width, or ``BITS:RATE`` pairs (e.g. ``4:2.5e-4,2:1e-3``);
    widths not named keep :func:`hwlenet.quant.qat.default_lr`."""
    if ":" not in text:
        return {bits: float(text) for bits in range(2, 33)}
    rates = {bits: default_lr(bits) for bits in range(2, 33)}
    for pair in text.split(","):
        bits, rate = pair.split(":")
        rates[int(bits)] = float(rate)
    return rates


def run(name, bits, args, train, test, calibration):
    model = resolve_model(name)[0]
    float_accuracy = evaluate_model(model, test)
    ptq = quantize_model(model, calibration, bits, bits)
    ptq_accuracy = float(np.mean(simulate(ptq, test.images).classes == test.labels))
    start = time.perf_counter()
    config = choose_config(model, calibration, bits, bits)
    lr = args.lr[bits]
    fake = qat_finetune(model, train, calibration, config, epochs=args.epochs, seed=args.seed,
                        lr=lr, distill=args.distill, description=f"qat {name} W{bits}A{bits}")
    seconds = time.perf_counter() - start
    own = fake_quant_logits(fake, test.images)
    simulated = simulate(fake.template, test.images)
    own_classes = classes_of(fake.template, own)
    sim_classes = classes_of(fake.template, simulated.logits)
    if args.checkpoints:
        save_checkpoint(model, f"{args.checkpoints}/{name}-w{bits}a{bits}.pt",
                        {"arch": model.arch, "quant_config": config,
                         "qat": {"epochs": args.epochs, "seed": args.seed, "lr": lr,
                                 "distill": args.distill,
                                 "weight_bits": bits, "act_bits": bits}})
    return {
        "model": name, "bits": bits, "epochs": args.epochs, "seed": args.seed, "lr": lr,
        "float_accuracy": float_accuracy, "ptq_accuracy": ptq_accuracy,
        "qat_accuracy": float(np.mean(sim_classes == test.labels)),
        "qat_own_accuracy": float(np.mean(own_classes == test.labels)),
        "agreement": float(np.mean(own_classes == sim_classes)),
        "bit_identical": bool(np.array_equal(own, simulated.logits)),
        "goal": GOALS.get((name, bits)), "qat_seconds": round(seconds, 1),
        "distill": args.distill,
        "config": config,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--models", nargs="+",
                        default=["lenet5-relu", "lenet5-classic", "lenet5-classic-fc"])
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 3, 2])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--lr", type=learning_rates,
                        default={bits: default_lr(bits) for bits in range(2, 33)},
                        help="one rate, or BITS:RATE pairs (default: 2:1e-3,3:5e-4, 2.5e-4 "
                             "above)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill", type=float, default=None,
                        help="weight of the distillation loss toward the float model (default: "
                             "0.5)")
    parser.add_argument("--calib", type=int, default=1000)
    parser.add_argument("--checkpoints", default=None, help="folder for the QAT checkpoints")
    parser.add_argument("--json", default="bench_qat.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = load_mnist("train", args.data_dir)
    test = load_mnist("test", args.data_dir)
    calibration = train.images[: args.calib]
    rows = []
    print("| model | W/A bits | float | PTQ | QAT (simulated) | QAT own eval | agreement | "
          "bit-identical | goal | QAT time |\n| --- | --- | --- | --- | --- | --- | --- | --- | "
          "--- | --- |", flush=True)
    for name in args.models:
        for bits in args.bits:
            row = run(name, bits, args, train, test, calibration)
            rows.append(row)
            goal = "report" if row["goal"] is None else (
                f">= {row['goal']}% " + ("met" if 100 * row["qat_accuracy"] >= row["goal"]
                                         else "MISSED"))
            print(f"| {name} | W{bits}A{bits} | {row['float_accuracy']:.2%} | "
                  f"{row['ptq_accuracy']:.2%} | {row['qat_accuracy']:.2%} | "
                  f"{row['qat_own_accuracy']:.2%} | {row['agreement']:.2%} | "
                  f"{'yes' if row['bit_identical'] else 'NO'} | {goal} | "
                  f"{row['qat_seconds']:.0f} s |", flush=True)
            with open(args.json, "w") as handle:
                json.dump({"test_images": len(test), "train_images": len(train), "rows": rows},
                          handle, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
