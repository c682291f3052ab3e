import numpy as np
import pytest
from amaranth.hdl import Shape
from amaranth.sim import Simulator

from hwlenet.rtl.feeder import OperandFeeder
from hwlenet.rtl.postproc import tile_tag_layout

TAG_FIELDS = ("job", "row_tile", "block", "window_row", "window_col", "phase", "image", "slot",
              "count", "last")


class Banks:
    """A Python model of ``ports`` synchronous-read banks holding random operands: each cycle
    a port shows the word at the address it was given the cycle before."""

    def __init__(self, ports, width, rng):
        self.ports = ports
        self.words = [rng.integers(-(1 << width - 1), 1 << width - 1, 1 << len(port.addr))
                      for port in ports]
        self.addresses = [0] * len(ports)

    def serve(self, ctx):
        for port, words, address in zip(self.ports, self.words, self.addresses):
            ctx.set(port.data, int(words[address]))

    def sample(self, ctx):
        self.addresses = [ctx.get(port.addr) for port in self.ports]


def feature_location(buffer, channel, y, x, copy):
    """``(bank, row)`` of ``(channel, y, x)``: with ``v = (channel * height / 2 + y // 2) *
    stride + x``, bank ``(y % 2) * lanes + v % lanes`` and row ``v // lanes (+ copy *
    copy_words)``."""
    v = (channel * (buffer.height // 2) + y // 2) * buffer.stride + x
    row = v // buffer.lanes
    if buffer.copies > 1:
        row += copy * -(-buffer.channels * (buffer.height // 2) * buffer.stride // buffer.lanes)
    return (y % 2) * buffer.lanes + v % buffer.lanes, row


def block_origin(job, windows, block):
    """``(window_row, window_col, base)`` of a block: its first window's pooled position and
    the bank row of that position's linear address."""
    window_row, window_col = divmod(block * windows, job.pooled_width)
    return window_row, window_col, job.wrap_rows * window_row + block


def expected_edge(plan, banks, token):
    """The weights and operands a valid token must bring to the edge, from the artifact's
    weights and the buffers' contents (``k`` walks the weights' flattened reduction axis);
    None for the operand of an idle column."""
    rows, cols = plan.rows, plan.cols
    groups = plan.fc_subbanks
    job = plan.jobs[token["job"]]
    layer = job.layer
    matrix = layer.weight.reshape(layer.weight.shape[0], -1)
    k = token["k"]
    weights = [int(matrix[token["row_tile"] * rows + r, k])
               if token["row_tile"] * rows + r < matrix.shape[0] else 0 for r in range(rows)]
    operands = []
    if job.kind == "conv":
        channel, ky, kx = np.unravel_index(k, layer.weight.shape[1:])
        first = job is plan.conv_jobs[0]
        buffer = plan.input_buffer if first else plan.mid_buffer
        memory = banks["input"] if first else banks["mid"]
        for c in range(cols):
            member = plan.column_member(c, token["phase"])
            if member is None:
                operands.append(None)
                continue
            window, dy, dx = member
            w = token["block"] * plan.windows + window
            if w >= job.pooled_size:  # past the map: read but never stored
                operands.append(None)
                continue
            py, px = divmod(w, job.pooled_width)
            bank, row = feature_location(buffer, channel, 2 * py + dy + ky, 2 * px + dx + kx,
                                         token["copy"])
            operands.append(int(memory.words[bank][row]))
    elif job is plan.dense_jobs[0]:
        # feature k of the flattened pooled maps, where the buffer writer put it
        pool_c, pool_h, pool_w = plan.conv_jobs[-1].pool.out_shape
        channel, w = divmod(k, pool_h * pool_w)
        row = channel * -(-pool_h * pool_w // groups) + w // groups
        operands = [int(banks["fc"].words[slot * groups + w % groups][row])
                    for slot in range(cols)]
    else:
        position = plan.dense_jobs.index(job)
        operands = [int(banks[f"dense{position - 1}"].words[slot][k]) for slot in range(cols)]
    return weights, operands


def random_tokens(plan, rng, count):
    """Tokens as the controller issues them: runs of consecutive steps of one tile of a random
    job (a random block, often the last, and phase), and single tokens of random jobs back to
    back; some invalid (steps past the depth, flushes) with random coordinates, every field of
    the tag random."""
    tag_layout = tile_tag_layout(plan)
    tokens = []
    while len(tokens) < count:
        job = plan.jobs[int(rng.integers(len(plan.jobs)))]
        base = {"job": job.index, "row_tile": int(rng.integers(job.row_tiles)),
                "phase": int(rng.integers(getattr(job, "phases", 1))),
                "copy": int(rng.integers(2))}
        if job.kind == "conv":
            block = int(job.blocks - 1 if rng.integers(4) == 0 else rng.integers(job.blocks))
            window_row, window_col, row = block_origin(job, plan.windows, block)
            base.update(block=block, base=row, window_col=window_col)
        else:  # coordinates a dense job ignores
            base.update(block=int(rng.integers(4)), base=int(rng.integers(4)),
                        window_col=int(rng.integers(2)), phase=int(rng.integers(2)))
        run = int(rng.integers(1, 12)) if rng.random() < 0.4 else 1
        start = int(rng.integers(job.tile_period))
        for step in range(start, min(start + run, job.tile_period)):
            kind = rng.random()
            token = {**base, "k": step, "valid": int(step < job.depth and kind > 0.1),
                     "clear": int(rng.integers(2)), "capture": int(rng.integers(2)),
                     "tag": {name: int(rng.integers(1 << Shape.cast(tag_layout[name].shape).width))
                             for name in TAG_FIELDS}}
            tokens.append(token)
    return tokens[:count]


@pytest.mark.parametrize("name,rows,cols,lanes", [
    ("lenet5-relu", 4, 4, 4), ("lenet5-classic", 3, 8, 4), ("lenet5-relu", 8, 8, 4),
    ("lenet5-classic", 3, 5, 1), ("lenet5-relu", 4, 6, 2), ("lenet5-relu", 1, 1, 1),
    ("lenet5-classic", 2, 12, 2), ("lenet5-relu", 5, 7, 1)])
def test_edges_carry_the_planned_weights_and_operands(plans, name, rows, cols, lanes):
    """For every token, ``LATENCY`` cycles later (measured): its flags and tag and, for a
    valid one, the weights of its row tile and step and every working column's operand read
    from the buffers modelled in Python at the address the docstring's formulas give."""
    plan = plans(name, rows, cols, lanes)
    rng = np.random.default_rng(rows * 100 + cols * 10 + lanes)
    dut = OperandFeeder(plan=plan)
    width = plan.operand_width
    banks = {"input": Banks(dut.input_read, width, rng), "mid": Banks(dut.mid_read, width, rng),
             "fc": Banks(dut.fc_read, width, rng)}
    for position, ports in enumerate(dut.dense_read):
        banks[f"dense{position}"] = Banks(ports, width, rng)
    tokens = random_tokens(plan, rng, 300)
    idle = {"valid": 0, "clear": 0, "capture": 0, "job": 0, "row_tile": 0, "base": 0,
            "window_col": 0, "phase": 0, "k": 0, "copy": 0, "tag": {name: 0 for name in TAG_FIELDS}}
    edges = []

    async def bench(ctx):
        for cycle in range(len(tokens) + OperandFeeder.LATENCY + 2):
            for memory in banks.values():
                memory.serve(ctx)
            # ``block`` is the model's: the token carries its ``base`` and ``window_col``
            ctx.set(dut.issue.token, {name: value for name, value in tokens[cycle].items()
                                      if name != "block"} if cycle < len(tokens) else idle)
            for memory in banks.values():
                memory.sample(ctx)
            flags, tag = ctx.get(dut.edge.flags), ctx.get(dut.edge.tag)
            w_edge, x_edge = ctx.get(dut.edge.w_edge), ctx.get(dut.edge.x_edge)
            edges.append({
                "flags": (flags.valid, flags.clear, flags.capture),
                "tag": {name: getattr(tag, name) for name in TAG_FIELDS},
                "weights": [w_edge[r] for r in range(rows)],
                "operands": [x_edge[c] for c in range(cols)]})
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    # the latency, measured: the one delay at which every token's random tag comes out
    delays = [delay for delay in range(len(edges) - len(tokens) + 1)
              if all(edges[cycle + delay]["tag"] == token["tag"]
                     for cycle, token in enumerate(tokens))]
    assert delays == [OperandFeeder.LATENCY]
    checked = {"conv": 0, "dense": 0}
    for cycle, token in enumerate(tokens):
        edge = edges[cycle + OperandFeeder.LATENCY]
        assert edge["flags"] == (token["valid"], token["clear"], token["capture"]), cycle
        if token["valid"]:
            weights, operands = expected_edge(plan, banks, token)
            assert edge["weights"] == weights, (cycle, token)
            assert [got for got, want in zip(edge["operands"], operands) if want is not None] \
                == [want for want in operands if want is not None], (cycle, token)
            checked[plan.jobs[token["job"]].kind] += 1
    # the idle tail brings nothing valid
    assert all(edge["flags"] == (0, 0, 0) for edge in edges[len(tokens) + OperandFeeder.LATENCY:])
    # every job was seen with valid tokens, at both copies of the input buffer
    valid = [token for token in tokens if token["valid"]]
    assert {token["job"] for token in valid} == {job.index for job in plan.jobs}
    assert {token["copy"] for token in valid if token["job"] == 0} == {0, 1}
    assert checked["conv"] > 50 and checked["dense"] > 50
