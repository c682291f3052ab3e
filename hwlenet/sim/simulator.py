"""The bit-accurate batch simulator and its comparison with the float model."""

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from ..errors import HwlenetError
from ..models import build_model
from . import kernels

__all__ = ["SimulationResult", "check_images", "compare_with_float", "float_model_of",
           "simulate"]


@dataclass
class SimulationResult:
    """Integer logits ``(N, classes)`` (the last layer's outputs: for an RBF output, the reduced
    penalties), predicted classes ``(N,)`` and, when traced, every layer's integer output by
    layer name (shapes ``(N, *out_shape)``)."""

    logits: np.ndarray
    classes: np.ndarray
    trace: dict
    output_rule: str = "argmax"

    @property
    def output_kind(self):
        """What ``logits`` holds: ``"logits"`` (class = argmax) or, for an RBF output,
        ``"penalties"`` (class = argmin)."""
        return "penalties" if self.output_rule == "argmin" else "logits"


def check_images(images):
    """``images`` as a uint8 array ``(N, 28, 28)`` (one image may omit N); HwlenetError if not."""
    images = np.asarray(images)
    if images.ndim == 2:
        images = images[None]
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise HwlenetError(f"images must have shape (N, 28, 28), not {images.shape}")
    if images.dtype != np.uint8:
        raise HwlenetError(f"images must be uint8 pixels, not {images.dtype}")
    return images


def simulate(qmodel, images, trace=False, chunk=1000, progress=False):
    """Run the quantized model on uint8 images ``(N, 28, 28)`` with the compiled kernels.

    The class of an image follows the artifact's output rule: the index of its largest logit or
    (RBF output) of its smallest penalty, the lowest index on ties.

    Parameters
    ----------
    qmodel : QuantizedModel
    images : numpy.ndarray of uint8
    trace : bool
        Also return every layer's integer output.
    chunk : int
        Images per batch (bounds the memory of intermediate layers).
    progress : bool
        Show a progress bar.

    Returns
    -------
    SimulationResult
    """
    images = check_images(images)
    outputs = OrderedDict((layer.name, []) for layer in qmodel.layers)
    starts = range(0, len(images), chunk)
    for start in tqdm(starts, desc="simulate", unit="chunk", disable=not progress):
        x = images[start : start + chunk].reshape(-1, *qmodel.layers[0].in_shape)
        for layer in qmodel.layers:
            x = kernels.run_layer(layer, x)
            if trace or layer is qmodel.layers[-1]:
                outputs[layer.name].append(x)
    joined = OrderedDict((name, np.concatenate(parts).astype(np.int64))
                         for name, parts in outputs.items() if parts)
    logits = joined[qmodel.layers[-1].name]
    return SimulationResult(logits, qmodel.classify(logits), joined if trace else {},
                            qmodel.output_rule)


def float_model_of(qmodel):
    """The float model the artifact was quantized from (its weights travel in the artifact)."""
    model = build_model(qmodel.arch)
    state = {key: torch.from_numpy(np.array(value)) for key, value in qmodel.float_state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise HwlenetError("the artifact's float weights do not fit its architecture") from None
    model.eval()
    return model


def compare_with_float(qmodel, images, labels, chunk=1000, progress=False):
    """Fixed-point against float on labelled images: accuracies, agreement and per-layer SQNR.

    Returns
    -------
    dict
        ``images``, ``float_accuracy``, ``fixed_accuracy``, ``agreement``, ``output_rule``
        (``argmax`` of logits or ``argmin`` of RBF penalties), ``output`` (``logits`` or
        ``penalties``) and ``layers``, a list of ``{name, sqnr_db, max_abs_error}`` with the
        fixed output dequantized by its format (for an RBF layer, the reduced penalty
        ``84 - 2 c . x`` against the float model's).
    """
    images = check_images(images)
    model = float_model_of(qmodel)
    signal = {layer.name: 0.0 for layer in qmodel.layers}
    noise = dict(signal)
    max_error = dict(signal)
    float_classes, fixed_classes = [], []
    starts = range(0, len(images), chunk)
    for start in tqdm(starts, desc="simulate", unit="chunk", disable=not progress):
        batch = images[start : start + chunk]
        fixed = simulate(qmodel, batch, trace=True, chunk=chunk)
        with torch.no_grad():
            reference = model.forward_trace(torch.from_numpy(batch).float().unsqueeze(1))
        for layer in qmodel.layers:
            want = reference[layer.name].double().numpy().reshape(len(batch), -1)
            got = layer.output_format.to_float(fixed.trace[layer.name]).reshape(len(batch), -1)
            signal[layer.name] += float(np.sum(want**2))
            noise[layer.name] += float(np.sum((want - got) ** 2))
            max_error[layer.name] = max(max_error[layer.name], float(np.abs(want - got).max()))
        float_classes.append(qmodel.classify(reference[qmodel.layers[-1].name].numpy()))
        fixed_classes.append(fixed.classes)
    float_classes = np.concatenate(float_classes)
    fixed_classes = np.concatenate(fixed_classes)
    layers = []
    for layer in qmodel.layers:
        ratio = signal[layer.name] / noise[layer.name] if noise[layer.name] else float("inf")
        layers.append({"name": layer.name,
                       "sqnr_db": float(10 * np.log10(ratio)) if ratio > 0 else float("-inf"),
                       "max_abs_error": max_error[layer.name]})
    return {
        "images": int(len(images)),
        "float_accuracy": float(np.mean(float_classes == labels)),
        "fixed_accuracy": float(np.mean(fixed_classes == labels)),
        "agreement": float(np.mean(float_classes == fixed_classes)),
        "output_rule": qmodel.output_rule,
        "output": "penalties" if qmodel.output_rule == "argmin" else "logits",
        "layers": layers,
    }
