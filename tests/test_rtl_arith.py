"""The constant-multiply and constant-divide helpers of the address formulas."""

import numpy as np
import pytest
from amaranth.hdl import Const, Module, unsigned
from amaranth.sim import Simulator

from hwlenet.rtl.arith import divmod_constant, scaled


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



@pytest.mark.parametrize("divisor,limit", [(1, 9), (2, 40), (4, 33), (6, 40), (10, 64), (14, 30),
                                           (40, 40)])
def test_divmod_constant_is_divmod(divisor, limit):
    """Integers and Amaranth values alike, for every value below ``limit``."""
    values = list(range(limit))
    assert [divmod_constant(v, divisor, limit) for v in values] == \
        [divmod(v, divisor) for v in values]
    results = []

    async def bench(ctx):
        for value in values:
            quotient, remainder = divmod_constant(Const(value, unsigned(7)), divisor, limit)
            results.append((ctx.get(quotient), ctx.get(remainder)))

    sim = Simulator(Module())
    sim.add_testbench(bench)
    sim.run()
    assert results == [divmod(v, divisor) for v in values]


@pytest.mark.parametrize("divisor", [0, -2, 1.5, True])
def test_divmod_constant_refuses_other_divisors(divisor):
    with pytest.raises(TypeError, match="divisor must be a positive integer"):
        divmod_constant(5, divisor, 10)
