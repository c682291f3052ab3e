"""The quantized artifact: hwlenet's contract between quantizer, simulators and RTL.

An artifact is a ``.npz`` file with a JSON ``manifest`` and integer tensors. It fixes every
number the executions use; none of them derives a format, a shift or a table of its own.

Integer semantics of one layer, with ``x`` the integer input (format ``input_format``):

``conv`` / ``dense``
    ``acc[m] = sum_k weight[m, k] * x[k] + (bias[m] << (acc_frac - bias_format.frac))``
    over the kernel window (``conv``: stride 1, zero padding of ``padding`` pixels), where
    ``acc_frac = weight_format.frac + input_format.frac``.
``subsample``
    ``acc[c] = weight[c] * (x00 + x01 + x10 + x11) + (bias[c] << ...)`` over each 2x2 block.
``maxpool``
    ``y = max(x00, x01, x10, x11)`` over each 2x2 block; the format is unchanged.

then, by ``activation``:

``none``
    ``y = requantize(acc, acc_frac, output_format)``
``relu``
    ``y = requantize(max(acc, 0), acc_frac, output_format)``
``tanh``
    ``i = requantize(acc, acc_frac, pre_format)``; ``y = lut[i - pre_format.min_int]``; the
    table holds ``2**pre_format.width`` integers of ``output_format``.

``requantize`` is :func:`hwlenet.quant.fixed.requantize_int`: shift with the target format's
rounding, then saturate or wrap with its overflow mode. ``accumulator_width`` (at most 63) is a
width in which ``acc`` can never overflow for these weights and any input of ``input_format``.

Shifts are bounded: the bias shift ``acc_frac - bias_format.frac`` is ``0..MAX_SHIFT`` and the
requantization shift ``acc_frac - requant_format.frac`` is ``-(63 - accumulator_width)`` (a
left shift that keeps ``acc`` within 63 bits) to ``MAX_SHIFT`` (``64``: an accumulator of at
most 63 bits requantizes alike at every right shift of 63 or more, so larger shifts would add
nothing). Every execution must be exact over that whole range.

``rbf`` (the classic model's Euclidean RBF output, stored as a ``dense`` layer)
    A dense layer may carry ``codes``, ten (``outputs``) rows of -1/+1 over its ``n`` inputs:
    LeNet-5's radial basis function units, whose exact penalty for the previous layer's outputs
    ``x = X 2**-f`` (``f`` = ``input_format.frac``) is ``y_i = sum_j (x_j - c_ij)^2``. With
    the codes in the same format (``W = c 2**f``), ``2**(2f) y_i = sum_j X_j^2 - 2 sum_j W_ij X_j
    + n 2**(2f)``; dropping the image's constant ``sum_j X_j^2`` (equal for every class, so the
    argmin and its ties are unchanged) and dividing by ``2**f`` leaves the *reduced penalty*
    ``P_i = n 2**f - 2 sum_j c_ij X_j``, an exact integer with ``f`` fractional bits. It is
    computed as the dense layer above with ``weight = -2 c 2**g`` (``weight_format`` frac
    ``g = max(0, -f)``, so that ``acc_frac = max(f, 0)`` and the bias needs no right shift),
    ``bias = n`` (frac 0), activation ``none`` and an ``output_format`` of ``acc_frac``
    fractional bits and ``accumulator_width`` bits, so that the requantization is the identity:
    ``P_i = acc_i``, with ``|acc_i| <= n 2**acc_frac + 2 n 2**g max|X|`` (the accumulator
    bound), never saturated. For every ``f``, ``P_i 2**-acc_frac = n - 2 sum_j c_ij x_j =
    y_i - sum_j x_j^2`` exactly. :func:`rbf_layer` derives all of this from the codes and
    ``f``; validation rebuilds it and rejects any difference. An RBF layer is always the last
    layer, and it alone makes the output rule ``argmin``. In the file, its manifest entry has
    ``"rbf": true`` and its codes are the tensor ``{name}.codes``; the manifest's
    ``output_rule`` is ``argmax`` when absent (artifacts written before it existed).

The class of an image follows the model's ``output_rule``: ``argmax``, the index of the largest
logit (the last layer's output), or ``argmin`` (RBF output), the index of the smallest penalty;
the lowest such index when several tie, in both cases (:meth:`QuantizedModel.classify`).

Formats have ``|frac| <= MAX_FRAC``; shapes have 1 to ``MAX_RANK`` dimensions of at most
``MAX_EXTENT``; ``conv`` weights are ``(out_channels, in_channels, k, k)`` with
``out = in + 2 * padding - k + 1``; ``subsample`` and ``maxpool`` halve each side (even sides)
and keep the channels; ``dense`` weights are ``(outputs, inputs)``. A loaded artifact satisfies
all of this, or :func:`load_artifact` raises :class:`~hwlenet.errors.HwlenetError`.
"""

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HwlenetError
from ..outputs import write_bytes
from .fixed import FixedFormat

__all__ = [
    "ARTIFACT_FORMAT",
    "ARTIFACT_VERSION",
    "LAYER_KINDS",
    "MAX_ACCUMULATOR_WIDTH",
    "MAX_ARTIFACT_BYTES",
    "MAX_FRAC",
    "MAX_LUT_WIDTH",
    "MAX_SHIFT",
    "OUTPUT_RULES",
    "QLayer",
    "QuantizedModel",
    "accumulator_bound",
    "load_artifact",
    "rbf_layer",
    "save_artifact",
]

ARTIFACT_FORMAT = "hwlenet-quantized"
ARTIFACT_VERSION = 1
LAYER_KINDS = ("conv", "dense", "subsample", "maxpool")
ACTIVATIONS = ("none", "relu", "tanh")
#: How the class is read from the last layer's outputs (both break ties to the lowest index).
OUTPUT_RULES = ("argmax", "argmin")
MAX_ACCUMULATOR_WIDTH = 63
MAX_LUT_WIDTH = 16
#: The largest bias shift and requantization right shift an artifact may hold.
MAX_SHIFT = 64
#: The largest magnitude of a format's fractional bits (far beyond any useful format; it keeps
#: every ``2**frac`` a finite float).
MAX_FRAC = 256
#: The most bytes an artifact's tensors may take once decompressed (LeNet-5 takes under 1 MB).
MAX_ARTIFACT_BYTES = 64 << 20
#: The most dimensions of a layer's input or output shape, and the largest extent of one.
MAX_RANK = 3
MAX_EXTENT = 1 << 16
#: The largest zero padding of a convolution.
MAX_PADDING = 16


@dataclass(eq=False)
class QLayer:
    """One layer of a quantized model (see the module docstring for its integer semantics).

    ``codes`` is None except in the RBF output layer (a ``dense`` layer whose weights and bias
    :func:`rbf_layer` derives from these -1/+1 codes).
    """

    name: str
    kind: str
    in_shape: tuple
    out_shape: tuple
    input_format: FixedFormat
    output_format: FixedFormat
    activation: str = "none"
    weight: np.ndarray = None
    weight_format: FixedFormat = None
    bias: np.ndarray = None
    bias_format: FixedFormat = None
    padding: int = 0
    accumulator_width: int = 0
    pre_format: FixedFormat = None
    lut: np.ndarray = None
    codes: np.ndarray = None

    @property
    def has_weights(self):
        return self.kind in ("conv", "dense", "subsample")

    @property
    def is_rbf(self):
        """Whether this dense layer is the Euclidean RBF output (it carries ``codes``)."""
        return self.codes is not None

    @property
    def acc_frac(self):
        """Fractional bits of the accumulator: weight frac plus input frac."""
        return self.weight_format.frac + self.input_format.frac

    @property
    def bias_shift(self):
        """Left shift that aligns a bias integer with the accumulator."""
        return self.acc_frac - self.bias_format.frac

    def aligned_bias(self):
        """Biases as accumulator integers (int64): ``bias << bias_shift``, exactly.

        Raises
        ------
        HwlenetError
            When the bias shift is outside ``0..MAX_SHIFT`` or a shifted bias leaves int64.
        """
        shift = self.bias_shift
        if not 0 <= shift <= MAX_SHIFT:
            raise HwlenetError(f"layer {self.name}: bias shift {shift} is outside 0..{MAX_SHIFT}")
        aligned = [int(b) << shift for b in np.ravel(self.bias)]
        if any(not -(1 << 63) <= b < 1 << 63 for b in aligned):
            raise HwlenetError(f"layer {self.name}: biases shifted left by {shift} bits do not "
                               "fit 64 bits")
        return np.array(aligned, dtype=np.int64).reshape(np.shape(self.bias))

    def requant_format(self):
        """The format ``acc`` is requantized to: the LUT index for tanh, else the output."""
        return self.pre_format if self.activation == "tanh" else self.output_format

    @property
    def requant_shift(self):
        """Right shift (negative: left) from the accumulator to :meth:`requant_format`."""
        return self.acc_frac - self.requant_format().frac

    def macs(self):
        """Multiply-accumulates per image, counting every weight slot (zeros included)."""
        if self.kind == "conv":
            return int(self.weight.size * self.out_shape[1] * self.out_shape[2])
        if self.kind == "dense":
            return int(self.weight.size)
        return 0


def accumulator_bound(layer):
    """The largest ``|acc|`` the layer can produce for any input of its input format."""
    x_max = layer.input_format.max_abs_int
    weight = np.abs(layer.weight.astype(object))
    if layer.kind == "subsample":
        fan = weight * 4
    else:
        fan = weight.reshape(weight.shape[0], -1).sum(axis=1)
    bias = np.abs(layer.aligned_bias().astype(object))
    return int(max(fan * x_max + bias))


def rbf_layer(name, codes, input_format):
    """The dense layer computing the reduced RBF penalties of ``codes`` (see the module
    docstring): the one place its weights, bias, formats and accumulator width are derived.

    Parameters
    ----------
    name : str
    codes : array_like of int, shape (outputs, n)
        -1/+1 codes, one row per class.
    input_format : FixedFormat
        The previous layer's output format (``f`` = its frac); its rounding and overflow modes
        are given to the new formats (never exercised: nothing is rounded or saturated).

    Returns
    -------
    QLayer

    Raises
    ------
    HwlenetError
        When the codes are not a 2-D array of -1 and +1 of at least 2 rows, or the penalties
        would need more than ``MAX_ACCUMULATOR_WIDTH`` bits.
    """
    codes = np.asarray(codes)
    if (codes.ndim != 2 or codes.shape[0] < 2 or not codes.size
            or not np.isin(codes, (-1, 1)).all()):
        raise HwlenetError(f"layer {name}: RBF codes must be at least 2 rows of -1 and +1, not "
                           f"an array of shape {codes.shape}")
    codes = codes.astype(np.int64)
    outputs, length = codes.shape
    modes = {"rounding": input_format.rounding, "overflow": input_format.overflow}
    code_frac = max(0, -input_format.frac)
    if code_frac + 3 > MAX_ACCUMULATOR_WIDTH:
        raise HwlenetError(f"layer {name}: RBF codes scaled by 2**{code_frac} do not fit "
                           f"{MAX_ACCUMULATOR_WIDTH} bits")
    weight_format = FixedFormat(code_frac + 3, code_frac, True, **modes)
    bias_format = FixedFormat(max(2, length.bit_length() + 1), 0, True, **modes)
    layer = QLayer(
        name, "dense", (length,), (outputs,), input_format, input_format,
        weight=-2 * codes << code_frac, weight_format=weight_format,
        bias=np.full(outputs, length, dtype=np.int64), bias_format=bias_format, codes=codes)
    width = accumulator_bound(layer).bit_length() + 1
    if width > MAX_ACCUMULATOR_WIDTH:
        raise HwlenetError(f"layer {name}: the RBF penalties would need {width} bits; at most "
                           f"{MAX_ACCUMULATOR_WIDTH} are supported")
    layer.accumulator_width = width
    layer.output_format = FixedFormat(width, layer.acc_frac, True, **modes)
    return layer


def _check_rbf(layer, where):
    """An RBF layer is exactly what :func:`rbf_layer` derives from its codes and input."""
    codes = layer.codes
    if not isinstance(codes, np.ndarray) or codes.dtype != np.int64:
        raise HwlenetError(f"{where}: the RBF codes must be an int64 array")
    if layer.kind != "dense" or layer.activation != "none":
        raise HwlenetError(f"{where}: an RBF layer is a dense layer without activation")
    expected = rbf_layer(layer.name, codes, layer.input_format)
    if codes.shape != layer.weight.shape:
        raise HwlenetError(f"{where}: RBF codes of shape {codes.shape} do not fit the weights "
                           f"{layer.weight.shape}")
    for label in ("weight_format", "bias_format", "output_format", "accumulator_width"):
        if getattr(layer, label) != getattr(expected, label):
            raise HwlenetError(f"{where}: the RBF layer's {label.replace('_', ' ')} is "
                               f"{getattr(layer, label)}, not {getattr(expected, label)}")
    for label in ("weight", "bias"):
        if not np.array_equal(getattr(layer, label), getattr(expected, label)):
            raise HwlenetError(f"{where}: the RBF layer's {label} is not derived from its codes "
                               "(weight -2 c, bias the code length)")


def _fmt_or_none(fmt):
    return fmt.to_dict() if fmt is not None else None


@dataclass(eq=False)
class QuantizedModel:
    """A whole quantized network: input format, layers, provenance and the float source."""

    arch: str
    input_format: FixedFormat
    layers: list
    provenance: dict = field(default_factory=dict)
    float_state: dict = field(default_factory=dict)
    output_rule: str = "argmax"

    def classify(self, outputs):
        """The classes ``(N,)`` of the last layer's integer outputs ``(N, classes)`` under the
        output rule: index of the largest (``argmax``) or smallest (``argmin``) value, the lowest
        index on ties."""
        outputs = np.asarray(outputs)
        if self.output_rule == "argmin":
            return outputs.argmin(axis=1)
        return outputs.argmax(axis=1)

    def layer(self, name):
        """The layer called ``name``."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise HwlenetError(f"no layer {name!r}; layers: {', '.join(self.layer_names)}")

    @property
    def layer_names(self):
        return [layer.name for layer in self.layers]

    def manifest(self):
        """The JSON-ready description of everything but the tensor contents."""
        layers = []
        for layer in self.layers:
            entry = {
                "name": layer.name, "kind": layer.kind, "activation": layer.activation,
                "in_shape": list(layer.in_shape), "out_shape": list(layer.out_shape),
                "input_format": layer.input_format.to_dict(),
                "output_format": layer.output_format.to_dict(),
            }
            if layer.has_weights:
                entry.update({
                    "weight_format": layer.weight_format.to_dict(),
                    "bias_format": layer.bias_format.to_dict(),
                    "padding": layer.padding,
                    "accumulator": {"width": layer.accumulator_width, "frac": layer.acc_frac},
                    "pre_format": _fmt_or_none(layer.pre_format),
                })
            if layer.is_rbf:
                entry["rbf"] = True
            layers.append(entry)
        return {
            "format": ARTIFACT_FORMAT, "version": ARTIFACT_VERSION, "arch": self.arch,
            "input_format": self.input_format.to_dict(), "layers": layers,
            "output_rule": self.output_rule, "provenance": self.provenance,
        }

    def validate(self):
        """Check the model's internal consistency; raise :class:`HwlenetError` if it fails."""
        if not self.layers:
            raise HwlenetError("the model has no layers")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise HwlenetError(f"layer names repeat: {', '.join(names)}")
        _check_frac(self.input_format, "the input format")
        previous = self.input_format
        shape = None
        for layer in self.layers:
            where = f"layer {layer.name}"
            if layer.kind not in LAYER_KINDS:
                raise HwlenetError(f"{where}: unknown kind {layer.kind!r}")
            if layer.activation not in ACTIVATIONS:
                raise HwlenetError(f"{where}: unknown activation {layer.activation!r}")
            for label in ("input_format", "output_format", "weight_format", "bias_format",
                          "pre_format"):
                fmt = getattr(layer, label)
                if fmt is not None:
                    _check_frac(fmt, f"{where}: {label}")
            _check_shapes(layer, where)
            if layer.input_format != previous:
                raise HwlenetError(f"{where}: input format {layer.input_format} does not match "
                                   f"the previous output {previous}")
            if shape is not None and _size(layer.in_shape) != _size(shape):
                raise HwlenetError(f"{where}: input shape {layer.in_shape} does not follow {shape}")
            if layer.has_weights:
                self._validate_weighted(layer, where)
            if layer.codes is not None:
                _check_rbf(layer, where)
                if layer is not self.layers[-1]:
                    raise HwlenetError(f"{where}: an RBF layer must be the last layer")
            if not layer.has_weights and (layer.output_format != layer.input_format
                                          or layer.activation != "none"):
                raise HwlenetError(f"{where}: max-pooling keeps its input format")
            previous, shape = layer.output_format, layer.out_shape
        if self.layers and (len(self.layers[-1].out_shape) != 1
                            or self.layers[-1].out_shape[0] < 2):
            raise HwlenetError(f"the last layer must produce a vector of at least 2 logits, not "
                               f"shape {tuple(self.layers[-1].out_shape)}")
        if self.output_rule not in OUTPUT_RULES:
            raise HwlenetError(f"output rule must be one of {', '.join(OUTPUT_RULES)}, not "
                               f"{self.output_rule!r}")
        if (self.output_rule == "argmin") != self.layers[-1].is_rbf:
            raise HwlenetError("the output rule is argmin exactly when the last layer is an RBF "
                               f"layer (rule {self.output_rule}, last layer "
                               f"{'RBF' if self.layers[-1].is_rbf else 'not RBF'})")

    @staticmethod
    def _validate_weighted(layer, where):
        for label, tensor, fmt in (("weight", layer.weight, layer.weight_format),
                                   ("bias", layer.bias, layer.bias_format)):
            if tensor is None or fmt is None:
                raise HwlenetError(f"{where}: missing {label}")
            if not isinstance(tensor, np.ndarray) or tensor.dtype != np.int64:
                raise HwlenetError(f"{where}: {label} must be an int64 array")
            if tensor.size and (tensor.min() < fmt.min_int or tensor.max() > fmt.max_int):
                raise HwlenetError(f"{where}: {label} integers exceed their format {fmt}")
        if layer.kind == "conv":
            channels, height, width = layer.in_shape
            kernel = layer.in_shape[1] + 2 * layer.padding - layer.out_shape[1] + 1
            expected = (layer.out_shape[0], channels, kernel, kernel)
        elif layer.kind == "dense":
            expected = (layer.out_shape[0], _size(layer.in_shape))
        else:
            expected = (layer.in_shape[0],)
        if layer.weight.shape != expected or not layer.weight.size:
            raise HwlenetError(f"{where}: weight shape {layer.weight.shape} does not fit "
                               f"{layer.in_shape} -> {layer.out_shape} (expected {expected})")
        if layer.bias.shape != (layer.out_shape[0],):
            raise HwlenetError(f"{where}: bias shape {layer.bias.shape} != ({layer.out_shape[0]},)")
        if layer.bias_shift < 0:
            raise HwlenetError(f"{where}: bias has more fractional bits than the accumulator")
        if layer.bias_shift > MAX_SHIFT:
            raise HwlenetError(f"{where}: aligning the bias needs a shift of {layer.bias_shift} "
                               f"bits; at most {MAX_SHIFT} are supported")
        if layer.requant_shift > MAX_SHIFT:
            raise HwlenetError(f"{where}: requantizing the accumulator needs a right shift of "
                               f"{layer.requant_shift} bits; at most {MAX_SHIFT} are supported")
        if not 2 <= layer.accumulator_width <= MAX_ACCUMULATOR_WIDTH:
            raise HwlenetError(f"{where}: accumulator width {layer.accumulator_width} is outside "
                               f"2..{MAX_ACCUMULATOR_WIDTH}")
        widening = -layer.requant_shift
        if widening > 0 and layer.accumulator_width + widening > MAX_ACCUMULATOR_WIDTH:
            raise HwlenetError(f"{where}: shifting the accumulator left by {widening} bits "
                               f"exceeds {MAX_ACCUMULATOR_WIDTH} bits")
        needed = accumulator_bound(layer).bit_length() + 1
        if layer.accumulator_width < needed:
            raise HwlenetError(f"{where}: accumulator of {layer.accumulator_width} bits can "
                               f"overflow; these weights need {needed}")
        if layer.activation == "tanh":
            pre, lut = layer.pre_format, layer.lut
            if pre is None or lut is None:
                raise HwlenetError(f"{where}: tanh needs a pre-activation format and a table")
            if pre.width > MAX_LUT_WIDTH:
                raise HwlenetError(f"{where}: table index of {pre.width} bits exceeds "
                                   f"{MAX_LUT_WIDTH}")
            if not isinstance(lut, np.ndarray) or lut.dtype != np.int64:
                raise HwlenetError(f"{where}: the table must be an int64 array")
            if lut.shape != (1 << pre.width,):
                raise HwlenetError(f"{where}: table has {lut.size} entries, not 2**{pre.width}")
            out = layer.output_format
            if lut.min() < out.min_int or lut.max() > out.max_int:
                raise HwlenetError(f"{where}: table values exceed the output format {out}")
        elif layer.pre_format is not None or layer.lut is not None:
            raise HwlenetError(f"{where}: only a tanh layer has a pre-activation format and table")


def _size(shape):
    """Elements of ``shape`` (a tuple of Python ints), exactly."""
    size = 1
    for extent in shape:
        size *= int(extent)
    return size


def _check_frac(fmt, where):
    if abs(fmt.frac) > MAX_FRAC:
        raise HwlenetError(f"{where}: {fmt.frac} fractional bits; at most {MAX_FRAC} in "
                           "magnitude are supported")


def _check_shapes(layer, where):
    """Shapes of the right rank for the kind, consistent with each other and the padding."""
    for label in ("in_shape", "out_shape"):
        shape = getattr(layer, label)
        if (not isinstance(shape, tuple) or not 1 <= len(shape) <= MAX_RANK
                or not all(isinstance(v, int) and not isinstance(v, bool)
                           and 1 <= v <= MAX_EXTENT for v in shape)):
            raise HwlenetError(f"{where}: bad {label} {shape!r}")
    if not isinstance(layer.padding, int) or not 0 <= layer.padding <= MAX_PADDING:
        raise HwlenetError(f"{where}: padding must be from 0 to {MAX_PADDING}, not "
                           f"{layer.padding!r}")
    in_shape, out_shape = layer.in_shape, layer.out_shape
    if layer.kind == "dense":
        if len(out_shape) != 1 or layer.padding:
            raise HwlenetError(f"{where}: a dense layer maps to a vector, without padding")
        return
    if len(in_shape) != 3 or len(out_shape) != 3:
        raise HwlenetError(f"{where}: a {layer.kind} layer maps (channels, height, width) "
                           f"maps, not {in_shape} -> {out_shape}")
    if layer.kind == "conv":
        kernel = in_shape[1] + 2 * layer.padding - out_shape[1] + 1
        if kernel < 1 or in_shape[2] + 2 * layer.padding - out_shape[2] + 1 != kernel:
            raise HwlenetError(f"{where}: {in_shape} -> {out_shape} with padding "
                               f"{layer.padding} is not a square-kernel convolution")
        return
    if layer.padding:
        raise HwlenetError(f"{where}: a {layer.kind} layer has no padding")
    if (in_shape[1] % 2 or in_shape[2] % 2
            or out_shape != (in_shape[0], in_shape[1] // 2, in_shape[2] // 2)):
        raise HwlenetError(f"{where}: 2x2 pooling of {in_shape} gives "
                           f"({in_shape[0]}, {in_shape[1] // 2}, {in_shape[2] // 2}), not "
                           f"{out_shape}")


def save_artifact(qmodel, path, option=None):
    """Write ``qmodel`` to ``path`` (``.npz``), whole or not at all (through a temporary file);
    the same model gives the same bytes. ``option`` names the path in error messages."""
    qmodel.validate()
    arrays = {"manifest": np.array(json.dumps(qmodel.manifest(), sort_keys=True))}
    for layer in qmodel.layers:
        if layer.has_weights:
            arrays[f"{layer.name}.weight"] = layer.weight.astype(np.int64)
            arrays[f"{layer.name}.bias"] = layer.bias.astype(np.int64)
            if layer.lut is not None:
                arrays[f"{layer.name}.lut"] = layer.lut.astype(np.int64)
            if layer.codes is not None:
                arrays[f"{layer.name}.codes"] = layer.codes.astype(np.int64)
    for key, value in qmodel.float_state.items():
        arrays[f"float/{key}"] = np.asarray(value, dtype=np.float32)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue(), option)


def _shape(value, where):
    if (not isinstance(value, list) or not 1 <= len(value) <= MAX_RANK
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_EXTENT
                       for v in value)):
        raise HwlenetError(f"layer {where}: bad shape {value!r}")
    return tuple(value)


def _integer(value, where):
    if not isinstance(value, int) or isinstance(value, bool):
        raise HwlenetError(f"{where}: expected an integer, not {value!r}")
    return value


def _read_members(path):
    """The arrays of an ``.npz`` file, each checked before it is read: a ``.npy`` member of a
    plain (non-object) dtype whose header's shape accounts for exactly its bytes, all members
    together at most :data:`MAX_ARTIFACT_BYTES`. Nothing is allocated from an unchecked size."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if sum(info.file_size for info in members) > MAX_ARTIFACT_BYTES:
            raise HwlenetError(f"{path}: holds more than {MAX_ARTIFACT_BYTES >> 20} MiB of "
                               "tensors; not an hwlenet artifact")
        for info in members:
            if not info.filename.endswith(".npy"):
                raise HwlenetError(f"{path}: member {info.filename!r} is not a numpy array")
            data = archive.read(info)
            stream = io.BytesIO(data)
            version = np.lib.format.read_magic(stream)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
            else:
                raise HwlenetError(f"{path}: member {info.filename!r} has .npy version "
                                   f"{version}")
            if dtype.hasobject or dtype.itemsize == 0:
                raise HwlenetError(f"{path}: member {info.filename!r} has dtype {dtype}")
            offset = stream.tell()
            if _size(shape) * dtype.itemsize != len(data) - offset:
                raise HwlenetError(f"{path}: member {info.filename!r} is damaged (its header "
                                   f"says {shape}, it holds {len(data) - offset} bytes)")
            array = np.frombuffer(data, dtype=dtype, offset=offset)
            array = array.reshape(shape, order="F" if fortran else "C")
            arrays[info.filename[: -len(".npy")]] = array.astype(dtype.newbyteorder("="))
    return arrays


def load_artifact(path):
    """Read and validate an artifact written by :func:`save_artifact`.

    Raises
    ------
    HwlenetError
        When the file is missing, not an artifact, of another version, or inconsistent.
    """
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                raise HwlenetError(f"{path}: not a quantized artifact (not an .npz archive)")
        arrays = _read_members(path)
        manifest = arrays.pop("manifest")
        if manifest.dtype.kind != "U" or manifest.shape != ():
            raise HwlenetError(f"{path}: not a quantized artifact (its manifest is not text)")
        manifest = json.loads(str(manifest))
    except FileNotFoundError:
        raise HwlenetError(f"no such artifact: {path}") from None
    except IsADirectoryError:
        raise HwlenetError(f"{path}: is a folder, not a quantized artifact") from None
    except HwlenetError:
        raise
    except KeyError:
        raise HwlenetError(f"{path}: not a quantized artifact (no manifest)") from None
    except Exception as error:  # numpy/zipfile/json raise many types for damaged files
        reason = " ".join(str(error).split())[:160] or type(error).__name__
        raise HwlenetError(f"{path}: not a readable quantized artifact ({reason})") from None
    try:
        qmodel = _from_manifest(manifest, arrays, path)
    except HwlenetError as error:
        message = str(error)
        raise HwlenetError(message if message.startswith(f"{path}:")
                           else f"{path}: {message}") from None
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        reason = " ".join(f"{type(error).__name__}: {error}".split())[:160]
        raise HwlenetError(f"{path}: malformed manifest ({reason})") from None
    try:
        qmodel.validate()
    except HwlenetError as error:
        raise HwlenetError(f"{path}: {error}") from None
    return qmodel


def _from_manifest(manifest, arrays, path):
    if not isinstance(manifest, dict) or manifest.get("format") != ARTIFACT_FORMAT:
        raise HwlenetError(f"{path}: not a quantized artifact")
    if manifest.get("version") != ARTIFACT_VERSION:
        raise HwlenetError(f"{path}: artifact version {manifest.get('version')!r} is not "
                           f"supported (this hwlenet reads {ARTIFACT_VERSION})")
    from ..models import ARCHITECTURES

    if not isinstance(manifest["arch"], str) or manifest["arch"] not in ARCHITECTURES:
        raise HwlenetError(f"{path}: unknown architecture {manifest['arch']!r}")
    if not isinstance(manifest["layers"], list):
        raise HwlenetError(f"{path}: 'layers' must be a list")
    provenance = manifest.get("provenance", {})
    if not isinstance(provenance, dict):
        raise HwlenetError(f"{path}: 'provenance' must be an object")

    def tensor(name):
        if name not in arrays:
            raise HwlenetError(f"{path}: tensor {name} is missing")
        array = arrays[name]
        if array.dtype != np.int64:
            raise HwlenetError(f"{path}: tensor {name} is {array.dtype}, not int64")
        return array

    layers = []
    for entry in manifest["layers"]:
        if not isinstance(entry, dict):
            raise HwlenetError(f"{path}: a layer must be an object, not {entry!r}")
        name = entry["name"]
        if not isinstance(name, str) or not name:
            raise HwlenetError(f"{path}: a layer's name must be a non-empty string")
        layer = QLayer(
            name=name, kind=entry["kind"], activation=entry["activation"],
            in_shape=_shape(entry["in_shape"], name), out_shape=_shape(entry["out_shape"], name),
            input_format=FixedFormat.from_dict(entry["input_format"]),
            output_format=FixedFormat.from_dict(entry["output_format"]),
        )
        if layer.has_weights:
            layer.weight = tensor(f"{name}.weight")
            layer.bias = tensor(f"{name}.bias")
            layer.weight_format = FixedFormat.from_dict(entry["weight_format"])
            layer.bias_format = FixedFormat.from_dict(entry["bias_format"])
            layer.padding = _integer(entry["padding"], f"{path}: layer {name}: padding")
            layer.accumulator_width = _integer(entry["accumulator"]["width"],
                                               f"{path}: layer {name}: accumulator width")
            if entry["accumulator"]["frac"] != layer.acc_frac:
                raise HwlenetError(f"{path}: layer {name}: accumulator frac disagrees with "
                                   "weight and input formats")
            if entry["pre_format"] is not None:
                layer.pre_format = FixedFormat.from_dict(entry["pre_format"])
                layer.lut = tensor(f"{name}.lut")
            rbf = entry.get("rbf", False)
            if not isinstance(rbf, bool):
                raise HwlenetError(f"{path}: layer {name}: 'rbf' must be true or false")
            if rbf:
                layer.codes = tensor(f"{name}.codes")
        elif "rbf" in entry:
            raise HwlenetError(f"{path}: layer {name}: a {layer.kind} layer cannot be RBF")
        layers.append(layer)
    float_state = {key[len("float/"):]: value for key, value in arrays.items()
                   if key.startswith("float/")}
    _check_float_state(float_state, manifest["arch"], path)
    output_rule = manifest.get("output_rule", "argmax")
    if output_rule not in OUTPUT_RULES:
        raise HwlenetError(f"{path}: output rule {output_rule!r} is not one of "
                           f"{', '.join(OUTPUT_RULES)}")
    return QuantizedModel(
        arch=manifest["arch"], input_format=FixedFormat.from_dict(manifest["input_format"]),
        layers=layers, provenance=provenance, float_state=float_state, output_rule=output_rule,
    )


def _check_float_state(state, arch, path):
    """The float model's tensors: exactly those of ``arch``, float32, of its shapes, finite."""
    import torch

    from ..models import build_model

    with torch.random.fork_rng(devices=[]):  # building the model must not draw from the seed
        expected = {key: tuple(value.shape)
                    for key, value in build_model(arch).state_dict().items()}
    if set(state) != set(expected):
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        raise HwlenetError(f"{path}: the float tensors do not fit {arch!r} (missing "
                           f"{missing[:3]}, extra {extra[:3]})")
    for key, value in state.items():
        if value.dtype != np.float32 or value.shape != expected[key]:
            raise HwlenetError(f"{path}: float tensor {key} is {value.dtype} {value.shape}, not "
                               f"float32 {expected[key]}")
        if not np.isfinite(value).all():
            raise HwlenetError(f"{path}: float tensor {key} holds NaN or infinite values")
