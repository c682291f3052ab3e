"""From a float LeNet-5 and calibration images to a :class:`QuantizedModel`.

Formats are chosen per layer:

* the input is the raw pixel, ``u8.0``; the normalisation ``(p/255 - mean)/std`` is folded into
  the first convolution's weights and bias (padding pixels are 0 in both models, so the fold is
  exact);
* weights and biases get the most fractional bits that hold their largest magnitude; a bias
  never gets more fractional bits than the accumulator it is added to;
* activations get the fractional bits that hold the calibrated range (max-abs or a percentile);
  ReLU outputs are unsigned; logits keep ``max(act_bits, 16)`` bits;
* tanh layers requantize to a table index of ``min(act_bits + 2, 12)`` bits covering the range
  where the output is not yet saturated, and the table maps every index to ``act_bits`` bits
  with ``act_bits - 2`` fractional bits (``|1.7159 tanh| < 2``);
* every accumulator is as wide as the worst case of its actual weights demands.

A JSON config overrides any of a layer's ``weight``, ``bias``, ``pre`` or ``output`` formats::

    {"layers": {"c1": {"weight": {"width": 6}, "output": {"width": 10, "frac": 6}}}}

A width without a frac gets the frac that fits the layer's range. The classic model's RBF output
layer takes no config: its formats follow from F6's output format
(:func:`hwlenet.quant.artifact.rbf_layer`). Widths are 2..32 (a ``pre``
format, which indexes a table of ``2**width`` entries, at most 16 bits), fracs within
``-MAX_FRAC..MAX_FRAC``; :func:`load_config` checks all of this before any work starts.
"""

import json
import math

import numpy as np
import torch

from .. import __version__
from ..errors import HwlenetError
from ..models import MNIST_MEAN, MNIST_STD, TANH_AMPLITUDE, TANH_SLOPE
from .artifact import (MAX_ACCUMULATOR_WIDTH, MAX_FRAC, MAX_LUT_WIDTH, QLayer, QuantizedModel,
                       accumulator_bound, rbf_layer)
from .fixed import MAX_WIDTH, OVERFLOW_MODES, ROUNDING_MODES, FixedFormat

__all__ = ["CALIBRATION_METHODS", "FORMAT_KEYS", "check_config", "check_config_structure",
           "load_config",
           "quantize_model", "validate_bits"]

CALIBRATION_METHODS = ("maxabs", "percentile")
FORMAT_KEYS = ("weight", "bias", "pre", "output")
SPEC_KEYS = ("width", "frac", "signed", "rounding", "overflow")
LOGIT_MIN_BITS = 16
LUT_MAX_DEFAULT_BITS = 12


def validate_bits(name, bits):
    """Reject a bit width outside 2..32 with a message naming the option."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= MAX_WIDTH:
        raise HwlenetError(f"{name} must be an integer from 2 to {MAX_WIDTH}, not {bits!r}")
    return bits


def load_config(path):
    """Read and check a per-layer format config (JSON); ``None`` gives an empty config.

    Every layer entry must map keys among :data:`FORMAT_KEYS` to format specs with keys among
    ``width``, ``frac``, ``signed``, ``rounding``, ``overflow``; widths are 2..32 (``pre``:
    at most 16), fracs integers within ``-MAX_FRAC..MAX_FRAC``. Layer names are checked against
    a model by :func:`check_config`.

    Raises
    ------
    HwlenetError
        Naming the file, the layer and the key, when any of this fails.
    """
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except IsADirectoryError:
        raise HwlenetError(f"config {path}: is a folder, not a JSON file") from None
    except OSError as error:
        raise HwlenetError(f"cannot read config {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise HwlenetError(f"config {path} is not valid JSON: {error}") from None
    return check_config_structure(config, f"config {path}")


def check_config_structure(config, where):
    """Check a config's structure and format specs (the rules of :func:`load_config`) and
    return it; ``where`` starts every error message (``"config tuned.json"``)."""
    if not isinstance(config, dict) or set(config) - {"layers"}:
        raise HwlenetError(f"{where}: expected an object with a 'layers' key")
    layers = config.get("layers", {})
    if not isinstance(layers, dict):
        raise HwlenetError(f"{where}: 'layers' must map layer names to formats")
    for name, entry in layers.items():
        if not isinstance(entry, dict) or set(entry) - set(FORMAT_KEYS):
            raise HwlenetError(f"{where}: layer {name}: keys must be among "
                               f"{', '.join(FORMAT_KEYS)}, not {entry!r}")
        for key, spec in entry.items():
            _check_spec(spec, f"{where}: {name}.{key}", key == "pre")
    return config


def _check_spec(spec, where, index):
    if not isinstance(spec, dict) or set(spec) - set(SPEC_KEYS):
        raise HwlenetError(f"{where}: expected keys among {', '.join(SPEC_KEYS)}, "
                           f"not {spec!r}")
    if "width" in spec:
        width = spec["width"]
        limit = MAX_LUT_WIDTH if index else MAX_WIDTH
        if not isinstance(width, int) or isinstance(width, bool) or not 2 <= width <= limit:
            reason = " (it indexes a table of 2**width entries)" if index else ""
            raise HwlenetError(f"{where}: width must be an integer from 2 to {limit}{reason}, "
                               f"not {width!r}")
    if "frac" in spec:
        frac = spec["frac"]
        if not isinstance(frac, int) or isinstance(frac, bool) or abs(frac) > MAX_FRAC:
            raise HwlenetError(f"{where}: frac must be an integer from {-MAX_FRAC} to "
                               f"{MAX_FRAC}, not {frac!r}")
    if "signed" in spec and not isinstance(spec["signed"], bool):
        raise HwlenetError(f"{where}: signed must be true or false, not {spec['signed']!r}")
    for key, modes in (("rounding", ROUNDING_MODES), ("overflow", OVERFLOW_MODES)):
        if key in spec and spec[key] not in modes:
            raise HwlenetError(f"{where}: {key} must be one of {', '.join(modes)}, not "
                               f"{spec[key]!r}")


def check_config(config, model, path=None):
    """Check that every layer ``config`` names exists in ``model`` and takes the formats it
    gives (a max-pooling layer takes none), before calibration starts.

    Raises
    ------
    HwlenetError
        Naming the config file (when ``path`` is given) and the layer.
    """
    where = f"config {path}: " if path else "config "
    layer_specs = _folded_layers(model)
    names = [spec[0] for spec in layer_specs]
    kinds = {spec[0]: spec[1] for spec in layer_specs}
    activations = {spec[0]: spec[5] for spec in layer_specs}
    overrides = (config or {}).get("layers", {})
    if not isinstance(overrides, dict):
        raise HwlenetError(f"{where}'layers' must map layer names to formats")
    for name, entry in overrides.items():
        if name not in names:
            raise HwlenetError(f"{where}names layer {name!r}, which the {model.arch} model does "
                               f"not have (layers: {', '.join(names)})")
        if not isinstance(entry, dict) or set(entry) - set(FORMAT_KEYS):
            raise HwlenetError(f"{where}layer {name}: keys must be among {FORMAT_KEYS}")
        if kinds[name] == "maxpool" and entry:
            raise HwlenetError(f"{where}layer {name}: max-pooling keeps its input format")
        if kinds[name] == "rbf" and entry:
            raise HwlenetError(f"{where}layer {name}: the RBF output's formats follow the "
                               "previous layer's output; it takes no config")
        if "pre" in entry and activations[name] != "tanh":
            raise HwlenetError(f"{where}layer {name}: only tanh layers have a 'pre' format")
        for key, spec in entry.items():
            _check_spec(spec, f"{where}{name}.{key}", key == "pre")


def check_artifact_config(qmodel, config, path=None):
    """Check that the artifact ``qmodel`` has every format ``config`` sets: for each layer and
    key the config names, every field its spec gives (``width``, ``frac``, ``signed``,
    ``rounding``, ``overflow``) equals the artifact's. The hardware is built from the artifact
    alone; this proves it is the configuration asked for.

    Raises
    ------
    HwlenetError
        Naming the config file (when ``path`` is given), the layer, the key and both formats.
    """
    where = f"config {path}: " if path else "config "
    layers = {layer.name: layer for layer in qmodel.layers}
    for name, entry in (config or {}).get("layers", {}).items():
        if name not in layers:
            raise HwlenetError(f"{where}names layer {name!r}, which the artifact does not have "
                               f"(layers: {', '.join(layers)})")
        for key, spec in entry.items():
            fmt = getattr(layers[name], f"{key}_format", None)
            if fmt is None:
                raise HwlenetError(f"{where}layer {name}: the artifact has no {key} format")
            actual = fmt.to_dict()
            differing = sorted(field for field, value in spec.items() if actual[field] != value)
            if differing:
                asked = ", ".join(f"{field} {spec[field]!r}" for field in differing)
                raise HwlenetError(f"{where}layer {name} {key}: the artifact's format is {fmt}, "
                                   f"not {asked}")


def fitting_format(max_abs, width, signed, rounding, overflow):
    """The format of ``width`` bits with the most fractional bits that still holds ``max_abs``."""
    integer_bits = math.floor(math.log2(max_abs)) + 1 if max_abs > 0 else 0
    frac = width - int(signed) - integer_bits
    return FixedFormat(width, frac, signed, rounding, overflow)


def tanh_saturation(output_format):
    """The input magnitude beyond which the scaled tanh rounds to its limit in ``output_format``."""
    margin = output_format.lsb / (2 * TANH_AMPLITUDE)
    return math.atanh(1 - margin) / TANH_SLOPE


def tanh_table(pre_format, output_format):
    """The table ``lut[i - pre.min_int] = quantize(1.7159 tanh(2/3 i 2**-pre.frac))``."""
    index = np.arange(pre_format.min_int, pre_format.max_int + 1, dtype=np.int64)
    values = TANH_AMPLITUDE * np.tanh(TANH_SLOPE * pre_format.to_float(index))
    return output_format.quantize(values)


def _override(auto, spec, max_abs, where):
    if spec is None:
        return auto
    if not isinstance(spec, dict) or set(spec) - {"width", "frac", "signed", "rounding",
                                                   "overflow"}:
        raise HwlenetError(f"config for {where}: expected keys width, frac, signed, rounding, "
                           f"overflow, not {spec!r}")
    width = spec.get("width", auto.width)
    if "width" in spec:
        validate_bits(f"config width of {where}", width)
    signed = spec.get("signed", auto.signed)
    rounding = spec.get("rounding", auto.rounding)
    overflow = spec.get("overflow", auto.overflow)
    fitted = fitting_format(max_abs, width, signed, rounding, overflow)
    return FixedFormat(width, spec.get("frac", fitted.frac), signed, rounding, overflow)


def _folded_layers(model):
    """(name, kind, float weight, float bias, padding, activation, in_shape, out_shape) per layer,
    with the input normalisation folded into the first convolution. The RBF output has kind
    ``rbf`` and its -1/+1 codes in place of the weight."""
    state = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    c1_w = state["c1.weight"] / (255.0 * MNIST_STD)
    c1_b = state["c1.bias"] - (MNIST_MEAN / MNIST_STD) * state["c1.weight"].sum(axis=(1, 2, 3))
    if model.arch in ("classic", "classic-fc"):
        c3_w = model.c3.full_weight().detach().double().numpy()
        if model.output_rule == "argmin":
            out = ("out", "rbf", model.out.codes.numpy().astype(np.int64), None, 0, "none",
                   (84,), (10,))
        else:
            out = ("out", "dense", state["out.weight"], state["out.bias"], 0, "none", (84,),
                   (10,))
        return [
            ("c1", "conv", c1_w, c1_b, 2, "tanh", (1, 28, 28), (6, 28, 28)),
            ("s2", "subsample", state["s2.coefficient"], state["s2.bias"], 0, "tanh",
             (6, 28, 28), (6, 14, 14)),
            ("c3", "conv", c3_w, state["c3.bias"], 0, "tanh", (6, 14, 14), (16, 10, 10)),
            ("s4", "subsample", state["s4.coefficient"], state["s4.bias"], 0, "tanh",
             (16, 10, 10), (16, 5, 5)),
            ("c5", "dense", state["c5.weight"].reshape(120, 400), state["c5.bias"], 0, "tanh",
             (16, 5, 5), (120,)),
            ("f6", "dense", state["f6.weight"], state["f6.bias"], 0, "tanh", (120,), (84,)),
            out,
        ]
    maps1, maps2 = c1_w.shape[0], state["c3.weight"].shape[0]
    hidden1, hidden2 = state["fc1.weight"].shape[0], state["fc2.weight"].shape[0]
    classes = state["out.weight"].shape[0]
    return [
        ("c1", "conv", c1_w, c1_b, 2, "relu", (1, 28, 28), (maps1, 28, 28)),
        ("p1", "maxpool", None, None, 0, "none", (maps1, 28, 28), (maps1, 14, 14)),
        ("c3", "conv", state["c3.weight"], state["c3.bias"], 0, "relu", (maps1, 14, 14),
         (maps2, 10, 10)),
        ("p2", "maxpool", None, None, 0, "none", (maps2, 10, 10), (maps2, 5, 5)),
        ("fc1", "dense", state["fc1.weight"], state["fc1.bias"], 0, "relu", (maps2 * 25,),
         (hidden1,)),
        ("fc2", "dense", state["fc2.weight"], state["fc2.bias"], 0, "relu", (hidden1,),
         (hidden2,)),
        ("out", "dense", state["out.weight"], state["out.bias"], 0, "none", (hidden2,),
         (classes,)),
    ]


def _calibrate(model, images, method, percentile):
    """Per layer: the calibrated magnitude of its output and (tanh layers) of its input."""
    with torch.no_grad():
        pre = {}
        trace = model.forward_trace(torch.from_numpy(images).float().unsqueeze(1), pre)

    def magnitude(tensor):
        values = tensor.abs().double().numpy().ravel()
        if method == "maxabs":
            return float(values.max())
        return float(np.percentile(values, percentile))

    return ({name: magnitude(t) for name, t in trace.items()},
            {name: magnitude(t) for name, t in pre.items()})


def quantize_model(model, calibration_images, weight_bits=8, act_bits=8, rounding="half_up",
                   overflow="saturate", method="maxabs", percentile=99.99, config=None,
                   provenance=None):
    """Quantize a float LeNet-5.

    Parameters
    ----------
    model : LeNet5Classic, LeNet5ClassicFC or LeNet5Relu
        The classic model's RBF output becomes an RBF layer (fixed codes, see
        :func:`~hwlenet.quant.artifact.rbf_layer`) and the output rule ``argmin``.
    calibration_images : numpy.ndarray of uint8, shape (N, 28, 28)
        Images whose activations set the activation ranges; N >= 1.
    weight_bits, act_bits : int
        Widths of weights and activations, 2..32. Biases get ``min(2 * weight_bits, 32)``.
    rounding, overflow : str
        Modes of every format (see :mod:`hwlenet.quant.fixed`).
    method : {"maxabs", "percentile"}
        Calibration statistic of each activation's magnitude.
    config : dict, optional
        Per-layer format overrides (see the module docstring).

    Returns
    -------
    QuantizedModel
    """
    validate_bits("weight bits", weight_bits)
    validate_bits("activation bits", act_bits)
    if method not in CALIBRATION_METHODS:
        raise HwlenetError(f"calibration method must be one of {CALIBRATION_METHODS}")
    if method == "percentile" and not 0 < percentile <= 100:
        raise HwlenetError(f"percentile must be in (0, 100], not {percentile!r}")
    if len(calibration_images) == 0:
        raise HwlenetError("calibration needs at least one image")
    for key, value in model.state_dict().items():
        if not torch.isfinite(value).all():
            raise HwlenetError(f"the float model's {key} holds NaN or infinite values")
    check_config(config, model)
    layer_specs = _folded_layers(model)
    overrides = (config or {}).get("layers", {})
    out_range, pre_range = _calibrate(model, calibration_images, method, percentile)

    modes = {"rounding": rounding, "overflow": overflow}
    input_format = FixedFormat(8, 0, signed=False, **modes)
    previous = input_format
    layers = []
    for name, kind, weight, bias, padding, activation, in_shape, out_shape in layer_specs:
        spec = overrides.get(name, {})
        if kind == "maxpool":
            if spec:
                raise HwlenetError(f"config for layer {name}: max-pooling keeps its input format")
            layers.append(QLayer(name, kind, in_shape, out_shape, previous, previous))
            continue
        if kind == "rbf":
            layers.append(rbf_layer(name, weight, previous))
            previous = layers[-1].output_format
            continue
        weight_max = float(np.abs(weight).max())
        weight_format = _override(fitting_format(weight_max, weight_bits, True, **modes),
                                  spec.get("weight"), weight_max, f"{name}.weight")
        acc_frac = weight_format.frac + previous.frac
        bias_max = float(np.abs(bias).max())
        bias_format = fitting_format(bias_max, min(2 * weight_bits, MAX_WIDTH), True, **modes)
        bias_format = _override(
            FixedFormat(bias_format.width, min(bias_format.frac, acc_frac), True, **modes),
            spec.get("bias"), bias_max, f"{name}.bias")
        pre_format = lut = None
        if activation == "tanh":
            output_format = _override(FixedFormat(act_bits, act_bits - 2, True, **modes),
                                      spec.get("output"), TANH_AMPLITUDE, f"{name}.output")
            pre_max = min(pre_range[name], tanh_saturation(output_format))
            pre_bits = min(act_bits + 2, LUT_MAX_DEFAULT_BITS)
            pre_format = _override(fitting_format(pre_max, pre_bits, True, **modes),
                                   spec.get("pre"), pre_max, f"{name}.pre")
            lut = tanh_table(pre_format, output_format)
        else:
            signed = activation != "relu"
            width = act_bits if activation == "relu" else max(act_bits, LOGIT_MIN_BITS)
            output_format = _override(
                fitting_format(out_range[name], width, signed, **modes),
                spec.get("output"), out_range[name], f"{name}.output")
        layer = QLayer(
            name, kind, in_shape, out_shape, previous, output_format, activation,
            weight=weight_format.quantize(weight), weight_format=weight_format,
            bias=bias_format.quantize(bias), bias_format=bias_format, padding=padding,
            pre_format=pre_format, lut=lut,
        )
        if layer.bias_shift < 0:
            raise HwlenetError(f"config for layer {name}: the bias may not have more fractional "
                               f"bits ({bias_format.frac}) than the accumulator ({acc_frac})")
        layer.accumulator_width = accumulator_bound(layer).bit_length() + 1
        if layer.accumulator_width > MAX_ACCUMULATOR_WIDTH:
            raise HwlenetError(
                f"layer {name} would need a {layer.accumulator_width}-bit accumulator; at most "
                f"{MAX_ACCUMULATOR_WIDTH} bits are supported: use fewer weight or activation bits")
        layers.append(layer)
        previous = output_format

    provenance = dict(provenance or {})
    provenance.update({
        "hwlenet_version": __version__,
        "weight_bits": weight_bits, "act_bits": act_bits, **modes,
        "calibration": {"images": int(len(calibration_images)), "method": method,
                        "percentile": percentile if method == "percentile" else None},
        "config": config or {},
    })
    state = {key: value.detach().numpy().astype(np.float32)
             for key, value in model.state_dict().items()}
    qmodel = QuantizedModel(model.arch, input_format, layers, provenance, state,
                            output_rule=model.output_rule)
    qmodel.validate()
    return qmodel
