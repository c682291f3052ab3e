"""Shared fixtures: the MNIST folder from $HWLENET_DATA (tests needing it skip without it)."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def data_dir():
    path = os.environ.get("HWLENET_DATA")
    if not path or not Path(path).is_dir():
        pytest.skip("needs the MNIST IDX folder: set HWLENET_DATA (make test sets it)")
    return Path(path)


@pytest.fixture(scope="session")
def test_split(data_dir):
    from hwlenet.data import load_mnist

    return load_mnist("test", data_dir, download=False)


@pytest.fixture(scope="session")
def train_split(data_dir):
    from hwlenet.data import load_mnist

    return load_mnist("train", data_dir, download=False)


@pytest.fixture(scope="session")
def qmodels(train_split):
    """Both shipped models quantized at 8 bits (calibrated on 1000 training images)."""
    from hwlenet.checkpoint import resolve_model
    from hwlenet.quant.quantize import quantize_model

    return {name: quantize_model(resolve_model(name)[0], train_split.images[:1000])
            for name in ("lenet5-classic", "lenet5-relu")}
