import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwlenet import HwlenetError
from hwlenet.sim import kernels
from hwlenet.sim.reference import reference_layer
from helpers import random_layer

LAYER_FUNCTIONS = {"conv": kernels.conv_layer, "dense": kernels.dense_layer,
                   "subsample": kernels.subsample_layer, "maxpool": kernels.maxpool_layer}


@pytest.mark.parametrize("kind", sorted(LAYER_FUNCTIONS))
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), wide=st.booleans())
def test_numba_matches_reference(kind, seed, wide):
    layer, x = random_layer(seed, kind, wide)
    got = LAYER_FUNCTIONS[kind](layer, x)
    expected = np.stack([reference_layer(layer, image) for image in x])
    np.testing.assert_array_equal(got, expected.reshape(got.shape))


def test_int32_and_int64_accumulators_both_exercised():
    widths = {random_layer(seed, "dense", wide)[0].accumulator_width
              for seed in range(40) for wide in (False, True)}
    assert min(widths) <= 32 < max(widths)


def test_wrong_input_shape():
    layer, x = random_layer(3, "conv")
    with pytest.raises(HwlenetError, match="input shape"):
        kernels.conv_layer(layer, x[:, :, 1:, :])
