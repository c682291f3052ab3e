"""``hwlenet qat`` and ``hwlenet autotune``: low-bit quantization-aware training and the
per-layer precision search.

Plain :func:`click.command` objects; the main group registers them (``main.add_command``) and
reports every :class:`~hwlenet.errors.HwlenetError` as one line ``Error: ...`` with exit 2.
"""

import click

from .cli import (calib_option, data_dir_option, echo_data, json_option, limit_option,
                  load_split)
from .defaults import AUGMENTED_COPIES, LR_CANDIDATES, VALIDATION_IMAGES
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


class _LearningRate(click.ParamType):
    """``--lr``: ``auto`` or a number in (0, 1]."""

    name = "auto|RATE"

    def convert(self, value, param, ctx):
        if value == "auto" or isinstance(value, float):
            return value
        try:
            rate = float(value)
        except ValueError:
            rate = None
        if rate is None or not 0 < rate <= 1:
            self.fail(f"must be 'auto' or a number in (0, 1], not {value!r}", param, ctx)
        return rate


def _validation_options(command):
    """``--validation`` and ``--augmented-copies``: the held-out part of the training data."""
    command = click.option(
        "--augmented-copies", type=click.IntRange(min=0), default=None,
        help=f"also validate on this many seeded augmentations of each held-out image "
             f"(default: {AUGMENTED_COPIES})")(command)
    return click.option(
        "--validation", "validation_images", type=click.IntRange(min=1), default=None,
        help=f"training images held out for validation (default: {VALIDATION_IMAGES}, at "
             "most a fifth of the training images)")(command)


@click.command("qat")
@click.argument("model", required=False, default=None)
@click.option("--bits", type=int, default=4, show_default=True,
              help="width of weights and hidden activations, 2..32")
@click.option("--weight-bits", type=int, default=None, help="weight width (default: --bits)")
@click.option("--act-bits", type=int, default=None, help="activation width (default: --bits)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="JSON file of per-layer formats (e.g. from hwlenet autotune)")
@click.option("--epochs", type=click.IntRange(min=0), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True,
              help="seed of training and of the validation split")
@click.option("--lr", type=_LearningRate(), default="auto", show_default=True,
              metavar="auto|RATE",
              help="Adam learning rate, or auto: fine-tune at each of "
                   f"{', '.join(f'{rate:g}' for rate in LR_CANDIDATES)} on the training "
                   "images less a held-out validation split and keep the best there (one "
                   "training per rate, each on fewer images)")
@_validation_options
@click.option("--distill", type=click.FloatRange(min=0, max=1), default=None,
              help="weight of the distillation loss toward the float model (default: 0.5)")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True)
@calib_option
@click.option("--train-limit", type=click.IntRange(min=1), default=None,
              help="train on the first N training images only")
@data_dir_option
@limit_option
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="QAT checkpoint to write (records its formats)")
@json_option
def qat_command(model, bits, weight_bits, act_bits, config_path, epochs, seed, lr,
                validation_images, augmented_copies, distill, batch_size, calib, train_limit,
                data_dir, limit, out, json_path):
    """Fine-tune MODEL with fake quantization that computes the artifact's integers exactly.

    MODEL is a checkpoint path or a shipped model: lenet5-classic (default), lenet5-classic-fc
    or lenet5-relu.
    The checkpoint written records its formats; `hwlenet quantize` on it reuses them, and the
    artifact's simulated logits equal the QAT model's own.
    """
    import numpy as np
    import torch

    from .checkpoint import resolve_model, save_checkpoint
    from .data import split_validation
    from .quant.qat import (choose_config, classes_of, fake_quant_logits, qat_finetune,
                            qat_select_lr)
    from .quant.quantize import check_config, load_config

    weight_bits, act_bits = _resolve_bits(bits, weight_bits, act_bits)
    if lr != "auto" and (validation_images is not None or augmented_copies is not None):
        raise HwlenetError("--validation and --augmented-copies need --lr auto (a fixed rate "
                           "trains on every training image)")
    augmented_copies = AUGMENTED_COPIES if augmented_copies is None else augmented_copies
    check_writable(out, "--out")
    if json_path:
        check_writable(json_path, "--json")
    user_config = load_config(config_path)
    float_model, meta, label = resolve_model(model)
    check_config(user_config, float_model, config_path)
    train_split = load_split("train", data_dir, train_limit)
    test_split = load_split("test", data_dir, limit)
    uses = [("training", train_split)]
    if lr == "auto":
        train_split, validation = split_validation(train_split, validation_images, seed,
                                                   augmented_copies)
        uses = [("training", train_split),
                (f"training ({_held_label(augmented_copies, len(validation))})", validation)]
    echo_data(*uses, ("test", test_split))
    calibration = train_split.images[:calib]
    torch.manual_seed(seed)
    try:
        config = choose_config(float_model, calibration, weight_bits, act_bits, user_config)
    except HwlenetError as error:
        if config_path is None:
            raise
        raise HwlenetError(f"{error} (with --config {config_path})") from None
    options = {"epochs": epochs, "seed": seed, "batch_size": batch_size, "distill": distill,
               "description": f"qat W{weight_bits}A{act_bits}"}
    if lr == "auto":
        fake, selection = qat_select_lr(float_model, train_split, validation, calibration,
                                        config, **options)
    else:
        fake, selection = qat_finetune(float_model, train_split, calibration, config, lr=lr,
                                       **options), {"lr": lr}
    own = fake_quant_logits(fake, test_split.images)
    accuracy = float(np.mean(classes_of(fake.template, own) == test_split.labels))
    command = (f"hwlenet qat {label} --weight-bits {weight_bits} --act-bits {act_bits} "
               f"--epochs {epochs} --seed {seed} --lr {lr}"
               + ("" if validation_images is None else f" --validation {validation_images}")
               + (f" --augmented-copies {augmented_copies}" if lr == "auto" else "")
               + ("" if distill is None else f" --distill {distill}") + " "
               f"--batch-size {batch_size} "
               f"--calib {calib}" + (f" --config {config_path}" if config_path else "")
               + (f" --train-limit {train_limit}" if train_limit else ""))
    new_meta = {
        "arch": float_model.arch, "source_model": label, "source_meta": meta,
        "quant_config": config, "command": command,
        "qat": {"weight_bits": weight_bits, "act_bits": act_bits, "epochs": epochs,
                "seed": seed, **selection, "distill": distill, "batch_size": batch_size,
                "calibration_images": calib, "train_images": len(train_split)},
        "test_images": len(test_split), "test_accuracy": accuracy,
    }
    save_checkpoint(float_model, out, new_meta, option="--out")
    if "candidates" in selection:
        tried = ", ".join(f"{rate} {score:.4f}" for rate, score in selection["candidates"].items())
        click.echo(f"learning rate {selection['lr']:g} chosen on "
                   f"{_held_label(augmented_copies, selection['validation_images'])} "
                   f"({tried})")
    click.echo(f"{label}: QAT W{weight_bits}A{act_bits}, {epochs} epochs on "
               f"{len(train_split)} training images: fixed-point test accuracy {accuracy:.4f} "
               f"on {len(test_split)} images; wrote {out}")
    for name, entry in config["layers"].items():
        formats = "  ".join(f"{key} {'s' if spec['signed'] else 'u'}{spec['width']}.{spec['frac']}"
                            for key, spec in entry.items())
        click.echo(f"  {name:4} {formats}")
    click.echo(f"next: hwlenet quantize {out} --out ARTIFACT.npz (reuses these formats)")
    write_json(json_path, {"checkpoint": str(out), "model": label, **new_meta}, "--json")


def _held_label(augmented_copies, total):
    """How a validation split of ``total`` images was made, e.g. ``validation images: 2000
    held out and 2 augmented copies of each``."""
    held = total // (augmented_copies + 1)
    return (f"validation images: {held} held out"
            + (f" and {augmented_copies} augmented copies of each" if augmented_copies
               else ""))


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
@_validation_options
@calib_option
@click.option("--seed", type=int, default=0, show_default=True,
              help="seed of the validation split (and of QAT)")
@click.option("--weight-widths", default="8,7,6,5,4,3,2", show_default=True,
              help="comma-separated weight widths to try")
@click.option("--act-widths", default="8,7,6,5,4,3,2", show_default=True,
              help="comma-separated activation widths to try ('' skips that phase)")
@data_dir_option
@limit_option
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
    from .data import split_validation
    from .quant.autotune import autotune, plot_search
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
    augmented_copies = AUGMENTED_COPIES if augmented_copies is None else augmented_copies
    search_split, validation = split_validation(train_split, validation_images, seed,
                                                augmented_copies)
    test_split = load_split("test", data_dir, limit)
    echo_data(("training (search)", search_split),
              (f"training ({_held_label(augmented_copies, len(validation))})", validation),
              ("test", test_split))
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
        click.echo(f"  QAT {qat_epochs} epochs at learning rate {report['qat']['lr']:g}: "
                   f"validation {report['qat']['validation_accuracy']:.4f}; wrote {out_model}")
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
    """QAT of the chosen config on the search split, the learning rate chosen on the
    validation split; writes the checkpoint (its formats recorded); the report entry."""
    from .checkpoint import save_checkpoint
    from .quant.autotune import refine_with_qat

    selection = refine_with_qat(float_model, search_split, validation, calibration, config,
                                epochs, seed, progress=True)
    save_checkpoint(float_model, out_model, {
        "arch": float_model.arch, "source_model": label, "source_meta": meta,
        "quant_config": config, "qat": {"epochs": epochs, "seed": seed, "autotune": True,
                                        **selection},
        "validation_accuracy": selection["validation_accuracy"]}, option="--out-model")
    return {"epochs": epochs, **selection, "checkpoint": str(out_model)}
