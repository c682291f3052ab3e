import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from hwlenet.checkpoint import resolve_model
from hwlenet.quant.artifact import QLayer
from hwlenet.quant.quantize import quantize_model
from hwlenet.rtl.plan import plan_hardware
from hwlenet.rtl.postproc import PostProcessor
from hwlenet.sim.kernels import requantize_array

CALIBRATION = np.random.default_rng(1).integers(0, 256, (32, 28, 28), dtype=np.uint8)
TAG_FIELDS = ("job", "row_tile", "block", "window_row", "window_col", "phase", "image", "slot",
              "count", "last")


def quantized(name, bits):
    """A shipped model, or ``lenet5-classic-maxpool``: the classic model with max pooling in
    place of its subsampling layers, and the convolutions' tanh tables reversed (decreasing),
    so that the maximum must compare the tables' words, not their indices."""
    qmodel = quantize_model(resolve_model(name.removesuffix("-maxpool"))[0], CALIBRATION, bits,
                            bits)
    if not name.endswith("-maxpool"):
        return qmodel
    layers = list(qmodel.layers)
    for position, layer in enumerate(layers):
        if layer.kind == "subsample":
            source = layers[position - 1].output_format
            assert layer.output_format == source
            layers[position] = QLayer(layer.name, "maxpool", layer.in_shape, layer.out_shape,
                                      source, source)
            conv = layers[position - 1]
            layers[position - 1] = dataclasses.replace(conv, lut=conv.lut[::-1].copy())
    qmodel = dataclasses.replace(qmodel, layers=layers)
    qmodel.validate()
    return qmodel


def activate(layer, acc):
    """The artifact's post-accumulation steps with the numba requantize kernel."""
    if layer.activation == "relu":
        acc = np.maximum(acc, 0)
    fmt = layer.requant_format()
    value = requantize_array(acc, layer.acc_frac, fmt)
    return layer.lut[value - fmt.min_int] if layer.activation == "tanh" else value


def expected_outputs(plan, job, channel, accs):
    """The outputs of one array row: ``accs`` holds the row's accumulators of every phase of
    its tile (one for dense jobs); window ``g``'s members are columns ``g * window_lanes`` on
    of each phase."""
    layer = job.layer
    if channel >= len(layer.bias):
        return None
    ys = [activate(layer, acc + layer.aligned_bias()[channel]) for acc in accs]
    if job.kind == "dense":
        return ys[0]
    lanes = plan.window_lanes
    windows = [np.array([y[g * lanes + j] for y in ys for j in range(lanes)])
               for g in range(plan.windows)]
    assert all(len(w) == 4 for w in windows)
    if job.pool.kind == "maxpool":
        return np.array([w.max() for w in windows])
    pool = job.pool
    sums = np.array([w.sum() for w in windows], dtype=np.int64)
    return activate(pool, int(pool.weight[channel]) * sums + pool.aligned_bias()[channel])


def expected_lanes(plan, job, channel, accs, tag):
    """The stored results of one drained row: lane -> value, for the lanes that hold one.

    A conv job's window ``g`` of block ``b`` is window ``b * windows + g`` of the pooled map
    in row-major order (none past the map), stored at the last phase only; a dense job's lane
    ``c`` is image ``c`` of a batch of ``count``; rows past the layer's last output channel
    hold nothing.
    """
    if job.kind == "conv" and tag["phase"] != job.phases - 1:
        return {}
    y = expected_outputs(plan, job, channel, accs)
    if y is None:
        return {}
    if job.kind == "dense":
        return {c: int(y[c]) for c in range(tag["count"])}
    groups = plan.windows
    return {g: int(y[g]) for g in range(groups) if tag["block"] * groups + g < job.pooled_size}


def make_stimuli(plan, rng):
    """Every row of every row tile of every job, each tile for all its phases in order, with
    random accumulators, the last or a random block, a full or partial batch, a random
    ``last`` flag and idle cycles between rows. Each item carries the row's accumulators of the
    tile's phases so far."""
    rows, cols = plan.rows, plan.cols
    stimuli = []
    for job in plan.jobs:
        limit = 1 << (job.layer.accumulator_width - 2)
        for row_tile in range(job.row_tiles):
            tag = {"job": job.index, "row_tile": row_tile, "block": 0, "window_row": 0,
                   "window_col": 0, "phase": 0, "image": len(stimuli),
                   "slot": int(rng.integers(cols)), "count": cols, "last": int(rng.integers(2))}
            if job.kind == "conv":
                tag["block"] = int(job.blocks - 1 if rng.integers(2) else rng.integers(job.blocks))
                tag["window_row"], tag["window_col"] = divmod(tag["block"] * plan.windows,
                                                              job.pooled_width)
            elif rng.integers(3):
                tag["count"] = int(rng.integers(1, cols)) if cols > 1 else 1
            history = [[] for _ in range(rows)]
            for phase in range(getattr(job, "phases", 1)):
                for row in range(rows):
                    acc = rng.integers(-limit, limit, cols)
                    history[row].append(acc)
                    stimuli.append((job, row, acc, {**tag, "phase": phase},
                                    int(rng.integers(3)), list(history[row])))
    return stimuli


@pytest.mark.parametrize("name", ["lenet5-classic", "lenet5-relu", "lenet5-classic-maxpool"])
@pytest.mark.parametrize("bits,rows,cols,lanes", [
    (8, 8, 8, 4), (6, 4, 8, 4), (8, 3, 4, 4), (8, 5, 16, 4), (8, 3, 5, 1), (7, 4, 6, 2),
    (8, 1, 1, 1), (8, 2, 3, 2)])
def test_postprocessor_matches_numba(name, bits, rows, cols, lanes):
    """Values, lane masks (channels past the layer, pooled columns past its width, images
    past a partial batch, phases before the last), channels, tags and ``done`` against the
    Python model."""
    plan = plan_hardware(quantized(name, bits), rows, cols, window_lanes=lanes)
    dut = PostProcessor(plan=plan)
    stimuli = make_stimuli(plan, np.random.default_rng(bits * 1000 + rows * 100 + cols * 10
                                                       + lanes))
    outputs = []

    async def feed(ctx):
        for job, row, acc, tag, idle, _ in stimuli:
            ctx.set(dut.drain.valid, 1)
            ctx.set(dut.drain.row, row)
            for c in range(cols):
                ctx.set(dut.drain.acc[c], int(acc[c]))
            ctx.set(dut.drain.tag, tag)
            await ctx.tick()
            # idle cycles present the last row of a finishing tile: nothing may come of them
            ctx.set(dut.drain.valid, 0)
            ctx.set(dut.drain.row, rows - 1)
            ctx.set(dut.drain.tag, {**tag, "last": 1})
            if idle:
                await ctx.tick().repeat(idle)
        ctx.set(dut.drain.valid, 0)
        await ctx.tick().repeat(PostProcessor.LATENCY + 2)

    async def collect(ctx):
        async for _, _, valid, values, channel, tag, done in ctx.tick().sample(
                dut.output.valid, dut.output.value, dut.output.channel, dut.output.tag,
                dut.output.done):
            lanes = {c: values[c] for c in range(cols) if valid[c]}
            if lanes or done:
                outputs.append((channel, lanes, done,
                                {field: getattr(tag, field) for field in TAG_FIELDS}))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(feed)
    sim.add_testbench(collect, background=True)
    sim.run()
    expected = []
    for job, row, _, tag, _, accs in stimuli:
        channel = tag["row_tile"] * rows + row
        values = expected_lanes(plan, job, channel, accs, tag)
        done = int(tag["last"] and row == rows - 1)
        if values or done:
            expected.append((channel, values, done, tag))
    assert len(outputs) == len(expected)
    for got, want in zip(outputs, expected):
        assert got == want
    # every mask was exercised: rows past the last channel, partial batches, done flags and,
    # where the pooled width leaves a partial group, edge columns
    if any(job.layer.out_shape[0] % rows for job in plan.jobs):
        assert any(not expected_lanes(plan, job, t["row_tile"] * rows + row, accs, t)
                   for job, row, _, t, _, accs in stimuli if t["phase"] == plan.phases - 1)
    if cols > 1:
        assert any(t["count"] < cols and values for _, values, _, t in expected)
    assert any(done for _, _, done, _ in expected)
    conv = len(plan.conv_jobs)
    if any(job.pooled_size % plan.windows for job in plan.conv_jobs):
        assert any(t["job"] < conv and 0 < len(values) < plan.windows
                   for _, values, _, t in expected)
