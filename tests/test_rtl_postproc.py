import numpy as np
import pytest
from amaranth.sim import Simulator

from hwlenet.checkpoint import resolve_model
from hwlenet.quant.quantize import quantize_model
from hwlenet.rtl.plan import plan_hardware
from hwlenet.rtl.postproc import PostProcessor
from hwlenet.sim.kernels import requantize_array

CALIBRATION = np.random.default_rng(1).integers(0, 256, (32, 28, 28), dtype=np.uint8)


def activate(layer, acc):
    """The artifact's post-accumulation steps with the numba requantize kernel."""
    if layer.activation == "relu":
        acc = np.maximum(acc, 0)
    fmt = layer.requant_format()
    value = requantize_array(acc, layer.acc_frac, fmt)
    return layer.lut[value - fmt.min_int] if layer.activation == "tanh" else value


def expected_outputs(plan, job, channel, acc):
    layer = job.layer
    y = activate(layer, acc + layer.aligned_bias()[channel]) if channel < len(layer.bias) else None
    if y is None or job.kind == "dense":
        return y
    half = plan.cols // 2
    windows = [y[[2 * g, 2 * g + 1, half + 2 * g, half + 2 * g + 1]]
               for g in range(plan.cols // 4)]
    if job.pool.kind == "maxpool":
        return np.array([w.max() for w in windows])
    pool = job.pool
    sums = np.array([w.sum() for w in windows], dtype=np.int64)
    return activate(pool, int(pool.weight[channel]) * sums + pool.aligned_bias()[channel])


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu"])
@pytest.mark.parametrize("bits,rows,cols", [(8, 8, 8), (6, 4, 8), (8, 3, 4)])
def test_postprocessor_matches_numba(name, bits, rows, cols):
    qmodel = quantize_model(resolve_model(name)[0], CALIBRATION, bits, bits)
    plan = plan_hardware(qmodel, rows, cols)
    dut = PostProcessor(plan=plan)
    rng = np.random.default_rng(bits * 100 + rows)
    stimuli = []
    for job in plan.jobs:
        layer = job.layer
        limit = 1 << (layer.accumulator_width - 2)
        for row_tile in range(job.row_tiles):
            for row in range(rows):
                acc = rng.integers(-limit, limit, cols)
                stimuli.append((job, row_tile, row, acc))
    outputs = []

    async def feed(ctx):
        for job, row_tile, row, acc in stimuli:
            ctx.set(dut.in_valid, 1)
            ctx.set(dut.in_row, row)
            for c in range(cols):
                ctx.set(dut.in_acc[c], int(acc[c]))
            ctx.set(dut.in_tag, {"job": job.index, "row_tile": row_tile, "block_row": 0,
                                 "block_col": 0, "image": 0, "slot": 0, "count": cols,
                                 "last": 0})
            await ctx.tick()
        ctx.set(dut.in_valid, 0)
        await ctx.tick().repeat(PostProcessor.LATENCY + 2)

    async def collect(ctx):
        async for _, _, valid, values, channel in ctx.tick().sample(
                dut.out_valid, dut.out_value, dut.out_channel):
            lanes = [c for c in range(cols) if valid[c]]
            if lanes:
                outputs.append((channel, {c: values[c] for c in lanes}))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(collect, background=True)
    sim.run()
    expected = []
    for job, row_tile, row, acc in stimuli:
        channel = row_tile * rows + row
        want = expected_outputs(plan, job, channel, acc)
        if want is not None:
            expected.append((channel, {c: int(v) for c, v in enumerate(want)}))
    assert len(outputs) == len(expected)
    for (got_channel, got), (want_channel, want) in zip(outputs, expected):
        assert got_channel == want_channel
        assert got == want
