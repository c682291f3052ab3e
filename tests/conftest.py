"""Shared fixtures.

The MNIST folder comes from ``$HWLENET_DATA``; only tests about accuracy need real digits and
skip without it. Bit-exactness needs no real digits: the hardware tests take
:func:`digit_images`, which are MNIST test images when the folder is there and seeded random
digit-like images otherwise, so they always run. With ``HWLENET_STRICT=1`` (set by ``.ci/run``)
a skipped test fails the run.
"""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

STRICT = os.environ.get("HWLENET_STRICT") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.skipped:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"HWLENET_STRICT=1 forbids skips: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if STRICT and report.outcome == "skipped":
        report.outcome = "failed"
        report.longrepr = f"HWLENET_STRICT=1 forbids skips: {report.longrepr}"


def _data_folder():
    path = os.environ.get("HWLENET_DATA")
    return Path(path) if path and Path(path).is_dir() else None


@pytest.fixture(scope="session")
def data_dir():
    path = _data_folder()
    if path is None:
        pytest.skip("needs the MNIST IDX folder: set HWLENET_DATA (make test sets it)")
    return path


@pytest.fixture(scope="session")
def test_split(data_dir):
    from hwlenet.data import load_mnist

    return load_mnist("test", data_dir, download=False)


@pytest.fixture(scope="session")
def train_split(data_dir):
    from hwlenet.data import load_mnist

    return load_mnist("train", data_dir, download=False)


def random_digits(count, seed):
    """Seeded uint8 images that look enough like digits to exercise every layer: a few thick
    random strokes on a dark background, blurred, with MNIST's 4-pixel empty border."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, 28, 28), np.float64)
    for image in images:
        for _ in range(rng.integers(2, 5)):
            y0, x0, y1, x1 = rng.uniform(5, 23, size=4)
            for t in np.linspace(0, 1, 40):
                y, x = int(y0 + t * (y1 - y0)), int(x0 + t * (x1 - x0))
                image[y - 1 : y + 2, x - 1 : x + 2] = 1.0
        image[4:24, 4:24] += rng.uniform(0, 0.3, size=(20, 20)) * (image[4:24, 4:24] > 0)
    return np.clip(images * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def digit_images():
    """``(calibration, vectors)``: MNIST training and test images when ``$HWLENET_DATA`` is
    there, else seeded random digit-like images (1000 and 200)."""
    folder = _data_folder()
    if folder is None:
        return random_digits(1000, seed=1), random_digits(200, seed=2)
    from hwlenet.data import load_mnist

    return (load_mnist("train", folder, download=False).images[:1000],
            load_mnist("test", folder, download=False).images[:200])


@pytest.fixture(scope="session")
def vector_images(digit_images):
    return digit_images[1]


@pytest.fixture(scope="session")
def qmodels(digit_images):
    """Both shipped models quantized at 8 bits (calibrated on 1000 images)."""
    from hwlenet.checkpoint import resolve_model
    from hwlenet.quant.quantize import quantize_model

    return {name: quantize_model(resolve_model(name)[0], digit_images[0])
            for name in ("lenet5-classic", "lenet5-relu")}


@pytest.fixture(scope="session")
def plans():
    """``plans(name, rows, cols, window_lanes=None)``: the hardware plan of shipped model
    ``name`` quantized at 8 bits on seeded random calibration images (block tests need plans,
    not accuracy), cached."""
    from hwlenet.checkpoint import resolve_model
    from hwlenet.quant.quantize import quantize_model
    from hwlenet.rtl.plan import plan_hardware

    calibration = np.random.default_rng(3).integers(0, 256, (16, 28, 28), dtype=np.uint8)
    qmodels, cache = {}, {}

    def plan(name, rows, cols, window_lanes=None):
        if name not in qmodels:
            qmodels[name] = quantize_model(resolve_model(name)[0], calibration)
        key = name, rows, cols, window_lanes
        if key not in cache:
            cache[key] = plan_hardware(qmodels[name], rows, cols, window_lanes=window_lanes)
        return cache[key]
    return plan
