import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwlenet import HwlenetError
from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat, requantize_int
from hwlenet.sim.kernels import requantize_array

INT64 = (-(2**63), 2**63 - 1)

formats = st.builds(
    FixedFormat, width=st.integers(2, 63), frac=st.integers(-80, 80), signed=st.booleans(),
    rounding=st.sampled_from(ROUNDING_MODES), overflow=st.sampled_from(OVERFLOW_MODES),
)
# every int64, with its extremes and the powers of two around them drawn often
int64s = st.one_of(
    st.integers(*INT64),
    st.sampled_from(INT64),
    st.builds(lambda sign, bits, offset: max(INT64[0], min(INT64[1], sign * (1 << bits) + offset)),
              st.sampled_from((-1, 1)), st.integers(0, 63), st.integers(-2, 2)),
)


@settings(max_examples=1000, deadline=None)
@given(values=st.lists(int64s, min_size=1, max_size=20), from_frac=st.integers(-80, 80),
       fmt=formats)
def test_compiled_requantize_matches_python_integers(values, from_frac, fmt):
    """Every int64, every format and every shift from -160 to 160 bits."""
    expected = [requantize_int(v, from_frac, fmt) for v in values]
    np.testing.assert_array_equal(requantize_array(values, from_frac, fmt), expected)


EDGE_VALUES = sorted({max(INT64[0], min(INT64[1], sign * (1 << bits) + offset))
                      for sign in (-1, 1) for bits in (0, 1, 2, 31, 32, 61, 62, 63)
                      for offset in (-1, 0, 1)} | {0})


@pytest.mark.parametrize("width", [2, 3, 32, 33, 62, 63])
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
def test_compiled_requantize_at_every_edge_shift(width, signed, rounding, overflow):
    """Shifts either side of the int64 limits (and far past them) on values around every
    power of two that matters."""
    fmt = FixedFormat(width, 0, signed, rounding, overflow)
    for shift in [*range(-66, -58), *range(-34, -29), -2, -1, 0, 1, 2, *range(30, 35),
                  *range(59, 67), 100, 1000, -1000]:
        expected = [requantize_int(v, shift, fmt) for v in EDGE_VALUES]
        np.testing.assert_array_equal(requantize_array(EDGE_VALUES, shift, fmt), expected,
                                      err_msg=f"{fmt} shift {shift}")


def test_right_shifts_past_the_width_round_to_the_sign():
    """On a 63-bit accumulator a right shift of 63 or more leaves 0 or -1 (floor), else 0."""
    values = [-(2**62), -1, 0, 2**62 - 1]
    for shift in (63, 64, 65, 200):
        assert [requantize_int(v, shift, FixedFormat(8, 0, rounding="floor"))
                for v in values] == [-1, -1, 0, 0]
        for rounding in ("half_up", "half_even"):
            assert [requantize_int(v, shift, FixedFormat(8, 0, rounding=rounding))
                    for v in values] == [0, 0, 0, 0]
    assert requantize_int(2**62, 63, FixedFormat(8, 0)) == 1
    assert requantize_int(2**62, 63, FixedFormat(8, 0, rounding="half_even")) == 0
    assert requantize_int(-(2**62), 63, FixedFormat(8, 0, rounding="half_even")) == 0
    assert requantize_int(-(2**62) - 1, 63, FixedFormat(8, 0, rounding="half_even")) == -1


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
