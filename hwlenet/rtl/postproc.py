"""The post-processing unit: everything after the multiply-accumulate, per the artifact."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import requantize_layer, table_address, window_total
from .plan import POST_LATENCY

__all__ = ["PostProcessor", "tile_tag_layout"]


def tile_tag_layout(plan):
    """The tag travelling with each tile through the array."""
    most_tiles = max(max(job.row_tiles for job in plan.jobs), 2)
    conv = plan.conv_jobs
    return data.StructLayout({
        "job": unsigned(ceil_log2(len(plan.jobs) + 1)),
        "row_tile": unsigned(ceil_log2(most_tiles + 1)),
        "block_row": unsigned(ceil_log2(max(job.block_rows for job in conv) + 1)),
        "block_col": unsigned(ceil_log2(max(job.block_cols for job in conv) + 1)),
        "image": unsigned(32),
        "slot": unsigned(ceil_log2(plan.cols + 1)),
        "count": unsigned(ceil_log2(plan.cols + 1)),
        "last": 1,
    })


class PostProcessor(wiring.Component):
    """Turns each drained array row into layer outputs, exactly as the artifact says.

    For a drained row of ``cols`` accumulators of output channel ``m`` of job ``j``:
    ``v = acc + bias[m]``; ReLU if the layer has it; ``r = requantize(v)`` into the layer's
    output format (its table index format for tanh); ``y = lut[r - min]`` for tanh, else ``r``.
    Conv jobs then pool each 2x2 window (columns ``2g, 2g+1, cols/2+2g, cols/2+2g+1``): the
    maximum, or ``requantize(coef[m] * sum + bias2[m])`` and the subsampling layer's table.
    Outputs appear ``LATENCY = 5`` cycles after the row arrives, for one cycle.

    Parameters
    ----------
    plan : HardwarePlan
    """

    LATENCY = POST_LATENCY

    def __init__(self, *, plan):
        self.plan = plan
        cols = plan.cols
        self.width = plan.value_width
        tag = tile_tag_layout(plan)
        super().__init__({
            "in_valid": In(1),
            "in_row": In(unsigned(ceil_log2(plan.rows + 1))),
            "in_acc": In(data.ArrayLayout(signed(plan.accumulator_width), cols)),
            "in_tag": In(tag),
            "out_valid": Out(data.ArrayLayout(1, cols)),
            "out_value": Out(data.ArrayLayout(signed(self.width), cols)),
            "out_channel": Out(unsigned(16)),
            "out_tag": Out(tag),
            "out_done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        plan, cols, width = self.plan, self.plan.cols, self.width
        half, groups = cols // 2, cols // 4
        jobs = plan.jobs
        def rom(image):
            memory = Memory(shape=signed(image.lane_width), depth=image.depth, init=image.words)
            m.submodules[image.name] = memory
            return memory

        biases = plan.bias_rom()
        bias_port = rom(biases).read_port()
        tanh_jobs = [job for job in jobs if job.layer.activation == "tanh"]
        tables = plan.table_rom()
        lut_ports = []
        if tables:
            lut_rom = rom(tables)
            lut_ports = [lut_rom.read_port() for _ in range(cols)]
        sub_jobs = plan.subsample_jobs
        coefficients, pool_biases = plan.coefficient_rom(), plan.pool_bias_rom()
        coef_port = bias2_port = None
        if coefficients:
            coef_port = rom(coefficients).read_port()
            bias2_port = rom(pool_biases).read_port()
        pool_tables = plan.pool_table_rom()
        pool_lut_ports = []
        if pool_tables:
            pool_lut_rom = rom(pool_tables)
            pool_lut_ports = [pool_lut_rom.read_port() for _ in range(groups)]
        pool_lut_jobs = [job for job in sub_jobs if job.pool.activation == "tanh"]

        # stage 0: the drained row arrives; look up per-channel constants
        tag = self.in_tag
        channel = Signal(16)
        m.d.comb += channel.eq(tag.row_tile * plan.rows + self.in_row)
        with m.Switch(tag.job):
            for job in jobs:
                with m.Case(job.index):
                    m.d.comb += bias_port.addr.eq(biases.base(job.layer.name) + channel)
                    if job in sub_jobs:
                        m.d.comb += [
                            coef_port.addr.eq(coefficients.base(job.pool.name) + channel),
                            bias2_port.addr.eq(pool_biases.base(job.pool.name) + channel)]
        lane_valid = Signal(cols)
        with m.Switch(tag.job):
            for job in jobs:
                with m.Case(job.index):
                    maps = job.layer.out_shape[0]
                    if job.kind == "conv":
                        pooled_w = job.pool.out_shape[2]
                        for g in range(groups):
                            m.d.comb += lane_valid[g].eq(
                                (channel < maps) & (tag.block_col * groups + g < pooled_w))
                    else:
                        for c in range(cols):
                            m.d.comb += lane_valid[c].eq((channel < maps) & (c < tag.count))

        def stage(*values, name):
            registered = []
            for index, value in enumerate(values):
                register = Signal.like(value, name=f"{name}_{index}")
                m.d.sync += register.eq(value)
                registered.append(register)
            return registered

        valid1, channel1, tag1, done1 = stage(
            self.in_valid, channel, tag, self.in_valid & tag.last & (self.in_row == plan.rows - 1),
            name="s1")
        lanes1 = stage(*[self.in_acc[c] for c in range(cols)], name="acc1")
        lane_valid1, = stage(lane_valid, name="lv1")

        # stage 1: bias, ReLU, requantize
        requantized = [Signal(signed(width), name=f"r1_{c}") for c in range(cols)]
        for c in range(cols):
            total = Signal(signed(plan.accumulator_width + 1), name=f"v_{c}")
            m.d.comb += total.eq(lanes1[c] + bias_port.data)
            with m.Switch(tag1.job):
                for job in jobs:
                    with m.Case(job.index):
                        m.d.sync += requantized[c].eq(requantize_layer(total, job.layer))
        coef2 = [port.data for port in (coef_port, bias2_port) if port is not None]
        valid2, channel2, tag2, done2, lane_valid2, *coef2 = stage(
            valid1, channel1, tag1, done1, lane_valid1, *coef2, name="s2")

        # stage 2: activation table look-up
        for c, port in enumerate(lut_ports):
            with m.Switch(tag2.job):
                for job in tanh_jobs:
                    with m.Case(job.index):
                        m.d.comb += port.addr.eq(table_address(
                            tables.base(job.layer.name), requantized[c], job.layer.pre_format))
        held = stage(*requantized, name="r2")
        valid3, channel3, tag3, done3, lane_valid3, *coef3 = stage(
            valid2, channel2, tag2, done2, lane_valid2, *coef2, name="s3")

        # stage 3: pooling or subsampling
        activated = [Signal(signed(width), name=f"y_{c}") for c in range(cols)]
        for c in range(cols):
            m.d.comb += activated[c].eq(held[c])
            if lut_ports:
                with m.Switch(tag3.job):
                    for job in tanh_jobs:
                        with m.Case(job.index):
                            m.d.comb += activated[c].eq(lut_ports[c].data)
        pooled = [Signal(signed(width), name=f"p_{c}") for c in range(cols)]
        with m.Switch(tag3.job):
            for job in jobs:
                with m.Case(job.index):
                    if job.kind == "dense":
                        m.d.sync += [pooled[c].eq(activated[c]) for c in range(cols)]
                        continue
                    for g in range(groups):
                        window = [activated[i] for i in (2 * g, 2 * g + 1, half + 2 * g,
                                                         half + 2 * g + 1)]
                        if job.pool.kind == "maxpool":
                            top = Mux(window[0] > window[1], window[0], window[1])
                            bottom = Mux(window[2] > window[3], window[2], window[3])
                            m.d.sync += pooled[g].eq(Mux(top > bottom, top, bottom))
                        else:
                            m.d.sync += pooled[g].eq(requantize_layer(
                                window_total(window, coef3[0], coef3[1]), job.pool))
        valid4, channel4, tag4, done4, lane_valid4 = stage(
            valid3, channel3, tag3, done3, lane_valid3, name="s4")

        # stage 4: the subsampling layer's table
        for g, port in enumerate(pool_lut_ports):
            with m.Switch(tag4.job):
                for job in pool_lut_jobs:
                    with m.Case(job.index):
                        m.d.comb += port.addr.eq(table_address(
                            pool_tables.base(job.pool.name), pooled[g], job.pool.pre_format))
        final = stage(*pooled, name="p5")
        valid5, channel5, tag5, done5, lane_valid5 = stage(
            valid4, channel4, tag4, done4, lane_valid4, name="s5")

        # stage 5: results out
        for c in range(cols):
            m.d.comb += self.out_value[c].eq(final[c])
            if c < groups and pool_lut_ports:
                with m.Switch(tag5.job):
                    for job in pool_lut_jobs:
                        with m.Case(job.index):
                            m.d.comb += self.out_value[c].eq(pool_lut_ports[c].data)
            m.d.comb += self.out_valid[c].eq(valid5 & lane_valid5[c])
        m.d.comb += [self.out_channel.eq(channel5), self.out_tag.eq(tag5),
                     self.out_done.eq(done5)]
        return m

