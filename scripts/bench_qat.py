#!/usr/bin/env python3
"""Low-bit accuracy on the MNIST test set: post-training quantization against QAT.

    python scripts/bench_qat.py --data-dir DIR [--epochs 8] [--lr auto] [--json bench_qat.json]
        [--checkpoints FOLDER]

For each shipped model and uniform width (W4A4, W3A3, W2A2: weights and hidden activations at
the width, uint8 pixels, wide logits) it fine-tunes the float checkpoint as ``hwlenet qat``
does: :func:`hwlenet.quant.qat.qat_select_lr` trains at each candidate learning rate on the
training images less a held-out validation split (2,000 images and two augmentations of each)
and keeps the rate with the best validation accuracy, so the test set decides nothing (with one
``--lr`` rate it trains on every training image at that rate). It then quantizes the result
with the formats QAT recorded and runs the bit-accurate simulator on the whole test set. It
prints a Markdown table (float; PTQ as ``hwlenet quantize --bits B`` gives it; QAT as
simulated; the rate chosen and every candidate's validation accuracy; the class agreement of
the QAT model's own evaluation with the simulator and whether their logits are bit-identical;
the issue's goal) and writes the rows as JSON.
"""

import argparse
import json
import time

import numpy as np
import torch

from hwlenet.checkpoint import resolve_model, save_checkpoint
from hwlenet.data import load_mnist, split_validation
from hwlenet.defaults import AUGMENTED_COPIES, LR_CANDIDATES, VALIDATION_IMAGES
from hwlenet.quant.qat import (choose_config, classes_of, fake_quant_logits, qat_finetune,
                               qat_select_lr)
from hwlenet.quant.quantize import quantize_model
from hwlenet.sim import simulate
from hwlenet.train import evaluate_model

#: The issue's goals (test accuracy, percent) per model and width; None: report only.
GOALS = {("lenet5-relu", 4): 99.0, ("lenet5-relu", 3): 98.9, ("lenet5-relu", 2): 98.3,
         ("lenet5-classic", 4): 98.6, ("lenet5-classic", 3): 98.3, ("lenet5-classic", 2): None,
         ("lenet5-classic-fc", 4): 98.6, ("lenet5-classic-fc", 3): 98.3,
         ("lenet5-classic-fc", 2): None}
def learning_rates(text):
    """``--lr``: ``auto`` (chosen per row on the validation split), one fixed rate for every
    row (trained on every training image), or a comma-separated list of candidate rates to
    choose from on the validation split."""
    if text == "auto":
        return LR_CANDIDATES
    rates = tuple(float(part) for part in text.split(","))
    if any(not rate > 0 for rate in rates):
        raise argparse.ArgumentTypeError(f"learning rates must be positive, not {text!r}")
    return rates


def run(name, bits, args, train, test):
    model = resolve_model(name)[0]
    float_accuracy = evaluate_model(model, test)
    ptq = quantize_model(model, train.images[: args.calib], bits, bits)
    ptq_accuracy = float(np.mean(simulate(ptq, test.images).classes == test.labels))
    start = time.perf_counter()
    options = {"epochs": args.epochs, "seed": args.seed, "distill": args.distill,
               "description": f"qat {name} W{bits}A{bits}"}
    if len(args.lr) == 1:  # a fixed rate: every training image, as hwlenet qat --lr RATE
        calibration = train.images[: args.calib]
        config = choose_config(model, calibration, bits, bits)
        fake = qat_finetune(model, train, calibration, config, lr=args.lr[0], **options)
        selection = {"lr": args.lr[0], "candidates": {}}
    else:
        search, validation = split_validation(train, args.validation, args.seed,
                                              args.augmented_copies)
        calibration = search.images[: args.calib]
        config = choose_config(model, calibration, bits, bits)
        fake, selection = qat_select_lr(model, search, validation, calibration, config,
                                        candidates=args.lr, **options)
    seconds = time.perf_counter() - start
    own = fake_quant_logits(fake, test.images)
    simulated = simulate(fake.template, test.images)
    own_classes = classes_of(fake.template, own)
    sim_classes = classes_of(fake.template, simulated.logits)
    if args.checkpoints:
        save_checkpoint(model, f"{args.checkpoints}/{name}-w{bits}a{bits}.pt",
                        {"arch": model.arch, "quant_config": config,
                         "qat": {"epochs": args.epochs, "seed": args.seed, **selection,
                                 "distill": args.distill,
                                 "weight_bits": bits, "act_bits": bits}})
    return {
        "model": name, "bits": bits, "epochs": args.epochs, "seed": args.seed,
        "selection": selection, "lr": selection["lr"],
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
    parser.add_argument("--lr", type=learning_rates, default=LR_CANDIDATES,
                        help="auto (default: the best of hwlenet.defaults.LR_CANDIDATES on the "
                             "validation split), or comma-separated candidates (one: a fixed "
                             "rate)")
    parser.add_argument("--validation", type=int, default=VALIDATION_IMAGES,
                        help="training images held out to choose the rate")
    parser.add_argument("--augmented-copies", type=int, default=AUGMENTED_COPIES)
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
    rows = []
    print("| model | W/A bits | float | PTQ | QAT (simulated) | lr (validation) | agreement | "
          "bit-identical | goal | QAT time |\n| --- | --- | --- | --- | --- | --- | --- | --- | "
          "--- | --- |", flush=True)
    for name in args.models:
        for bits in args.bits:
            row = run(name, bits, args, train, test)
            rows.append(row)
            goal = "report" if row["goal"] is None else (
                f">= {row['goal']}% " + ("met" if 100 * row["qat_accuracy"] >= row["goal"]
                                         else "MISSED"))
            tried = ", ".join(f"{rate}: " + ("diverged" if accuracy is None else
                                             f"{accuracy:.2%}")
                              for rate, accuracy in row["selection"]["candidates"].items())
            print(f"| {name} | W{bits}A{bits} | {row['float_accuracy']:.2%} | "
                  f"{row['ptq_accuracy']:.2%} | {row['qat_accuracy']:.2%} | "
                  f"{row['lr']:g} ({tried}) | {row['agreement']:.2%} | "
                  f"{'yes' if row['bit_identical'] else 'NO'} | {goal} | "
                  f"{row['qat_seconds']:.0f} s |", flush=True)
            with open(args.json, "w") as handle:
                json.dump({"test_images": len(test), "train_images": len(train), "rows": rows},
                          handle, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
