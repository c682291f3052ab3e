"""Quantization-aware training whose forward pass *is* the artifact's integer pipeline.

Formats
-------
The formats are chosen once, before training, and then frozen (:func:`choose_config`):
:func:`~hwlenet.quant.quantize.quantize_model` picks every format of the float checkpoint as
``hwlenet quantize`` does (weights and activations fitted to their calibrated range, tables,
wide logits), then the fractional bits of each layer's weights and hidden outputs are moved to
the value, at least the fitted one, that minimises the squared quantization error of the float
weights and of the float activations on the calibration images (at 2 to 4 bits a max-abs fit
rounds most weights to zero). The result is a complete per-layer config in exactly the
structure ``hwlenet quantize --config`` accepts; it is stored in the QAT checkpoint's
``meta["quant_config"]`` and :func:`config_from_checkpoint` returns it, so quantizing the
checkpoint reproduces every format.

Forward
-------
:class:`FakeQuantModel` runs the artifact's layer list (one function per layer kind and per
activation), on integer-valued float64 tensors, exactly as the module docstring of
:mod:`hwlenet.quant.artifact` states the semantics: weights and biases are the float
parameters, folded as the quantizer folds them and rounded with their format's rounding and
overflow modes; accumulators are exact integer sums (float64 is exact below ``2**53``, which
:func:`FakeQuantModel.check_exact` enforces); requantization uses the target format's rounding
(``floor``, ``half_up``, ``half_even``) and saturation or wrap; tanh layers index the
artifact's table; max-pooling takes the maximum. Gradients pass straight through every rounding
(masked where a value saturates) and through the table by the derivative of the scaled tanh.
The logits it returns are therefore bit-identical to ``hwlenet simulate`` of the artifact that
``quantize_model(trained_model, ..., config=qat_config)`` produces. Classes follow the
artifact's output rule (``argmax`` of logits, ``argmin`` of the classic model's RBF penalties,
whose fixed codes the forward pass takes from the artifact).

Training
--------
:func:`qat_finetune`: Adam, cosine-decayed learning rate, augmented batches rounded to integer
pixels, cross-entropy plus distillation toward the float model; seeded, reproducible on CPU.
:func:`qat_select_lr` (``hwlenet qat --lr auto``, the default) chooses the learning rate on a
validation split held out of the training images: it fine-tunes a copy of the model at each of
:data:`hwlenet.defaults.LR_CANDIDATES` on the rest and keeps the one whose fixed-point
validation accuracy is highest. The test set plays no part in any choice.
"""

import copy
import math

import numpy as np
import torch
from torch.nn import functional as F

from ..defaults import LR_CANDIDATES
from ..errors import HwlenetError
from ..models import MNIST_MEAN, MNIST_STD, TANH_AMPLITUDE, TANH_SLOPE
from .quantize import check_config, check_config_structure, quantize_model

__all__ = [
    "FakeQuantModel",
    "QatDiverged",
    "choose_config",
    "classes_of",
    "config_from_checkpoint",
    "config_of",
    "fake_quant_logits",
    "output_rule",
    "qat_finetune",
    "qat_select_lr",
]

#: Float64 holds every integer below this magnitude exactly; accumulators must stay below it.
EXACT_LIMIT = 1 << 52
#: How many fractional bits beyond the range-fitted value the format choice tries.
EXTRA_FRAC = 4
#: The weight of the distillation loss (see :func:`qat_finetune`).
DEFAULT_DISTILL = 0.5


# --------------------------------------------------------------------------------------------
# Formats


def config_of(qmodel):
    """The complete per-layer config (``--config`` structure) that reproduces ``qmodel``'s
    formats: every weighted layer's ``weight``, ``bias``, ``output`` and (tanh) ``pre``."""
    layers = {}
    for layer in qmodel.layers:
        if not layer.has_weights or _is_fixed(layer):
            continue
        entry = {"weight": layer.weight_format.to_dict(), "bias": layer.bias_format.to_dict(),
                 "output": layer.output_format.to_dict()}
        if layer.pre_format is not None:
            entry["pre"] = layer.pre_format.to_dict()
        layers[layer.name] = entry
    return {"layers": layers}


def _is_fixed(layer):
    """Whether a weighted layer's formats and weights follow from the rest of the model (the
    classic model's RBF output, which carries its codes) and so take no config."""
    return getattr(layer, "codes", None) is not None


def _quantization_error(values, fmt_dict, frac):
    """Mean squared error of ``values`` quantized with ``fmt_dict`` at ``frac`` fractional bits."""
    from .fixed import FixedFormat

    fmt = FixedFormat(**{**fmt_dict, "frac": frac})
    return float(np.mean((fmt.to_float(fmt.quantize(values)) - values) ** 2))


def _best_frac(values, fmt_dict):
    """The fractional bits, from the fitted ones up, with the least squared error on ``values``
    (the fewest on ties)."""
    fitted = fmt_dict["frac"]
    errors = [(_quantization_error(values, fmt_dict, frac), frac)
              for frac in range(fitted, fitted + EXTRA_FRAC + 1)]
    return min(errors)[1]


def choose_config(model, calibration_images, weight_bits=8, act_bits=8, config=None,
                  rounding="half_up", overflow="saturate"):
    """Every format of a QAT run, as a complete ``--config`` dict (see the module docstring).

    Parameters
    ----------
    model : LeNet5Classic or LeNet5Relu
        The float model whose weights and activations set the ranges.
    calibration_images : numpy.ndarray of uint8, shape (N, 28, 28)
    weight_bits, act_bits : int
        Widths of weights and hidden activations (logits keep their wide format).
    config : dict, optional
        User overrides (``--config`` structure): a spec that gives ``frac`` keeps it; a spec
        that gives only a width gets the error-minimising fractional bits of that width.
    rounding, overflow : str
        Modes of every format the config does not set.

    Returns
    -------
    dict
        ``{"layers": {name: {"weight": spec, "bias": spec, "output": spec[, "pre": spec]}}}``.
    """
    check_config(config, model)
    user = (config or {}).get("layers", {})
    fitted = quantize_model(model, calibration_images, weight_bits, act_bits, rounding,
                            overflow, config=config)
    from .quantize import _folded_layers

    weights = {spec[0]: spec[2] for spec in _folded_layers(model)}
    with torch.no_grad():
        trace = model.forward_trace(torch.from_numpy(calibration_images).float().unsqueeze(1))
    chosen = {}
    last = fitted.layers[-1].name
    for layer in fitted.layers:
        if not layer.has_weights or _is_fixed(layer):
            continue
        entry = {key: dict(spec) for key, spec in user.get(layer.name, {}).items()}
        if "frac" not in entry.get("weight", {}):
            fmt = layer.weight_format.to_dict()
            entry["weight"] = {**fmt, "frac": _best_frac(weights[layer.name], fmt)}
        if layer.name != last and "frac" not in entry.get("output", {}):
            fmt = layer.output_format.to_dict()
            activations = trace[layer.name].double().numpy().ravel()
            entry["output"] = {**fmt, "frac": _best_frac(activations, fmt)}
        chosen[layer.name] = entry
    final = quantize_model(model, calibration_images, weight_bits, act_bits, rounding, overflow,
                           config={"layers": chosen})
    return config_of(final)


def config_from_checkpoint(meta):
    """The per-layer formats a QAT checkpoint recorded (``meta["quant_config"]``), checked as
    ``--config`` files are; ``{}`` for a checkpoint without them (plain float training).

    Raises
    ------
    HwlenetError
        When the recorded config is malformed.
    """
    config = meta.get("quant_config") if isinstance(meta, dict) else None
    if config is None:
        return {}
    return check_config_structure(config, "the checkpoint's quant_config")


# --------------------------------------------------------------------------------------------
# Integer operations with straight-through gradients


def _round(scaled, rounding):
    if rounding == "floor":
        return torch.floor(scaled)
    if rounding == "half_up":
        return torch.floor(scaled + 0.5)
    return torch.round(scaled)  # half to even


def _fit(integers, fmt):
    if fmt.overflow == "saturate":
        return integers.clamp(fmt.min_int, fmt.max_int)
    return torch.remainder(integers - fmt.min_int, float(1 << fmt.width)) + fmt.min_int


class _ToFormat(torch.autograd.Function):
    """``scaled`` (a real number of LSBs of ``fmt``) rounded and fitted into ``fmt``; the
    gradient passes straight through, zero where the value saturated."""

    @staticmethod
    def forward(ctx, scaled, fmt):
        if fmt.overflow == "saturate":
            ctx.save_for_backward((scaled >= fmt.min_int - 0.5) & (scaled <= fmt.max_int + 0.5))
        else:
            ctx.save_for_backward(None)
        return _fit(_round(scaled, fmt.rounding), fmt)

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return (grad if inside is None else grad * inside), None


class _TableLookup(torch.autograd.Function):
    """``lut[index - offset]``; the gradient is that of the table's function ``table_slope``
    (output LSBs per index LSB, as a tensor like ``index``)."""

    @staticmethod
    def forward(ctx, index, lut, offset, slope):
        ctx.save_for_backward(slope)
        return lut[(index - offset).long()]

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None, None


def _tanh_slope(index, pre_format, output_format):
    """d(output integer)/d(index integer) of ``1.7159 tanh(2/3 x)`` in these formats."""
    x = index * pre_format.lsb
    derivative = TANH_AMPLITUDE * TANH_SLOPE * (1 - torch.tanh(TANH_SLOPE * x) ** 2)
    return derivative * pre_format.lsb / output_format.lsb


def to_format(values_in_lsbs, fmt):
    """Integers of ``fmt`` (as float64) from real numbers of its LSBs, with the format's
    rounding and overflow; straight-through gradient."""
    return _ToFormat.apply(values_in_lsbs, fmt)


def requantize(acc, acc_frac, fmt):
    """The artifact's ``requantize``: ``acc`` (integers with ``acc_frac`` fractional bits)
    into ``fmt``, exactly, as float64 integers; straight-through gradient."""
    return to_format(acc * math.ldexp(1.0, fmt.frac - acc_frac), fmt)


# --------------------------------------------------------------------------------------------
# The forward pass


def float_parameters(model):
    """The float weight and bias of every weighted layer, as float64 tensors in the artifact's
    layout and with the input normalisation folded into ``c1``, exactly as
    :func:`~hwlenet.quant.quantize.quantize_model` folds them (gradients flow to ``model``).

    Returns
    -------
    dict
        Layer name to ``(weight, bias)``.
    """
    c1_w = model.c1.weight.double() / (255.0 * MNIST_STD)
    c1_b = (model.c1.bias.double()
            - (MNIST_MEAN / MNIST_STD) * model.c1.weight.double().sum(dim=(1, 2, 3)))
    params = {"c1": (c1_w, c1_b)}
    if model.arch.startswith("classic"):
        params.update({
            "s2": (model.s2.coefficient.double(), model.s2.bias.double()),
            "c3": (model.c3.full_weight().double(), model.c3.bias.double()),
            "s4": (model.s4.coefficient.double(), model.s4.bias.double()),
            "c5": (model.c5.weight.double().reshape(model.c5.weight.shape[0], -1),
                   model.c5.bias.double()),
        })
        names = ("f6", "out")
    else:
        params["c3"] = (model.c3.weight.double(), model.c3.bias.double())
        names = ("fc1", "fc2", "out")
    for name in names:
        module = getattr(model, name)
        if isinstance(getattr(module, "weight", None), torch.nn.Parameter):
            params[name] = (module.weight.double(), module.bias.double())
    return params  # a layer without trainable weights (an RBF output) keeps the artifact's


def _accumulate(layer, x, weight, bias):
    """``acc`` of a weighted layer (bias included), exact integers."""
    aligned = bias * float(1 << layer.bias_shift)
    if layer.kind == "conv":
        return F.conv2d(x, weight, padding=layer.padding) + aligned.view(1, -1, 1, 1)
    if layer.kind == "dense":
        return x.flatten(1) @ weight.t() + aligned
    if layer.kind == "subsample":
        block = F.avg_pool2d(x, 2) * 4.0  # the exact 2x2 sum (division by 4 is exact)
        return block * weight.view(1, -1, 1, 1) + aligned.view(1, -1, 1, 1)
    raise HwlenetError(f"layer {layer.name}: QAT has no rule for a {layer.kind} layer")


def _finish_none(layer, acc):
    return requantize(acc, layer.acc_frac, layer.output_format)


def _finish_relu(layer, acc):
    return requantize(torch.relu(acc), layer.acc_frac, layer.output_format)


def _finish_tanh(layer, acc):
    pre, out = layer.pre_format, layer.output_format
    index = requantize(acc, layer.acc_frac, pre)
    lut = torch.from_numpy(layer.lut.astype(np.float64))
    slope = _tanh_slope(index.detach(), pre, out)
    return _TableLookup.apply(index, lut, pre.min_int, slope)


#: One function per activation: accumulator to the layer's output integers.
FINISH = {"none": _finish_none, "relu": _finish_relu, "tanh": _finish_tanh}


class QatDiverged(HwlenetError):
    """Raised by :func:`qat_finetune` when training drove a parameter to NaN or infinity."""


class FakeQuantModel(torch.nn.Module):
    """A float model seen through a quantized artifact's formats.

    Parameters
    ----------
    model : LeNet5Classic or LeNet5Relu
        Its parameters are trained; the module holds it as ``model``.
    template : QuantizedModel
        The artifact of ``model`` under the QAT formats: its layer list, formats, tables and
        shifts define the forward pass. A weighted layer that ``model`` has no float parameters
        for keeps the template's integer weights (fixed layers).
    """

    def __init__(self, model, template):
        super().__init__()
        self.model = model
        self.template = template
        self.check_exact()

    def check_exact(self):
        """Raise :class:`HwlenetError` when a layer's accumulator could reach ``2**52`` for
        some weights of its format (float64 would then round)."""
        for layer in self.template.layers:
            if not layer.has_weights:
                continue
            w = layer.weight_format.max_abs_int
            fan = 4 if layer.kind == "subsample" else int(np.prod(layer.weight.shape[1:]))
            b = layer.bias_format.max_abs_int << layer.bias_shift
            if fan * w * layer.input_format.max_abs_int + b >= EXACT_LIMIT:
                raise HwlenetError(f"layer {layer.name}: formats too wide for exact QAT "
                                   "(accumulators could reach 2**52)")

    def integer_weights(self):
        """Layer name to ``(weight, bias)`` integers of their formats (float64, with
        straight-through gradients to the float parameters)."""
        params = float_parameters(self.model)
        result = {}
        for layer in self.template.layers:
            if not layer.has_weights:
                continue
            if layer.name in params:
                weight, bias = params[layer.name]
                result[layer.name] = (
                    to_format(weight * math.ldexp(1.0, layer.weight_format.frac),
                              layer.weight_format),
                    to_format(bias * math.ldexp(1.0, layer.bias_format.frac), layer.bias_format))
            else:
                result[layer.name] = (torch.from_numpy(layer.weight.astype(np.float64)),
                                      torch.from_numpy(layer.bias.astype(np.float64)))
        return result

    def forward_integers(self, pixels, trace=False):
        """The integer output of the last layer (or, with ``trace``, a dict of every layer's)
        for integer pixels ``(N, 1, 28, 28)`` in 0..255, as float64 tensors."""
        x = pixels.double().reshape(-1, *self.template.layers[0].in_shape)
        weights = self.integer_weights()
        outputs = {}
        for layer in self.template.layers:
            if layer.kind == "maxpool":
                x = F.max_pool2d(x, 2)
            else:
                weight, bias = weights[layer.name]
                x = FINISH[layer.activation](layer, _accumulate(layer, x, weight, bias))
            if layer.out_shape != tuple(x.shape[1:]):
                x = x.reshape(-1, *layer.out_shape)
            outputs[layer.name] = x
        return outputs if trace else x

    def forward(self, pixels):
        """Real-valued logits: the last layer's integers times its LSB."""
        last = self.template.layers[-1]
        return self.forward_integers(pixels) * last.output_format.lsb


def output_rule(qmodel):
    """How an artifact's last-layer integers give the class: ``"argmax"`` (logits) or
    ``"argmin"`` (penalties of an RBF output), lowest index on ties."""
    return qmodel.output_rule


def classes_of(qmodel, outputs):
    """Classes of last-layer integers ``(N, classes)`` under ``qmodel``'s output rule
    (:meth:`~hwlenet.quant.artifact.QuantizedModel.classify`)."""
    return qmodel.classify(outputs)


def fake_quant_logits(fake, images, batch_size=1000):
    """Integer logits ``(N, classes)`` (int64) of a :class:`FakeQuantModel` for uint8 images."""
    outputs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size]))
            outputs.append(fake.forward_integers(batch.unsqueeze(1)).numpy().astype(np.int64))
    classes = fake.template.layers[-1].out_shape[0]
    return np.concatenate(outputs) if outputs else np.zeros((0, classes), np.int64)


# --------------------------------------------------------------------------------------------
# Training


def _is_rate(value):
    """Whether ``value`` is a learning rate Adam can take: a number in (0, 1]."""
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and 0 < value <= 1)


def qat_finetune(model, train, calibration_images, config, epochs=3, seed=0, batch_size=64,
                 lr=5e-4, augment_images=True, distill=None, temperature=2.0, progress=True,
                 description="qat"):
    """Fine-tune ``model`` in place through the fake-quantized forward of ``config``.

    Adam with a cosine-decayed learning rate; each batch is augmented by
    :func:`hwlenet.train.augment` and rounded back to integer pixels (``floor(x + 0.5)``), so
    the network is trained on what the hardware sees. The loss is the cross-entropy with the
    labels plus, weighted by ``distill``, the distillation loss toward the float model as it
    was before fine-tuning (KL divergence of the softened class distributions at
    ``temperature``, times its square): the float model fits every training image already, so
    the labels alone give little gradient. ``distill=None`` means :data:`DEFAULT_DISTILL`.
    Scores enter the softmax as logits, or negated for an RBF output (argmin rule; softmax of
    the negated reduced penalties equals that of the negated penalties). Reproducible for a
    given seed on CPU.

    Parameters
    ----------
    model : LeNet5Classic or LeNet5Relu
    train : MnistSplit
    calibration_images : numpy.ndarray of uint8
        Images :func:`quantize_model` is given (they do not change the formats, which
        ``config`` fixes completely, but the quantizer needs them).
    config : dict
        A complete config (:func:`choose_config`), frozen during training.
    epochs, seed, batch_size, lr, augment_images, distill, temperature, progress

    Returns
    -------
    FakeQuantModel
        Around ``model``, with the template re-quantized from the trained weights.
    """
    from ..train import augment, fit

    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 0:
        raise HwlenetError(f"epochs must be a non-negative integer, not {epochs!r}")
    if not _is_rate(lr):
        raise HwlenetError(f"the learning rate must be a number in (0, 1], not {lr!r}")
    if len(train) == 0 and epochs:
        raise HwlenetError("the training set is empty")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    template = quantize_model(model, calibration_images, config=config)
    fake = FakeQuantModel(model, template)
    # penalties (argmin) enter the softmax negated: softmax(-y) is the same for the reduced
    # penalties the artifact computes, which differ from y by a per-image constant
    argmin = output_rule(template) == "argmin"
    if distill is None:
        distill = DEFAULT_DISTILL
    if isinstance(distill, bool) or not isinstance(distill, (int, float)) or not (
            0 <= distill <= 1):
        raise HwlenetError(f"distill must be a weight from 0 to 1, not {distill!r}")
    teacher = copy.deepcopy(model).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, max(epochs * math.ceil(len(train) / batch_size), 1))

    def batch_loss(batch, labels):
        if augment_images:
            batch = torch.floor(augment(batch, generator) + 0.5).clamp(0, 255)
        scores = fake(batch)
        scores = -scores if argmin else scores
        loss = F.cross_entropy(scores, labels)
        if distill:
            with torch.no_grad():
                target = teacher(batch).double() / temperature
            soft = F.kl_div(F.log_softmax(scores / temperature, dim=1),
                            F.log_softmax(target, dim=1), log_target=True,
                            reduction="batchmean")
            loss = (1 - distill) * loss + distill * temperature**2 * soft
        return loss

    fit(model, train, batch_loss, optimizer, schedule, epochs, batch_size, generator,
        description, progress)
    for key, value in model.state_dict().items():
        if not torch.isfinite(value).all():
            raise QatDiverged(f"QAT diverged at learning rate {lr:g}: {key} holds NaN or "
                              "infinite values (try a lower rate)")
    fake.template = quantize_model(model, calibration_images, config=config)
    fake.check_exact()
    return fake


def qat_select_lr(model, search, validation, calibration_images, config,
                  candidates=LR_CANDIDATES, seed=0, progress=True, description="qat",
                  **options):
    """Fine-tune ``model`` in place with the learning rate, among ``candidates``, whose result
    classifies the ``validation`` images best.

    A copy of ``model`` is fine-tuned by :func:`qat_finetune` on ``search`` at each rate and
    scored by its fixed-point (fake-quantized, i.e. the artifact's) accuracy on
    ``validation``, images held out of the training data
    (:func:`hwlenet.data.split_validation`). The highest accuracy wins, the lower rate on a
    tie; ``model`` takes that copy's weights. A rate at which training diverges scores
    ``None``; when every rate diverges, :class:`QatDiverged` is raised.

    Parameters
    ----------
    model, calibration_images, config, seed, progress, description
        As for :func:`qat_finetune`; ``options`` are its other keyword arguments.
    search, validation : MnistSplit
        The images to fine-tune on and the held-out images that decide.
    candidates : sequence of float
        Positive learning rates.

    Returns
    -------
    fake : FakeQuantModel
        Around ``model``, as :func:`qat_finetune` returns it.
    selection : dict
        ``lr`` (the rate chosen), ``validation_accuracy`` (the chosen rate's),
        ``candidates`` (each rate, as text, to its validation accuracy or None),
        ``validation_images``, ``train_images``.
    """
    rates = list(candidates)
    if not rates or not all(_is_rate(rate) for rate in rates):
        raise HwlenetError(f"learning rates must be numbers in (0, 1], not {candidates!r}")
    if len(validation) == 0:
        raise HwlenetError("the validation split is empty")
    scores, trained = {}, []
    for rate in rates:
        trial = copy.deepcopy(model)
        try:
            fake = qat_finetune(trial, search, calibration_images, config, seed=seed, lr=rate,
                                progress=progress, description=f"{description} lr {rate:g}",
                                **options)
        except QatDiverged:
            scores[f"{rate:g}"] = None
            continue
        own = fake_quant_logits(fake, validation.images)
        accuracy = float(np.mean(classes_of(fake.template, own) == validation.labels))
        scores[f"{rate:g}"] = accuracy
        trained.append((accuracy, -rate, rate, fake))
    if not trained:
        raise QatDiverged(f"QAT diverged at every learning rate tried "
                          f"({', '.join(scores)})")
    accuracy, _, chosen, best = max(trained, key=lambda result: result[:2])
    model.load_state_dict(best.model.state_dict())
    model.eval()
    return FakeQuantModel(model, best.template), {
        "lr": chosen, "validation_accuracy": accuracy, "candidates": scores,
        "validation_images": len(validation), "train_images": len(search)}
