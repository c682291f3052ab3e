import numpy as np
import pytest
from amaranth.sim import Simulator

from hwlenet.rtl.pe import ProcessingElement


@pytest.mark.parametrize("weight_width,operand_width", [(2, 3), (8, 9), (12, 17)])
def test_pe_follows_its_flags(weight_width, operand_width):
    rng = np.random.default_rng(weight_width)
    dut = ProcessingElement(weight_width=weight_width, operand_width=operand_width,
                            accumulator_width=weight_width + operand_width + 6)
    steps = [(int(rng.integers(-(1 << weight_width - 1), 1 << weight_width - 1)),
              int(rng.integers(-(1 << operand_width - 1), 1 << operand_width - 1)),
              int(rng.integers(2)), int(rng.random() < 0.15), int(rng.random() < 0.15))
             for _ in range(200)]

    async def bench(ctx):
        acc = 0
        results = [0] * ProcessingElement.RESULT_LATENCY
        for w, x, valid, clear, capture in steps:
            ctx.set(dut.w_in, w)
            ctx.set(dut.x_in, x)
            ctx.set(dut.flags_in, {"valid": valid, "clear": clear, "capture": capture})
            await ctx.tick()
            # the result the step's capture shows RESULT_LATENCY cycles after it entered
            results.append(acc if capture else results[-1])
            if valid:
                acc = (0 if clear else acc) + w * x
            elif clear:
                acc = 0
            assert ctx.get(dut.result) == results[-ProcessingElement.RESULT_LATENCY]
            assert (ctx.get(dut.w_out), ctx.get(dut.x_out)) == (w, x)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_pe_rejects_bad_width():
    with pytest.raises(TypeError, match="weight_width must be a positive integer, not 0"):
        ProcessingElement(weight_width=0, operand_width=8, accumulator_width=20)
