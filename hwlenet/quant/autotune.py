"""Automatic per-layer precision search (``hwlenet autotune``).

Every candidate is a per-layer config (the structure ``hwlenet quantize --config`` accepts)
quantized by :func:`~hwlenet.quant.quantize.quantize_model` and run by the bit-accurate numba
simulator on a *validation* split held out of the training data; the test set is never looked
at during the search. A candidate is *feasible* when its validation accuracy is at most
``max_drop`` percentage points below the float model's on the same images.

Search (greedy, each step keeping only feasible candidates):

1. **uniform**: all weights at one width, from the widest down, each with the weights'
   fractional bits at the range-fitted value plus 0, 1 or 2 (more resolution, large weights
   clipped), until no offset is feasible;
2. **per layer, weights**: from the narrowest feasible uniform config, layer by layer (most
   weights first), lower the layer's weight width one bit at a time, trying each frac offset,
   while some offset stays feasible;
3. **per layer, activations**: then lower each hidden layer's output width the same way (the
   fractional bits fitted to the calibrated range);
4. the answer is the cheapest feasible candidate evaluated: by the objective, then the other
   cost, then the activation bits, then the higher validation accuracy;
5. optionally (``hwlenet autotune --qat-epochs N``), :func:`refine_with_qat` fine-tunes the
   answer's formats on the rest of the training data, which recovers test accuracy that the
   validation split, seen by the float model's training, cannot show.

The validation split (:func:`hwlenet.data.split_validation`) is a seeded part of the training
split, plus by default two seeded augmentations of each of its images: the shipped float
models were trained on every training image, so the plain held-out images are almost all
classified right and barely tell configurations apart; their augmentations are images no model
has seen.

Costs of a candidate (:func:`costs`):

``weight-bits``
    the weight memory: the sum over weighted layers of (number of weights) x (weight width);
``multipliers``
    the size of the processing elements' multiplier, (weight width) x (operand width) as
    :func:`hwlenet.rtl.plan.multiplier_widths` sizes the hardware from the widest formats in
    use;
``activation-bits``
    bits of every layer's output for one image (the feature buffers' contents).
"""

import time

import numpy as np
from tqdm import tqdm

from ..errors import HwlenetError
from ..sim.simulator import simulate
from .qat import classes_of, config_of
from .quantize import check_config, fitting_format, quantize_model

__all__ = ["OBJECTIVES", "autotune", "costs", "pareto_front", "plot_search", "refine_with_qat"]

OBJECTIVES = ("weight-bits", "multipliers")
#: Fractional-bit offsets tried for weights, above the range-fitted value.
FRAC_OFFSETS = (0, 1, 2)
#: Widths tried for weights and for hidden activations, widest first.
WIDTHS = (8, 7, 6, 5, 4, 3, 2)


def costs(qmodel):
    """``{"weight-bits": ..., "multipliers": ..., "activation-bits": ...}`` of an artifact
    (see the module docstring)."""
    from ..rtl.plan import multiplier_widths

    weighted = [layer for layer in qmodel.layers if layer.has_weights]
    weight_bits = sum(int(layer.weight.size) * layer.weight_format.width for layer in weighted)
    weight_width, operand_width = multiplier_widths(qmodel)
    activation_bits = sum(int(np.prod(layer.out_shape)) * layer.output_format.width
                          for layer in qmodel.layers if layer.kind != "maxpool")
    return {"weight-bits": weight_bits, "multipliers": weight_width * operand_width,
            "activation-bits": activation_bits}


class _Search:
    """Evaluates candidates (cached by their config) and remembers every one."""

    def __init__(self, model, calibration_images, validation, act_bits, progress):
        from .qat import float_parameters

        self.model = model
        self.calibration = calibration_images
        self.validation = validation
        self.act_bits = act_bits
        self.cache = {}
        self.evaluated = []
        with_grad = float_parameters(model)
        self.weight_max = {name: float(weight.detach().abs().max())
                           for name, (weight, _) in with_grad.items()}
        self.bar = tqdm(desc="autotune", unit="config", disable=not progress)

    def config(self, weights, activations):
        """The ``--config`` dict of per-layer weight ``(width, frac offset)`` and output
        widths."""
        layers = {}
        for name, (width, offset) in weights.items():
            fitted = fitting_format(self.weight_max[name], width, True, "half_up", "saturate")
            layers.setdefault(name, {})["weight"] = {"width": width,
                                                      "frac": fitted.frac + offset}
        for name, width in activations.items():
            layers.setdefault(name, {})["output"] = {"width": width}
        return {"layers": layers}

    def evaluate(self, weights, activations, phase):
        config = self.config(weights, activations)
        key = repr(sorted((name, sorted(entry.items(), key=str))
                          for name, entry in config["layers"].items()))
        if key in self.cache:
            return self.cache[key]
        try:
            qmodel = quantize_model(self.model, self.calibration, 8, self.act_bits,
                                    config=config)
        except HwlenetError:
            self.cache[key] = None  # e.g. an accumulator beyond 63 bits: not a candidate
            return None
        result = simulate(qmodel, self.validation.images)
        accuracy = float(np.mean(classes_of(qmodel, result.logits) == self.validation.labels))
        entry = {"phase": phase, "accuracy": accuracy, **costs(qmodel),
                 "weights": {name: list(value) for name, value in weights.items()},
                 "activations": dict(activations), "config": config_of(qmodel)}
        self.evaluated.append(entry)
        self.cache[key] = entry
        self.bar.update()
        self.bar.set_postfix(accuracy=f"{accuracy:.4f}", weight_bits=entry["weight-bits"])
        return entry


def autotune(model, calibration_images, validation, max_drop, objective="weight-bits",
             weight_widths=WIDTHS, act_widths=WIDTHS, act_bits=8, progress=False):
    """Search per-layer widths for the cheapest config within ``max_drop`` points of float.

    Parameters
    ----------
    model : LeNet5Classic or LeNet5Relu
    calibration_images : numpy.ndarray of uint8, shape (N, 28, 28)
        Training images that calibrate activation ranges (not the validation images).
    validation : MnistSplit
        Held-out training images that decide feasibility.
    max_drop : float
        Largest allowed validation-accuracy drop from float, in percentage points (>= 0).
    objective : {"weight-bits", "multipliers"}
    weight_widths, act_widths : sequence of int
        Widths tried (each 2..8); ``act_widths`` empty skips the activation phase.
    act_bits : int
        Hidden-activation width of the starting point.

    Returns
    -------
    dict
        ``config`` (complete ``--config`` dict of the answer), ``best`` (its evaluation),
        ``float_accuracy`` and ``threshold`` (validation), ``uniform8`` (the uniform 8-bit
        evaluation), ``evaluated`` (every candidate: phase, accuracy, costs, widths),
        ``configurations`` (their number) and ``seconds``.

    Raises
    ------
    HwlenetError
        On a bad ``max_drop``, ``objective`` or width list, or when not even the widest uniform
        config is feasible.
    """
    from ..train import evaluate_model

    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not (
            0 <= max_drop <= 100):
        raise HwlenetError(f"max drop must be a number of percentage points from 0 to 100, "
                           f"not {max_drop!r}")
    if objective not in OBJECTIVES:
        raise HwlenetError(f"objective must be one of {', '.join(OBJECTIVES)}, not "
                           f"{objective!r}")
    for label, widths in (("weight widths", weight_widths), ("activation widths", act_widths)):
        if any(isinstance(w, bool) or not isinstance(w, int) or not 2 <= w <= 16
               for w in widths):
            raise HwlenetError(f"{label} must be integers from 2 to 16, not {list(widths)!r}")
    if not weight_widths:
        raise HwlenetError("weight widths must not be empty")
    if len(validation) == 0:
        raise HwlenetError("the validation split is empty")
    check_config(None, model)
    start = time.perf_counter()
    float_accuracy = evaluate_model(model, validation)
    threshold = float_accuracy - max_drop / 100
    search = _Search(model, calibration_images, validation, act_bits, progress)
    template = quantize_model(model, calibration_images, 8, act_bits)
    sizes = {layer.name: int(layer.weight.size) for layer in template.layers
             if layer.has_weights and layer.name in search.weight_max}
    names = sorted(sizes, key=lambda name: (-sizes[name], name))
    hidden = [layer.name for layer in template.layers[:-1]
              if layer.has_weights and layer.activation != "none"]

    def feasible(entry):
        return entry is not None and entry["accuracy"] >= threshold

    def best_offset(weights, name, width, phase):
        """The feasible evaluation (highest accuracy) over frac offsets of ``name``."""
        found = None
        for offset in FRAC_OFFSETS:
            trial = {**weights, name: (width, offset)}
            entry = search.evaluate(trial, activations, phase)
            if feasible(entry) and (found is None or entry["accuracy"] > found[1]["accuracy"]):
                found = trial, entry
        return found

    activations = {}
    uniform8 = search.evaluate({name: (8, 0) for name in names}, activations, "uniform")
    current = None
    for width in sorted(weight_widths, reverse=True):
        found = None
        for offset in FRAC_OFFSETS:
            trial = {name: (width, offset) for name in names}
            entry = search.evaluate(trial, activations, "uniform")
            if feasible(entry) and (found is None or entry["accuracy"] > found[1]["accuracy"]):
                found = trial, entry
        if found is None:
            break
        current = found[0]
    if current is None:
        search.bar.close()
        widest = max(weight_widths)
        raise HwlenetError(f"no uniform {widest}-bit config is within {max_drop} points of "
                           f"float on the validation split ({float_accuracy:.2%}); allow a "
                           "larger --max-drop")
    for name in names:
        for width in sorted((w for w in weight_widths if w < current[name][0]), reverse=True):
            found = best_offset(current, name, width, "layer weights")
            if found is None:
                break
            current = found[0]
    for name in hidden:
        for width in sorted((w for w in act_widths if w < act_bits), reverse=True):
            entry = search.evaluate(current, {**activations, name: width}, "layer activations")
            if not feasible(entry):
                break
            activations[name] = width
    search.bar.close()
    other = "multipliers" if objective == "weight-bits" else "weight-bits"
    candidates = [entry for entry in search.evaluated if feasible(entry)]
    best = min(candidates, key=lambda e: (e[objective], e[other], e["activation-bits"],
                                          -e["accuracy"]))
    return {
        "objective": objective, "max_drop": max_drop, "float_accuracy": float_accuracy,
        "threshold": threshold, "validation_images": len(validation),
        "config": best["config"], "best": best, "uniform8": uniform8,
        "evaluated": search.evaluated, "configurations": len(search.evaluated),
        "seconds": time.perf_counter() - start,
    }


def refine_with_qat(model, search_split, validation, calibration_images, config, epochs,
                    seed=0, progress=False):
    """Fine-tune ``model`` in place with QAT under the chosen ``config`` on the search split
    (never the validation or test images), the learning rate chosen on the validation split
    by :func:`~hwlenet.quant.qat.qat_select_lr`; returns its selection record, whose
    ``validation_accuracy`` is the fine-tuned model's fixed-point validation accuracy.

    The formats stay those of ``config``; quantizing the fine-tuned model with it gives the
    artifact whose accuracy this is (the QAT forward is that artifact's integer forward).
    """
    from .qat import qat_select_lr

    return qat_select_lr(model, search_split, validation, calibration_images, config,
                         epochs=epochs, seed=seed, progress=progress,
                         description="autotune qat")[1]


def pareto_front(points):
    """Indices of the points ``(cost, accuracy)`` no other point beats: none has a cost at
    most as high and an accuracy at least as high, one of them strictly. Sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def plot_search(result, path, title=""):
    """Validation accuracy against the objective's cost for every evaluated candidate, the
    Pareto front joined, the answer circled, float and the feasibility threshold dashed."""
    from ..plots import plt

    objective = result["objective"]
    evaluated = result["evaluated"]
    points = [(entry[objective], 100 * entry["accuracy"]) for entry in evaluated]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for index, phase in enumerate(("uniform", "layer weights", "layer activations")):
        mine = [p for p, e in zip(points, evaluated) if e["phase"] == phase]
        if mine:
            axes.scatter([p[0] for p in mine], [p[1] for p in mine], s=14, color=f"C{index}",
                         alpha=0.7, label=f"{phase} ({len(mine)})")
    front = [points[i] for i in pareto_front(points)]
    axes.step([p[0] for p in front], [p[1] for p in front], where="post", color="black", lw=1,
              label="Pareto front")
    axes.scatter([p[0] for p in front], [p[1] for p in front], s=28, facecolors="none",
                 edgecolors="black")
    best = result["best"]
    axes.scatter([best[objective]], [100 * best["accuracy"]], s=120, marker="*", color="red",
                 zorder=5, label="chosen")
    axes.axhline(100 * result["float_accuracy"], color="gray", ls="--", lw=1, label="float")
    axes.axhline(100 * result["threshold"], color="red", ls=":", lw=1,
                 label=f"float - {result['max_drop']:g} points")
    low = min(100 * result["threshold"] - 1, 100 * best["accuracy"] - 1)
    axes.set_ylim(max(low, min(p[1] for p in points) - 0.2), 100.05)
    axes.set_xlabel({"weight-bits": "weight memory (bits)",
                     "multipliers": "PE multiplier size (weight bits x operand bits)"}[objective])
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title(title or f"autotune: {result['configurations']} configurations")
    axes.legend(fontsize=8, loc="lower right")
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100, format="png")
    plt.close(figure)
