"""Design-space exploration on Dask: sweeps of models, precisions, arrays and targets, each
point a chain of cached stages (quantize, simulate, emit, co-simulate, synthesize)."""

from .results import pareto_front, plot_sweep, write_results
from .spec import STAGES, ExploreSpec, SweepPart, load_spec, parse_spec
from .sweep import ROW_FIELDS, explore, start_client, submit_sweep

__all__ = ["ROW_FIELDS", "STAGES", "ExploreSpec", "explore", "load_spec", "pareto_front",
           "parse_spec", "plot_sweep", "start_client", "submit_sweep", "SweepPart", "sweep_data",
           "write_results"]


def sweep_data(spec, data_dir=None):
    """The images a sweep needs, from the resolved MNIST source: ``(data, splits)`` where
    ``data`` has ``calibration`` (training images), ``test_images``, ``test_labels``,
    ``vectors`` (the first ``spec.vectors`` test images) and, when a point runs QAT, ``train``
    (every training image and label), and ``splits`` the
    :class:`~hwlenet.data.MnistSplit` objects used, by what they are used for."""
    from ..data import load_mnist

    whole = load_mnist("train", data_dir)
    calibration = whole.head(spec.calibration)
    test = load_mnist("test", data_dir).head(spec.test_images)
    data = {"calibration": calibration.images, "test_images": test.images,
            "test_labels": test.labels, "vectors": test.images[:spec.vectors]}
    splits = {"calibration": calibration, "test": test}
    if spec.trains:
        data["train"] = (whole.images, whole.labels)
        splits["QAT training"] = whole
    return data, splits
