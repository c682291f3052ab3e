"""The results of a sweep: a CSV and a JSON table, and a plot with the Pareto fronts marked."""

import csv
import io
import json

import matplotlib

matplotlib.use("Agg")
from matplotlib import pyplot as plt  # noqa: E402

from ..outputs import write_bytes, write_text  # noqa: E402
from .sweep import ROW_FIELDS  # noqa: E402

__all__ = ["pareto_front", "plot_sweep", "write_results"]


def pareto_front(points):
    """Indices of the points ``(cost, accuracy)`` that no other point beats: none has a cost
    at most theirs and an accuracy at least theirs with one of the two strictly better.
    Sorted by cost."""
    front = []
    for index, (cost, accuracy) in enumerate(points):
        dominated = any(other_cost <= cost and other_accuracy >= accuracy
                        and (other_cost < cost or other_accuracy > accuracy)
                        for other_cost, other_accuracy in points)
        if not dominated:
            front.append(index)
    return sorted(front, key=lambda index: points[index])


def _axes_values(rows):
    """The two x axes of the plot: (label, cost of a row) pairs, lower cost is better.

    With place-and-route results the axes are images per second (as a negative cost) and
    LUTs; without them, cycles per image and weight memory."""
    if any(row.get("images_per_second") for row in rows):
        throughput = ("throughput (images/s at Fmax)", "images_per_second", -1)
    else:
        throughput = ("cycles per image (fewer is faster)", "cycles_per_image", 1)
    if any(row.get("luts") for row in rows):
        resources = ("LUTs", "luts", 1)
    else:
        resources = ("weight memory (kbit)", "weight_memory_bits", 1e-3)
    return throughput, resources


def plot_sweep(rows, path):
    """Accuracy against throughput and against resources, one colour per target (or array
    when nothing was synthesized), with each panel's Pareto front drawn as a line."""
    usable = [row for row in rows if row.get("accuracy") is not None and not row.get("error")]
    figure, panels = plt.subplots(1, 2, figsize=(11, 4.5))
    group_key = "target" if any(row.get("target") for row in usable) else "array"
    groups = sorted({str(row.get(group_key)) for row in usable})
    for panel, (label, field, scale) in zip(panels, _axes_values(usable)):
        placed = [row for row in usable if row.get(field) is not None]
        for index, group in enumerate(groups):
            mine = [row for row in placed if str(row.get(group_key)) == group]
            panel.scatter([abs(scale) * row[field] for row in mine],
                          [100 * row["accuracy"] for row in mine], color=f"C{index}", s=24,
                          label=f"{group_key} {group}" if group != "None" else "all points")
        costs = [(scale * row[field], row["accuracy"]) for row in placed]
        front = pareto_front(costs)
        if front:
            panel.plot([abs(scale) * placed[i][field] for i in front],
                       [100 * placed[i]["accuracy"] for i in front], "k--", lw=1,
                       marker="o", mfc="none", ms=10, label="Pareto front")
        panel.set_xlabel(label)
        panel.set_ylabel("test accuracy (%)")
        panel.grid(alpha=0.3)
        panel.legend(fontsize=8)
    figure.suptitle(f"hwlenet explore: {len(usable)} points")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    write_bytes(path, buffer.getvalue())


def write_results(summary, directory):
    """Write ``results.csv``, ``results.json`` and ``pareto.png`` into ``directory``; returns
    their paths by name."""
    paths = {"csv": directory / "results.csv", "json": directory / "results.json",
             "plot": directory / "pareto.png"}
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=ROW_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(summary["rows"])
    write_text(paths["csv"], table.getvalue())
    write_text(paths["json"], json.dumps(summary, indent=2, sort_keys=True) + "\n")
    plot_sweep(summary["rows"], paths["plot"])
    return paths
