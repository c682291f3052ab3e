import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwlenet import HwlenetError
from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat, requantize_int
from hwlenet.sim.kernels import requantize_array

formats = st.builds(
    FixedFormat, width=st.integers(2, 32), frac=st.integers(-8, 40), signed=st.booleans(),
    rounding=st.sampled_from(ROUNDING_MODES), overflow=st.sampled_from(OVERFLOW_MODES),
)


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=20),
       from_frac=st.integers(0, 30), fmt=formats)
def test_compiled_requantize_matches_python_integers(values, from_frac, fmt):
    expected = [requantize_int(v, from_frac, fmt) for v in values]
    np.testing.assert_array_equal(requantize_array(values, from_frac, fmt), expected)


@pytest.mark.parametrize("rounding,expected", [
    ("floor", [-4, -3, -2, -1, 0, 1, 2, 3]),
    ("half_up", [-3, -2, -1, 0, 1, 2, 3, 4]),
    ("half_even", [-4, -2, -2, 0, 0, 2, 2, 4]),
])
def test_ties_and_negatives(rounding, expected):
    """-3.5, -2.5, ..., 3.5: every value is a tie at one fractional bit."""
    fmt = FixedFormat(8, 0, True, rounding, "saturate")
    values = [-7, -5, -3, -1, 1, 3, 5, 7]
    got = [requantize_int(v, 1, fmt) for v in values]
    assert got == expected
    np.testing.assert_array_equal(requantize_array(values, 1, fmt), expected)


def test_half_up_rounds_ties_toward_plus_infinity():
    fmt = FixedFormat(8, 0)
    assert [requantize_int(v, 2, fmt) for v in (-6, -2, 2, 6)] == [-1, 0, 1, 2]


def test_saturate_and_wrap():
    sat = FixedFormat(4, 0, True, "half_up", "saturate")
    wrap = FixedFormat(4, 0, True, "half_up", "wrap")
    assert [requantize_int(v, 0, sat) for v in (9, -9, 7, -8)] == [7, -8, 7, -8]
    assert [requantize_int(v, 0, wrap) for v in (9, -9, 8, 16)] == [-7, 7, -8, 0]
    unsigned = FixedFormat(4, 0, False)
    assert [requantize_int(v, 0, unsigned) for v in (-3, 20)] == [0, 15]


def test_left_shift_when_target_has_more_fraction():
    assert requantize_int(-3, 2, FixedFormat(16, 5)) == -24


@pytest.mark.parametrize("kwargs,message", [
    ({"width": 1, "frac": 0}, "width must be an integer from 2 to 63"),
    ({"width": 64, "frac": 0}, "width must be"),
    ({"width": 8, "frac": 1.5}, "frac must be an integer"),
    ({"width": 8, "frac": 0, "rounding": "nearest"}, "rounding must be one of"),
    ({"width": 8, "frac": 0, "overflow": "clip"}, "overflow must be one of"),
])
def test_invalid_formats(kwargs, message):
    with pytest.raises(HwlenetError, match=message):
        FixedFormat(**kwargs)


def test_quantize_floats_and_round_trip():
    fmt = FixedFormat(8, 4)
    np.testing.assert_array_equal(fmt.quantize([0.03125, -0.03125, 100.0, -100.0]),
                                  [1, 0, 127, -128])
    assert FixedFormat(8, 4, rounding="half_even").quantize([0.09375])[0] == 2
    assert FixedFormat.from_dict(fmt.to_dict()) == fmt
    with pytest.raises(HwlenetError, match="NaN"):
        fmt.quantize([float("nan")])
    with pytest.raises(HwlenetError, match="bad fixed-point format"):
        FixedFormat.from_dict({"width": 8})
