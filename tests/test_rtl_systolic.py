import numpy as np
import pytest
from amaranth.hdl import unsigned
from amaranth.sim import Simulator

from hwlenet.rtl.systolic import SystolicArray


def run_tiles(rows, cols, tiles, period, seed):
    """Feed ``tiles`` random (W, X) products back to back; return drained sums by tile."""
    rng = np.random.default_rng(seed)
    depth = [int(rng.integers(1, period + 1)) for _ in range(tiles)]
    weights = [rng.integers(-128, 128, (rows, k)) for k in depth]
    operands = [rng.integers(-256, 256, (k, cols)) for k in depth]
    dut = SystolicArray(rows=rows, cols=cols, weight_width=8, operand_width=9,
                        accumulator_width=24, tag_shape=unsigned(8))
    drained = {}

    async def feed(ctx):
        for tile in range(tiles + 1):
            for step in range(period):
                last = tile == tiles
                k = depth[tile] if not last else 0
                ctx.set(dut.edge.flags.valid, int(not last and step < k))
                ctx.set(dut.edge.flags.clear, int(step == 0))
                ctx.set(dut.edge.flags.capture, int(step == 0 and tile > 0))
                ctx.set(dut.edge.tag, tile - 1 if step == 0 and tile > 0 else 0)
                if not last and step < k:
                    for r in range(rows):
                        ctx.set(dut.edge.w_edge[r], int(weights[tile][r, step]))
                    for c in range(cols):
                        ctx.set(dut.edge.x_edge[c], int(operands[tile][step, c]))
                await ctx.tick()
                if last:
                    ctx.set(dut.edge.flags.capture, 0)
        await ctx.tick().repeat(rows + cols + 4)

    async def collect(ctx):
        async for _, _, valid, row, tag, *acc in ctx.tick().sample(
                dut.drain.valid, dut.drain.row, dut.drain.tag,
                *[dut.drain.acc[c] for c in range(cols)]):
            if valid:
                drained.setdefault(tag, {})[row] = acc

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(collect, background=True)
    sim.run()
    return weights, operands, drained


@pytest.mark.parametrize("rows,cols", [(2, 4), (4, 4), (3, 8)])
def test_tiles_back_to_back_match_matrix_products(rows, cols):
    period = max(rows, cols + 1, 6)
    weights, operands, drained = run_tiles(rows, cols, 3, period, seed=rows * 10 + cols)
    assert sorted(drained) == [0, 1, 2]
    for tile, by_row in drained.items():
        expected = weights[tile] @ operands[tile]
        assert sorted(by_row) == list(range(rows))
        np.testing.assert_array_equal(np.array([by_row[r] for r in range(rows)]), expected)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("kwargs,message", [({"rows": 0}, "rows must be a positive integer, not 0"),
                                            ({"cols": "8"}, "cols must be a positive integer")])
def test_array_rejects_bad_sizes(kwargs, message):
    settings = dict(rows=2, cols=4, weight_width=8, operand_width=9, accumulator_width=20,
                    tag_shape=unsigned(4))
    settings.update(kwargs)
    with pytest.raises(TypeError, match=message):
        SystolicArray(**settings)


@pytest.mark.parametrize("rows,cols", [(1, 4), (3, 8), (8, 8)])
def test_last_row_drains_after_the_drain_latency(rows, cols):
    """A capture presented at the edge in cycle 0 puts the last row on ``drain`` in cycle
    :meth:`SystolicArray.drain_latency`, the figure the cycle model uses."""
    dut = SystolicArray(rows=rows, cols=cols, weight_width=8, operand_width=9,
                        accumulator_width=20, tag_shape=unsigned(4))
    seen = []

    async def bench(ctx):
        ctx.set(dut.edge.flags.capture, 1)
        cycle = 0
        # each tick samples the values of the cycle it ends
        async for _, _, valid, row in ctx.tick().sample(dut.drain.valid, dut.drain.row):
            ctx.set(dut.edge.flags.capture, 0)
            if valid:
                seen.append((cycle, row))
            cycle += 1
            if cycle > rows + cols + 8:
                break

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert [row for _, row in seen] == list(range(rows))
    assert seen[-1][0] == SystolicArray.drain_latency(rows, cols)
