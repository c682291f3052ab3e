import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed
from amaranth.sim import Simulator

from hwlenet.quant.fixed import OVERFLOW_MODES, ROUNDING_MODES, FixedFormat, requantize_int
from hwlenet.rtl.fixedpoint import format_shape, requantize


@pytest.mark.parametrize("rounding", ROUNDING_MODES)
@pytest.mark.parametrize("overflow", OVERFLOW_MODES)
@pytest.mark.parametrize("width,signed_out,shift", [(8, True, 6), (8, False, 3), (4, True, 0),
                                                     (10, True, -2), (16, True, 9)])
def test_hardware_requantize_matches_python_integers(rounding, overflow, width, signed_out,
                                                     shift):
    fmt = FixedFormat(width, 4, signed_out, rounding, overflow)
    value = Signal(signed(24))
    out = Signal(format_shape(fmt))
    m = Module()
    m.d.comb += out.eq(requantize(value, shift, fmt))
    rng = np.random.default_rng(width * 7 + shift)
    samples = list(rng.integers(-(1 << 23), 1 << 23, 300)) + list(range(-40, 40))
    samples += [k * (1 << max(shift - 1, 0)) for k in range(-9, 10)]  # exact ties

    async def bench(ctx):
        for sample in samples:
            ctx.set(value, int(sample))
            assert ctx.get(out) == requantize_int(int(sample), fmt.frac + shift, fmt), sample

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
