import numpy as np
import pytest
from amaranth.sim import Simulator

from hwlenet.rtl.writer import BufferWriter

ARRAYS = [("lenet5-relu", 4, 4, 4), ("lenet5-classic", 3, 8, 4), ("lenet5-relu", 8, 8, 4),
          ("lenet5-classic", 5, 16, 4), ("lenet5-classic", 3, 5, 1), ("lenet5-relu", 4, 6, 2),
          ("lenet5-relu", 1, 1, 1), ("lenet5-classic", 2, 12, 2), ("lenet5-relu", 2, 64, 4)]


def mid_location(plan, channel, y, x):
    """``(bank, row)`` of ``(channel, y, x)`` (padded) in the middle buffer: with
    ``v = (channel * height / 2 + y // 2) * stride + x``, bank ``(y % 2) * lanes + v % lanes``
    and row ``v // lanes``."""
    buffer = plan.mid_buffer
    v = (channel * (buffer.height // 2) + y // 2) * buffer.stride + x
    return (y % 2) * buffer.lanes + v % buffer.lanes, v // buffer.lanes


def layer_values(layer, rng, size):
    fmt = layer.output_format
    return rng.integers(fmt.min_int, fmt.max_int, size, endpoint=True)


def conv_output(plan, job, rng, channel, block, image, slot):
    """One cycle of the post-processor's output for a conv job: lane ``g`` is window
    ``block * windows + g`` of the pooled map, row-major (valid only inside the map)."""
    cols, groups = plan.cols, plan.windows
    valid = [int(g < groups and block * groups + g < job.pooled_size) for g in range(cols)]
    window_row, window_col = divmod(block * groups, job.pooled_width)
    return {"valid": valid, "value": [int(v) for v in layer_values(job.pool, rng, cols)],
            "channel": channel,
            "tag": {"job": job.index, "row_tile": channel // plan.rows, "block": block,
                    "window_row": window_row, "window_col": window_col,
                    "phase": job.phases - 1, "image": image, "slot": slot,
                    "count": slot + 1, "last": 0}, "done": 0}


def dense_output(plan, job, rng, channel, image, count):
    cols = plan.cols
    return {"valid": [int(c < count) for c in range(cols)],
            "value": [int(v) for v in layer_values(job.layer, rng, cols)], "channel": channel,
            "tag": {"job": job.index, "row_tile": channel // plan.rows, "block": 0,
                    "window_row": 0, "window_col": 0, "phase": 0, "image": image, "slot": count,
                    "count": count, "last": 0},
            "done": 0}


def random_outputs(plan, rng, cycles):
    """Outputs of random jobs at random coordinates inside the contract (channels below the
    layer's, pooled columns inside its width, images inside the batch), ``done`` on some and
    idle cycles (no valid lane, the last tag held) between."""
    outputs = []
    while len(outputs) < cycles:
        job = plan.jobs[int(rng.integers(len(plan.jobs)))]
        channel = int(rng.integers(job.layer.out_shape[0]))
        image = int(rng.integers(1 << 32))
        if job.kind == "conv":
            block = int(job.blocks - 1 if rng.integers(3) == 0 else rng.integers(job.blocks))
            output = conv_output(plan, job, rng, channel, block, image,
                                 int(rng.integers(plan.cols)))
        else:
            output = dense_output(plan, job, rng, channel, image & 0xFFFF,
                                  int(rng.integers(1, plan.cols + 1)))
        output["done"] = int(rng.random() < 0.2)
        outputs.append(output)
        if rng.random() < 0.2:
            outputs.append({**output, "valid": [0] * plan.cols, "done": 0})
    return outputs


def simulate(plan, outputs, whole=True):
    """Drive ``outputs`` one per cycle and capture ``done`` ``LATENCY - 1`` cycles later and,
    ``LATENCY`` cycles later, every write port (address and data where enabled) and, if
    ``whole``, the store interface and the trace (else only the middle and flattened-feature
    buffers' ports)."""
    dut = BufferWriter(plan=plan)
    cols = plan.cols
    groups = {"mid": dut.mid_writes, "fc": dut.fc_writes}
    if whole:
        groups.update({f"dense{p}": ports for p, ports in enumerate(dut.dense_writes)})
    captured = []
    idle = {**outputs[0], "valid": [0] * cols, "done": 0}

    async def bench(ctx):
        for output in outputs + [idle] * BufferWriter.LATENCY:
            for member in ("valid", "value", "channel", "tag", "done"):
                ctx.set(getattr(dut.output, member), output[member])
            captured.append({})
            if len(captured) >= BufferWriter.LATENCY:
                captured[-BufferWriter.LATENCY]["done"] = ctx.get(dut.done)
            if whole and len(captured) > BufferWriter.LATENCY:
                store, trace = dut.store, ctx.get(dut.trace)
                valid, value = ctx.get(store.valid), ctx.get(store.value)
                captured[-1 - BufferWriter.LATENCY].update({
                    "store": {"valid": [valid[c] for c in range(cols)],
                              "index": ctx.get(store.index),
                              "value": [value[c] for c in range(cols)],
                              "finish": ctx.get(store.finish), "count": ctx.get(store.count)},
                    "trace": {"valid": [trace.valid[c] for c in range(cols)],
                              "layer": trace.layer,
                              "image": [trace.image[c] for c in range(cols)],
                              "index": [trace.index[c] for c in range(cols)],
                              "value": [trace.value[c] for c in range(cols)]}})
            writes = {name: [(1, ctx.get(port.addr), ctx.get(port.data)) if ctx.get(port.en)
                             else (0, None, None) for port in ports]
                      for name, ports in groups.items()}
            if len(captured) > BufferWriter.LATENCY:
                captured[-1 - BufferWriter.LATENCY]["writes"] = writes
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return captured[:len(outputs)]


def expected_writes(plan, output):
    """``{port group: {port: (addr, data)}}`` of the ports one output enables, per the
    docstring; the store interface's valid lanes and finish; the trace's lanes."""
    cols, groups = plan.cols, plan.windows
    job = plan.jobs[output["tag"]["job"]]
    tag, channel = output["tag"], output["channel"]
    lanes = [c for c in range(cols) if output["valid"][c]]
    writes = {"mid": {}, "fc": {}, **{f"dense{p}": {} for p in range(len(plan.dense_jobs) - 1)}}
    store = ([0] * cols, 0)
    trace = {}
    if job.kind == "conv":
        pooled = job.pool.out_shape
        for g in lanes:
            py, px = divmod(tag["block"] * groups + g, pooled[2])
            trace[g] = (tag["image"], int(np.ravel_multi_index((channel, py, px), pooled)),
                        output["value"][g])
            if job is plan.conv_jobs[0]:
                pad = plan.conv_jobs[1].layer.padding
                bank, row = mid_location(plan, channel, py + pad, px + pad)
                writes["mid"][bank] = (row, output["value"][g])
            else:
                row = channel * -(-pooled[1] * pooled[2] // groups) + tag["block"]
                writes["fc"][tag["slot"] * groups + g] = (row, output["value"][g])
    else:
        for c in lanes:
            trace[c] = (tag["image"] + c, channel, output["value"][c])
        if job is plan.dense_jobs[-1]:
            store = (output["valid"], output["done"])
        else:
            position = plan.dense_jobs.index(job)
            writes[f"dense{position}"] = {c: (channel, output["value"][c]) for c in lanes}
    return writes, store, trace


@pytest.mark.parametrize("name,rows,cols,lanes", ARRAYS)
def test_writes_follow_the_documented_formulas(plans, name, rows, cols, lanes):
    """Per cycle, for random outputs of every job: exactly the ports the docstring names are
    enabled, with its addresses and the lanes' values; the last dense job's outputs (and only
    theirs) go to ``store`` with ``finish`` on ``done``; ``trace`` names each written value's
    layer, image and element index."""
    plan = plans(name, rows, cols, lanes)
    rng = np.random.default_rng(rows * 100 + cols * 10 + lanes)
    outputs = random_outputs(plan, rng, 400)
    captured = simulate(plan, outputs)
    assert BufferWriter.LATENCY == 5
    layers = plan.qmodel.layers
    for cycle, (output, got) in enumerate(zip(outputs, captured)):
        writes, (store_valid, finish), trace = expected_writes(plan, output)
        for group, ports in got["writes"].items():
            enabled = {port: (addr, data) for port, (en, addr, data) in enumerate(ports) if en}
            assert enabled == writes[group], (cycle, group, output)
        assert got["store"]["valid"] == store_valid, cycle
        assert got["store"]["finish"] == finish, cycle
        assert got["done"] == output["done"], cycle  # LATENCY - 1 cycles later
        if any(store_valid) or finish:
            assert got["store"]["index"] == output["channel"], cycle
            assert got["store"]["count"] == output["tag"]["count"], cycle
            assert [got["store"]["value"][c] for c in range(cols) if store_valid[c]] == \
                [output["value"][c] for c in range(cols) if store_valid[c]], cycle
        job = plan.jobs[output["tag"]["job"]]
        assert got["trace"]["valid"] == output["valid"], cycle
        if trace:
            assert got["trace"]["layer"] == layers.index(job.out_layer), cycle
        assert {c: (got["trace"]["image"][c], got["trace"]["index"][c], got["trace"]["value"][c])
                for c in range(cols) if got["trace"]["valid"][c]} == trace, cycle
    # every kind of write was exercised, with partial groups and finishes
    assert all(any(cycle["writes"][group][port][0] for cycle in captured
                   for port in range(len(cycle["writes"][group])))
               for group in captured[0]["writes"])
    assert any(cycle["store"]["finish"] for cycle in captured)
    if cols > 1:
        assert any(0 < sum(cycle["store"]["valid"]) < cols for cycle in captured)


def store_layer(plan, job, rng, slot):
    """Every output of conv job ``job`` for one image in slot ``slot``, tile by tile as the
    post-processor produces them; returns the pooled maps and the outputs."""
    maps = rng.integers(job.pool.output_format.min_int, job.pool.output_format.max_int,
                        job.pool.out_shape, endpoint=True)
    groups = plan.windows
    outputs = []
    for row_tile in range(job.row_tiles):
        for block in range(job.blocks):
            for channel in range(row_tile * plan.rows,
                                 min((row_tile + 1) * plan.rows, maps.shape[0])):
                output = conv_output(plan, job, rng, channel, block, 7, slot)
                for g in range(groups):
                    if output["valid"][g]:
                        output["value"][g] = int(maps[channel].ravel()[block * groups + g])
                outputs.append(output)
    return maps, outputs


@pytest.mark.parametrize("name,rows,cols,lanes", [("lenet5-relu", 4, 4, 4),
                                                  ("lenet5-classic", 3, 8, 4),
                                                  ("lenet5-classic", 3, 5, 1),
                                                  ("lenet5-relu", 4, 6, 2),
                                                  ("lenet5-relu", 2, 64, 4)])
def test_whole_layers_land_where_the_next_job_reads(plans, name, rows, cols, lanes):
    """All of the first conv job's pooled maps, then all of the second's for two image slots:
    the middle buffer, modelled from the captured writes, holds the maps at their padded
    places as the plan's :meth:`FeatureBuffer.locate` finds them (padding never
    written), and the first dense job's k-table finds feature ``k`` of each slot's flattened
    maps in the flattened-feature banks."""
    plan = plans(name, rows, cols, lanes)
    rng = np.random.default_rng(cols)
    conv0, conv1 = plan.conv_jobs
    maps0, outputs = store_layer(plan, conv0, rng, 0)
    slots = {slot: store_layer(plan, conv1, rng, slot) for slot in (0, cols - 1)}
    for _, layer_outputs in slots.values():
        outputs += layer_outputs
    captured = simulate(plan, outputs, whole=False)
    mid = [{} for _ in range(plan.mid_buffer.banks)]
    fc = [{} for _ in range(cols * plan.fc_subbanks)]
    for cycle in captured:
        for memory, group in ((mid, "mid"), (fc, "fc")):
            for port, (en, addr, data) in enumerate(cycle["writes"][group]):
                if en:
                    assert addr not in memory[port]  # every value written once
                    memory[port][addr] = data
    pad = conv1.layer.padding
    buffer = plan.mid_buffer
    channels, height, width = maps0.shape
    padded = np.zeros((channels, buffer.height, buffer.width), np.int64)
    for c in range(channels):
        for y in range(buffer.height):
            for x in range(buffer.width):
                bank, row = buffer.locate(c, y, x)
                padded[c, y, x] = mid[bank].get(row, 0)
    np.testing.assert_array_equal(padded[:, pad:pad + height, pad:pad + width], maps0)
    assert sum(len(bank) for bank in mid) == maps0.size
    dense0 = plan.dense_jobs[0]
    groups = plan.fc_subbanks
    for slot, (maps, _) in slots.items():
        features = [fc[slot * groups + subbank][row] for subbank, row in dense0.ktable]
        np.testing.assert_array_equal(features, maps.ravel())
    assert sum(len(bank) for bank in fc) == 2 * maps.size
