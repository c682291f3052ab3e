"""Defaults that the library and the command line share, in a module that imports nothing, so
that the command line can show them in its help without loading numpy or torch."""

__all__ = ["AUGMENTED_COPIES", "LR_CANDIDATES", "VALIDATION_IMAGES"]

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
