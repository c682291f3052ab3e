"""Co-simulation on arrays of every shape, of randomly shaped LeNet-5 variants and with
directed coverage vectors (split from test_rtl_cosim.py, whose tests share one 8x8 export, so
that the two files run in parallel)."""

import numpy as np
import pytest

from hwlenet.checkpoint import resolve_model
from hwlenet.quant.quantize import quantize_model
from hwlenet.verify.cosim import run_cosim
from hwlenet.verify.emit import emit_verilog


@pytest.mark.parametrize("name,bits,array,images", [
    ("lenet5-classic", 6, (4, 8), 12), ("lenet5-relu", 10, (8, 4), 12),
    ("lenet5-relu", 8, (1, 1), 2), ("lenet5-classic", 8, (3, 5), 4),
    ("lenet5-relu", 7, (4, 6), 5), ("lenet5-classic", 8, (16, 16), 18)])
def test_other_array_sizes_and_widths(tmp_path, digit_images, name, bits, array, images):
    """Arrays of every shape (one column, odd and non-power-of-two columns, window lanes 1, 2
    and 4), bit-exact in exactly the predicted cycles."""
    calibration, vectors = digit_images
    qmodel = quantize_model(resolve_model(name)[0], calibration[:500], bits, bits)
    emit_verilog(qmodel, tmp_path, *array, vectors[:images])
    report = run_cosim(tmp_path, "verilator")
    assert report["bit_exact"] and report["images"] == images
    assert report["cycles"] == report["predicted_cycles"]


def test_cover_adds_directed_vectors_that_raise_table_coverage(tmp_path, qmodels, vector_images):
    qmodel = qmodels["lenet5-classic"]
    plain = emit_verilog(qmodel, tmp_path / "plain", 8, 8, vector_images[:20])
    covered = emit_verilog(qmodel, tmp_path / "covered", 8, 8, vector_images[:20], cover=True)
    assert plain["directed_vectors"] == 0 and covered["directed_vectors"] > 0
    assert covered["vectors"] == 20 + covered["directed_vectors"]

    def hit(manifest):
        return sum(row["table"]["hit"] for row in manifest["coverage"]["layers"] if row["table"])

    reachable = sum(row["table"]["reachable"] for row in covered["coverage"]["layers"]
                    if row["table"])
    assert hit(plain) < hit(covered) and hit(covered) >= 0.99 * reachable
    report = run_cosim(tmp_path / "covered", "verilator", jobs=2)
    assert report["bit_exact"] and report["coverage"] == covered["coverage"]


@pytest.mark.parametrize("seed,array", [(11, (4, 4)), (12, (3, 7))])
def test_randomly_shaped_lenet_variant_is_bit_exact(tmp_path, digit_images, seed, array):
    """A LeNet-5 with random channel counts, dense widths and classes (random weights): the
    shapes come from the artifact, and the export co-simulates bit-exactly in exactly the
    predicted cycles."""
    import torch

    from hwlenet.models import LeNet5Relu

    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = LeNet5Relu(maps=(int(rng.integers(2, 10)), int(rng.integers(3, 20))),
                       hidden=(int(rng.integers(8, 70)), int(rng.integers(4, 40))),
                       classes=int(rng.integers(2, 14)))
    qmodel = quantize_model(model, digit_images[0][:200])
    assert [layer.out_shape for layer in qmodel.layers][-1] == (model.out.out_features,)
    report_rows = emit_verilog(qmodel, tmp_path, *array, digit_images[1][:5])
    assert report_rows["bench"]["classes"] == model.out.out_features
    report = run_cosim(tmp_path, "verilator", 5)
    assert report["bit_exact"] and report["cycles"] == report["predicted_cycles"]


def test_lenet_variant_sizes_are_validated():
    from hwlenet.models import LeNet5Relu

    with pytest.raises(ValueError, match="maps must be two positive integers"):
        LeNet5Relu(maps=(6, 0))
    with pytest.raises(ValueError, match="classes must be an integer of at least 2"):
        LeNet5Relu(classes=1)
