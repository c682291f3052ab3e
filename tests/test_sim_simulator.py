import numpy as np
import pytest

from hwlenet import HwlenetError
from hwlenet.sim import compare_with_float, reference_forward, simulate


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
def test_whole_network_matches_reference(qmodels, test_split, name):
    qmodel = qmodels[name]
    images = test_split.images[:3]
    result = simulate(qmodel, images, trace=True)
    for index, image in enumerate(images):
        for layer, expected in zip(qmodel.layers, reference_forward(qmodel, image)):
            np.testing.assert_array_equal(result.trace[layer.name][index], expected,
                                          err_msg=f"{name} layer {layer.name} image {index}")
    np.testing.assert_array_equal(result.logits, result.trace["out"])
    np.testing.assert_array_equal(result.classes, result.logits.argmax(1))


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
def test_eight_bits_within_two_tenths_of_float_on_full_test_set(qmodels, test_split, name):
    report = compare_with_float(qmodels[name], test_split.images, test_split.labels)
    assert report["images"] == 10000
    assert report["fixed_accuracy"] >= report["float_accuracy"] - 0.002
    assert report["agreement"] > 0.99
    assert [row["name"] for row in report["layers"]] == qmodels[name].layer_names
    assert all(row["sqnr_db"] > 25 for row in report["layers"])


def test_chunking_does_not_change_results(qmodels, test_split):
    qmodel = qmodels["lenet5-relu"]
    whole = simulate(qmodel, test_split.images[:50])
    pieces = simulate(qmodel, test_split.images[:50], chunk=7)
    np.testing.assert_array_equal(whole.logits, pieces.logits)


@pytest.mark.parametrize("images,message", [
    (np.zeros((2, 28, 27), np.uint8), "shape"),
    (np.zeros((2, 28, 28), np.float32), "uint8"),
])
def test_bad_images(qmodels, images, message):
    with pytest.raises(HwlenetError, match=message):
        simulate(qmodels["lenet5-relu"], images)
