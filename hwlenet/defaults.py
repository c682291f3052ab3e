"""Defaults that the library and the command line share, in a module that imports only the
standard library and :mod:`hwlenet.errors`, so that the command line can show them in its help
without loading numpy or torch."""

import numbers
import os

from .errors import HwlenetError

__all__ = ["AUGMENTED_COPIES", "LR_CANDIDATES", "VALIDATION_IMAGES", "resolve_jobs"]

#: Training images :func:`hwlenet.data.split_validation` holds out by default (at most a fifth
#: of them).
VALIDATION_IMAGES = 2000
#: Seeded augmentations of each held-out image that ``hwlenet qat`` and ``hwlenet autotune``
#: add to their validation split (``augmented_copies`` of
#: :func:`hwlenet.data.split_validation`).
AUGMENTED_COPIES = 2
#: The learning rates :func:`hwlenet.quant.qat.qat_select_lr` (``hwlenet qat --lr auto``)
#: tries.
LR_CANDIDATES = (2.5e-4, 5e-4, 1e-3)


def resolve_jobs(jobs, name="jobs"):
    """The number of parallel processes a run uses: ``jobs``, or one per CPU that this process
    may run on when ``jobs`` is None.

    Raises
    ------
    HwlenetError
        When ``jobs`` is neither None nor a positive integer (the message calls it ``name``).
    """
    if jobs is None:
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:  # no CPU affinity on this platform (macOS)
            return os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, numbers.Integral) or jobs < 1:
        raise HwlenetError(f"{name} must be a positive integer or None, not {jobs!r}")
    return int(jobs)
