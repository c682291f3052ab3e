"""The constant-multiply helper of the address formulas."""

import numpy as np
import pytest
from amaranth.hdl import Const, Module, unsigned
from amaranth.sim import Simulator

from hwlenet.rtl.arith import scaled


@pytest.mark.parametrize("constant", [0, 1, 2, 3, 25, 100, 157, 1024])
def test_scaled_is_the_product(constant):
    rng = np.random.default_rng(constant)
    values = [int(v) for v in rng.integers(0, 1 << 10, 16)] + [0, (1 << 10) - 1]
    assert [scaled(v, constant) for v in values] == [v * constant for v in values]

    results = []

    async def bench(ctx):
        for value in values:
            results.append(ctx.get(scaled(Const(value, unsigned(10)), constant)))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert results == [v * constant for v in values]


@pytest.mark.parametrize("constant", [-1, 2.0, "3"])
def test_scaled_refuses_other_constants(constant):
    with pytest.raises(TypeError, match="constant must be a non-negative integer"):
        scaled(5, constant)

