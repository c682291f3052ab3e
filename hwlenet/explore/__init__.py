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
    ``data`` has ``calibration`` (training images), ``test_images``, ``test_labels`` and
    ``vectors`` (the first ``spec.vectors`` test images) and ``splits`` the
    :class:`~hwlenet.data.MnistSplit` objects used (``train``, ``test``)."""
    from ..data import load_mnist

    train = load_mnist("train", data_dir).head(spec.calibration)
    test = load_mnist("test", data_dir).head(spec.test_images)
    data = {"calibration": train.images, "test_images": test.images,
            "test_labels": test.labels, "vectors": test.images[:spec.vectors]}
    return data, {"train": train, "test": test}
