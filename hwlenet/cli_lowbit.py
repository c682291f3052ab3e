"""``hwlenet qat`` and ``hwlenet autotune``: low-bit quantization-aware training and the
per-layer precision search.

Plain :func:`click.command` objects; the main group registers them (``main.add_command``) and
reports every :class:`~hwlenet.errors.HwlenetError` as one line ``Error: ...`` with exit 2.
"""

import click

from .cli import data_dir_option, echo_data, json_option, load_split
from .errors import HwlenetError
from .outputs import atomic_path, check_writable, write_json

__all__ = ["autotune_command", "qat_command"]


def _objectives():
    from .quant.autotune import OBJECTIVES

    return OBJECTIVES


def _resolve_bits(bits, weight_bits, act_bits):
    from .quant.quantize import validate_bits

    validate_bits("--bits", bits)
    return (validate_bits("--weight-bits", bits if weight_bits is None else weight_bits),
            validate_bits("--act-bits", bits if act_bits is None else act_bits))


@click.command("qat")
@click.argument("model", required=False, default=None)
@click.option("--bits", type=int, default=4, show_default=True,
              help="width of weights and hidden activations, 2..32")
@click.option("--weight-bits", type=int, default=None, help="weight width (default: --bits)")
@click.option("--act-bits", type=int, default=None, help="activation width (default: --bits)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="JSON file of per-layer formats (e.g. from hwlenet autotune)")
@click.option("--epochs", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Adam learning rate (default: 1e-3 at 2 bits, 5e-4 at 3, 2.5e-4 above)")
@click.option("--distill", type=click.FloatRange(min=0, max=1), default=None,
              help="weight of the distillation loss toward the float model (default: 0.5)")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--calib", type=click.IntRange(min=1), default=1000, show_default=True,
              help="number of training images for calibration")
@click.option("--train-limit", type=click.IntRange(min=1), default=None,
              help="train on the first N training images only")
@data_dir_option
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="evaluate on the first N test images only")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="QAT checkpoint to write (records its formats)")
@json_option
def qat_command(model, bits, weight_bits, act_bits, config_path, epochs, seed, lr, distill,
                batch_size, calib, train_limit, data_dir, limit, out, json_path):
    """Fine-tune MODEL with fake quantization that computes the artifact's integers exactly.

    MODEL is a checkpoint path or a shipped model: lenet5-classic (default), lenet5-classic-fc
    or lenet5-relu.
    The checkpoint written records its formats; `hwlenet quantize` on it reuses them, and the
    artifact's simulated logits equal the QAT model's own.
    """
    import numpy as np
    import torch

    from .checkpoint import resolve_model, save_checkpoint
    from .quant.qat import (choose_config, classes_of, default_lr, fake_quant_logits,
                            qat_finetune)
    from .quant.quantize import check_config, load_config

    weight_bits, act_bits = _resolve_bits(bits, weight_bits, act_bits)
    if lr is None:
        lr = default_lr(min(weight_bits, act_bits))
    check_writable(out, "--out")
    if json_path:
        check_writable(json_path, "--json")
    user_config = load_config(config_path)
    float_model, meta, label = resolve_model(model)
    check_config(user_config, float_model, config_path)
    train_split = load_split("train", data_dir, train_limit)
    test_split = load_split("test", data_dir, limit)
    echo_data(("training", train_split), ("test", test_split))
    calibration = train_split.images[:calib]
    torch.manual_seed(seed)
    try:
        config = choose_config(float_model, calibration, weight_bits, act_bits, user_config)
    except HwlenetError as error:
        if config_path is None:
            raise
        raise HwlenetError(f"{error} (with --config {config_path})") from None
    fake = qat_finetune(float_model, train_split, calibration, config, epochs=epochs,
                        seed=seed, batch_size=batch_size, lr=lr, distill=distill,
                        description=f"qat W{weight_bits}A{act_bits}")
    own = fake_quant_logits(fake, test_split.images)
    accuracy = float(np.mean(classes_of(fake.template, own) == test_split.labels))
    command = (f"hwlenet qat {label} --weight-bits {weight_bits} --act-bits {act_bits} "
               f"--epochs {epochs} --seed {seed} --lr {lr}"
               + ("" if distill is None else f" --distill {distill}") + " "
               f"--batch-size {batch_size} "
               f"--calib {calib}" + (f" --config {config_path}" if config_path else "")
               + (f" --train-limit {train_limit}" if train_limit else ""))
    new_meta = {
        "arch": float_model.arch, "source_model": label, "source_meta": meta,
        "quant_config": config, "command": command,
        "qat": {"weight_bits": weight_bits, "act_bits": act_bits, "epochs": epochs,
                "seed": seed, "lr": lr, "distill": distill, "batch_size": batch_size,
                "calibration_images": calib,
                "train_images": len(train_split)},
        "test_images": len(test_split), "test_accuracy": accuracy,
    }
    save_checkpoint(float_model, out, new_meta, option="--out")
    click.echo(f"{label}: QAT W{weight_bits}A{act_bits}, {epochs} epochs on "
               f"{len(train_split)} training images: fixed-point test accuracy {accuracy:.4f} "
               f"on {len(test_split)} images; wrote {out}")
    for name, entry in config["layers"].items():
        formats = "  ".join(f"{key} {'s' if spec['signed'] else 'u'}{spec['width']}.{spec['frac']}"
                            for key, spec in entry.items())
        click.echo(f"  {name:4} {formats}")
    click.echo(f"next: hwlenet quantize {out} --out ARTIFACT.npz (reuses these formats)")
    write_json(json_path, {"checkpoint": str(out), "model": label, **new_meta}, "--json")


@click.command("autotune")
@click.argument("model", required=False, default=None)
@click.option("--max-drop", type=click.FloatRange(min=0, max=100), required=True,
              help="largest validation-accuracy drop from float, in percentage points")
@click.option("--objective", type=click.Choice(["weight-bits", "multipliers"]),
              default="weight-bits", show_default=True)
@click.option("--qat-epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="fine-tune the chosen configuration with QAT for N epochs (needs "
                   "--out-model)")
@click.option("--out-model", type=click.Path(dir_okay=False), default=None,
              help="with --qat-epochs: the QAT checkpoint to write")
@click.option("--validation", "validation_images", type=click.IntRange(min=1), default=2000,
              show_default=True, help="training images held out to decide feasibility")
@click.option("--augmented-copies", type=click.IntRange(min=0), default=2, show_default=True,
              help="also validate on this many seeded augmentations of each held-out image")
@click.option("--calib", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="seed of the validation split (and of QAT)")
@click.option("--weight-widths", default="8,7,6,5,4,3,2", show_default=True,
              help="comma-separated weight widths to try")
@click.option("--act-widths", default="8,7,6,5,4,3,2", show_default=True,
              help="comma-separated activation widths to try ('' skips that phase)")
@data_dir_option
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="report the test accuracy on the first N test images only")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="config JSON to write (accepted by quantize, qat)")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="draw accuracy against cost of every configuration tried to this PNG")
@json_option
def autotune_command(model, max_drop, objective, qat_epochs, out_model, validation_images,
                     augmented_copies, calib, seed, weight_widths, act_widths, data_dir, limit,
                     out, plot_path, json_path):
    """Search per-layer widths of MODEL for the cheapest config within --max-drop points of
    float, on a validation split of the training data; then report the test accuracy once.
    """
    import json

    import numpy as np

    from .checkpoint import resolve_model
    from .quant.autotune import autotune, plot_search, split_validation
    from .quant.qat import classes_of
    from .quant.quantize import quantize_model
    from .sim import simulate

    weights = _widths("--weight-widths", weight_widths)
    acts = _widths("--act-widths", act_widths, allow_empty=True)
    if qat_epochs and not out_model:
        raise HwlenetError("--qat-epochs needs --out-model (the fine-tuned checkpoint)")
    for path, option in ((out, "--out"), (out_model, "--out-model"), (plot_path, "--plot"),
                         (json_path, "--json")):
        if path:
            check_writable(path, option)
    float_model, meta, label = resolve_model(model)
    train_split = load_split("train", data_dir)
    search_split, validation = split_validation(train_split, validation_images, seed,
                                                   augmented_copies)
    test_split = load_split("test", data_dir, limit)
    held = (f"training (validation: {validation_images} held out"
            + (f" and {augmented_copies} augmented copies of each)" if augmented_copies else ")"))
    echo_data(("training (search)", search_split), (held, validation), ("test", test_split))
    calibration = search_split.images[:calib]
    result = autotune(float_model, calibration, validation, max_drop, objective, weights, acts,
                      progress=True)
    config = result["config"]
    report = {key: value for key, value in result.items() if key != "evaluated"}
    if qat_epochs:
        report["qat"] = _refine(float_model, meta, label, search_split, validation, calibration,
                                config, qat_epochs, seed, out_model)
        qmodel = quantize_model(float_model, calibration, config=config)
    else:
        qmodel = quantize_model(float_model, calibration, config=config)
    test_logits = simulate(qmodel, test_split.images).logits
    test_accuracy = float(np.mean(classes_of(qmodel, test_logits) == test_split.labels))
    best, uniform = result["best"], result["uniform8"]
    report.update({"model": label, "test_accuracy": test_accuracy,
                   "test_images": len(test_split),
                   "weight_bits_fraction_of_uniform8": best["weight-bits"]
                   / uniform["weight-bits"],
                   "evaluated": result["evaluated"]})
    payload = json.dumps(config, indent=2, sort_keys=True) + "\n"
    from .outputs import write_text

    write_text(out, payload, "--out")
    if plot_path:
        with atomic_path(plot_path, "--plot") as temporary:
            with open(temporary, "wb") as handle:
                plot_search(result, handle, title=f"{label}: autotune, max drop {max_drop:g}")
    click.echo(f"{label}: {result['configurations']} configurations in "
               f"{result['seconds']:.1f} s; float {result['float_accuracy']:.4f} on "
               f"{len(validation)} validation images, chosen {best['accuracy']:.4f} "
               f"(threshold {result['threshold']:.4f})")
    fraction = report["weight_bits_fraction_of_uniform8"]
    click.echo(f"  weight bits {best['weight-bits']} ({fraction:.1%} of uniform 8-bit "
               f"{uniform['weight-bits']}), multiplier "
               f"{best['multipliers']} (uniform 8-bit {uniform['multipliers']}), activation bits "
               f"{best['activation-bits']}")
    for name, entry in config["layers"].items():
        click.echo(f"  {name:4} weight {entry['weight']['width']}.{entry['weight']['frac']}  "
                   f"output {entry['output']['width']}.{entry['output']['frac']}")
    if qat_epochs:
        click.echo(f"  QAT {qat_epochs} epochs: validation "
                   f"{report['qat']['validation_accuracy']:.4f}; wrote {out_model}")
    click.echo(f"test accuracy {test_accuracy:.4f} on {len(test_split)} images; wrote {out}"
               + (f" and {plot_path}" if plot_path else ""))
    write_json(json_path, report, "--json")


def _widths(option, text, allow_empty=False):
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts and not allow_empty:
        raise HwlenetError(f"{option} must list at least one width")
    try:
        widths = tuple(int(part) for part in parts)
    except ValueError:
        raise HwlenetError(f"{option} must be comma-separated integers, not {text!r}") from None
    if any(not 2 <= width <= 16 for width in widths):
        raise HwlenetError(f"{option} widths must be from 2 to 16, not {text!r}")
    return widths


def _refine(float_model, meta, label, search_split, validation, calibration, config, epochs,
            seed, out_model):
    """QAT of the chosen config on the search split; writes the checkpoint (its formats
    recorded); the report entry."""
    from .checkpoint import save_checkpoint
    from .quant.autotune import refine_with_qat

    accuracy = refine_with_qat(float_model, search_split, validation, calibration, config,
                               epochs, seed, progress=True)
    save_checkpoint(float_model, out_model, {
        "arch": float_model.arch, "source_model": label, "source_meta": meta,
        "quant_config": config, "qat": {"epochs": epochs, "seed": seed, "autotune": True,
                                        "train_images": len(search_split)},
        "validation_accuracy": accuracy}, option="--out-model")
    return {"epochs": epochs, "validation_accuracy": accuracy, "checkpoint": str(out_model)}
