"""Figures: per-layer quantization error and accuracy against bit width."""

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

__all__ = ["plot_accuracy_sweep", "plot_layer_errors"]


def plot_layer_errors(report, path, title=""):
    """Bar chart of each layer's SQNR (dB) and maximum absolute error from a simulate report."""
    names = [row["name"] for row in report["layers"]]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [row["sqnr_db"] for row in report["layers"]], color="tab:blue")
    left.set_ylabel("SQNR vs float (dB)")
    right.bar(names, [row["max_abs_error"] for row in report["layers"]], color="tab:orange")
    right.set_ylabel("max |fixed - float|")
    figure.suptitle(f"{title}: fixed {report['fixed_accuracy']:.2%}, float "
                    f"{report['float_accuracy']:.2%}, agreement {report['agreement']:.2%}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_accuracy_sweep(rows, path):
    """Fixed-point accuracy against bit width, one line per model, float accuracy dashed.

    ``rows`` are dicts with ``model``, ``bits``, ``fixed_accuracy`` and ``float_accuracy``.
    """
    figure, axes = plt.subplots(figsize=(6, 4))
    for index, model in enumerate(sorted({row["model"] for row in rows})):
        mine = sorted((row for row in rows if row["model"] == model), key=lambda r: r["bits"])
        color = f"C{index}"
        axes.plot([r["bits"] for r in mine], [100 * r["fixed_accuracy"] for r in mine], "o-",
                  color=color, label=f"{model} fixed point")
        axes.axhline(100 * mine[0]["float_accuracy"], color=color, ls="--", lw=1,
                     label=f"{model} float")
    axes.set_xlabel("bits (weights = activations)")
    axes.set_ylabel("test accuracy (%)")
    axes.legend(fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
