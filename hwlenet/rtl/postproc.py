"""The post-processing unit: everything after the multiply-accumulate, per the artifact."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .systolic import drain_signature
from .arith import fit_layer, round_layer, scaled, table_address

__all__ = ["PostProcessor", "output_signature", "tile_tag_layout"]


def tile_tag_layout(plan):
    """The tag travelling with each tile through the array: for conv jobs, the ``block`` of
    windows and its first window's pooled row and column (``window_row``, ``window_col``)."""
    most_tiles = max(max(job.row_tiles for job in plan.jobs), 2)
    conv = plan.conv_jobs
    return data.StructLayout({
        "job": unsigned(ceil_log2(len(plan.jobs) + 1)),
        "row_tile": unsigned(ceil_log2(most_tiles + 1)),
        "block": unsigned(ceil_log2(max(job.blocks for job in conv) + 1)),
        "window_row": unsigned(ceil_log2(max(job.pool.out_shape[1] for job in conv) + 2)),
        "window_col": unsigned(ceil_log2(max(job.pooled_width for job in conv) + 1)),
        "phase": unsigned(ceil_log2(plan.phases + 1)),
        "image": unsigned(32),
        "slot": unsigned(ceil_log2(plan.cols + 1)),
        "count": unsigned(ceil_log2(plan.cols + 1)),
        "last": 1,
    })


def output_signature(plan):
    """The post-processor's output, seen from it: in a cycle, lane ``c`` with ``valid[c]``
    holds ``value[c]``, output channel ``channel`` of the tile tagged ``tag`` (conv jobs: lane
    ``g`` is pooled window ``g`` of the block; dense jobs: lane ``c`` is image slot ``c``);
    ``done`` marks the last outputs of a job."""
    return wiring.Signature({
        "valid": Out(data.ArrayLayout(1, plan.cols)),
        "value": Out(data.ArrayLayout(signed(plan.value_width), plan.cols)),
        "channel": Out(range(max(job.row_tiles for job in plan.jobs) * plan.rows)),
        "tag": Out(tile_tag_layout(plan)),
        "done": Out(1),
    })


class PostProcessor(wiring.Component):
    """Turns each drained array row into layer outputs, exactly as the artifact says.

    For a drained row of ``cols`` accumulators of output channel ``m`` of job ``j``:
    ``v = acc + bias[m]``; ReLU if the layer has it; ``r = requantize(v)`` into the layer's
    output format (its table index format for tanh); ``y = lut[r - min]`` for tanh, else ``r``.
    Conv jobs then pool each 2x2 window ``g`` (columns ``g * window_lanes`` to
    ``(g + 1) * window_lanes - 1`` of the ``phases`` tiles that complete it, see
    :meth:`HardwarePlan.column_member`): the maximum, or ``requantize(coef[m] * sum + bias2[m])``
    and the subsampling layer's table. With several phases, a queue of one partial maximum or
    sum per array row carries each window from one phase to the next (cycle 10), and only the
    last phase's outputs are valid.

    Every step is registered, with one adder, comparator chain or multiplier between
    registers and every ROM read registered before use (for timing), so outputs appear
    ``LATENCY = 17`` cycles after the row arrives, for one cycle:

    =====  ================================================================================
    cycle  what is registered at its start (the row arrives at cycle 0)
    =====  ================================================================================
    1      the bias, coefficient and subsampling-bias ROMs' addresses (the ROMs are read)
    2      the ROM words; the lane mask's tests, from the channel and tag of cycle 1
    3      the ROM words again, alone (a block RAM's output register); the lane mask
    4      ``v = acc + bias``
    5      ReLU and the rounded shift
    6      saturation or wrap: ``r``; the activation table is addressed
    7      ``r`` again (the table is read)
    8      the table word alone and ``r`` (the word in a block RAM's output register)
    9      ``y``, the word or ``r`` (so the route out of the block RAM ends at a register);
           for the maximum, the comparisons of a window's lanes (from the word or ``r``)
    10     the maximum or the sum of each pair of a window's lanes; which pair holds the
           window's maximum
    11     the window maximum, or the window sum (with the earlier phases' partial result)
    12     ``coef * sum``
    13     ``+ bias2``
    14     the rounded shift
    15     saturation or wrap; the subsampling table is addressed
    16     the value again (the table is read)
    17     the table word alone and the value: the outputs are one of them
    =====  ================================================================================

    Parameters
    ----------
    plan : HardwarePlan
    """

    LATENCY = 17

    def __init__(self, *, plan):
        self.plan = plan
        cols = plan.cols
        self.width = plan.value_width
        tag = tile_tag_layout(plan)
        super().__init__({
            "drain": In(drain_signature(rows=plan.rows, cols=cols,
                                        accumulator_width=plan.accumulator_width,
                                        tag_shape=tag)),
            "output": Out(output_signature(plan)),
        })

    def elaborate(self, platform):
        m = Module()
        plan, cols, width = self.plan, self.plan.cols, self.width
        groups, window_lanes, phases = plan.windows, plan.window_lanes, plan.phases
        jobs = plan.jobs
        sub_jobs = plan.subsample_jobs
        tanh_jobs = [job for job in jobs if job.layer.activation == "tanh"]
        pool_lut_jobs = [job for job in sub_jobs if job.pool.activation == "tanh"]

        def rom(image):
            memory = Memory(shape=signed(image.lane_width), depth=image.depth, init=image.words)
            m.submodules[image.name] = memory
            return memory

        def register(value, name, *, reset_less=False):
            registered = Signal(value.shape(), name=name, reset_less=reset_less)
            m.d.sync += registered.eq(value)
            return registered

        def job_switch(selector, job_list, assign):
            """``assign(job)`` under the case of each job of ``job_list``."""
            with m.Switch(selector):
                for job in job_list:
                    with m.Case(job.index):
                        assign(job)

        def per_job(domain, target, job_list, function):
            """``target <- function(job)`` in ``domain`` when the stage being built (the latest
            ``control``) holds a job of ``job_list``."""
            with m.Switch(control.tag.job):
                for job in job_list:
                    with m.Case(job.index):
                        domain += target.eq(function(job))

        class Control:
            """What travels beside the values: valid, channel, tag, done, lane mask."""

            def __init__(self, valid, channel, tag, done, lanes):
                self.valid, self.channel, self.tag = valid, channel, tag
                self.done, self.lanes = done, lanes

            def next(self, cycle):
                return Control(*(None if value is None else register(value, f"{name}{cycle}")
                                 for name, value in (
                                     ("valid", self.valid), ("channel", self.channel),
                                     ("tag", self.tag), ("done", self.done),
                                     ("lanes", self.lanes))))

        biases = plan.bias_rom()
        bias_port = rom(biases).read_port()
        tables = plan.table_rom()
        lut_ports = []
        if tables:
            lut_rom = rom(tables)
            lut_ports = [lut_rom.read_port() for _ in range(cols)]
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

        # cycle 0: the drained row arrives; the per-channel constants' addresses are registered
        tag = self.drain.tag
        channel = Signal.like(self.output.channel)
        m.d.comb += channel.eq(scaled(tag.row_tile, plan.rows) + self.drain.row)
        addresses = [(port, Signal.like(port.addr, name=f"{name}_addr1"))
                     for name, port in (("bias", bias_port), ("coef", coef_port),
                                        ("pool_bias", bias2_port)) if port is not None]
        m.d.comb += [port.addr.eq(address) for port, address in addresses]

        def constants(job):
            (_, bias_addr), *pool_addrs = addresses
            m.d.sync += bias_addr.eq(biases.base(job.layer.name) + channel)
            if job in sub_jobs:
                coef_addr, pool_bias_addr = (address for _, address in pool_addrs)
                m.d.sync += [coef_addr.eq(coefficients.base(job.pool.name) + channel),
                             pool_bias_addr.eq(pool_biases.base(job.pool.name) + channel)]
        job_switch(tag.job, jobs, constants)

        done = self.drain.valid & tag.last & (self.drain.row == plan.rows - 1)
        control = Control(self.drain.valid, channel, tag, done, None).next(1)
        acc = [register(self.drain.acc[c], f"acc1_{c}") for c in range(cols)]

        # cycle 1: the ROMs are read; the lane mask's tests are registered from the registered
        # channel and tag (so that no arithmetic of cycle 0 lies on their route); cycle 2: the
        # ROMs' words come out and are registered alone (synthesis can move such a register
        # into a block RAM's output register), and the tests are combined
        tag, channel = control.tag, control.channel
        channel_ok, phase_ok, lane_ok = Signal(), Signal(), Signal(cols)
        m.d.sync += lane_ok.eq(0)

        def lane_tests(job):
            maps = job.layer.out_shape[0]
            m.d.sync += channel_ok.eq(channel < maps)
            if job.kind == "conv":
                m.d.sync += phase_ok.eq(tag.phase == phases - 1)
                m.d.sync += [lane_ok[g].eq(scaled(tag.block, groups) + g < job.pooled_size)
                             for g in range(groups)]
            else:
                m.d.sync += phase_ok.eq(1)
                m.d.sync += [lane_ok[c].eq(c < tag.count) for c in range(cols)]
        job_switch(tag.job, jobs, lane_tests)
        control = control.next(2)
        control.lanes = lane_ok & (channel_ok & phase_ok).replicate(cols)
        acc = [register(value, f"acc2_{c}") for c, value in enumerate(acc)]
        control = control.next(3)
        acc = [register(value, f"acc3_{c}") for c, value in enumerate(acc)]
        bias = register(bias_port.data, "bias3", reset_less=True)
        pool_constants = []
        if coef_port is not None:
            pool_constants = [register(coef_port.data, "coef3", reset_less=True),
                              register(bias2_port.data, "pool_bias3", reset_less=True)]

        def carried(values, cycle):
            return [register(value, f"{name}{cycle}", reset_less=True) for name, value in values]

        # cycle 3: bias
        totals = [register(acc[c] + bias, f"total4_{c}") for c in range(cols)]
        control = control.next(4)
        pool_constants = carried(zip(("coef", "pool_bias"), pool_constants), 4)

        # cycle 4: ReLU and the rounded shift; cycle 5: saturation or wrap
        def per_lane(values, function, shape, name, job_list):
            results = [Signal(shape, name=f"{name}_{c}") for c in range(len(values))]
            for value, result in zip(values, results):
                per_job(m.d.sync, result, job_list,
                        lambda job, value=value: function(value, job))
            return results

        rounded_width = max(len(round_layer(totals[0], job.layer)) for job in jobs) + 1
        rounded = per_lane(totals, lambda value, job: round_layer(value, job.layer),
                           signed(rounded_width), "rounded5", jobs)
        control = control.next(5)
        pool_constants = carried(zip(("coef", "pool_bias"), pool_constants), 5)
        requantized = per_lane(rounded, lambda value, job: fit_layer(value, job.layer),
                               signed(width), "requantized6", jobs)
        control = control.next(6)
        pool_constants = carried(zip(("coef", "pool_bias"), pool_constants), 6)

        # cycle 6: activation table address; cycle 7: the word; cycle 8: the word registered
        # alone (a block RAM's output register); cycle 9: y, chosen between it and r
        for c, port in enumerate(lut_ports):
            per_job(m.d.comb, port.addr, tanh_jobs, lambda job, c=c: table_address(
                tables.base(job.layer.name), requantized[c], job.layer.pre_format))
        held = [register(value, f"requantized7_{c}") for c, value in enumerate(requantized)]
        control = control.next(7)
        pool_constants = carried(zip(("coef", "pool_bias"), pool_constants), 7)
        held = [register(value, f"requantized8_{c}") for c, value in enumerate(held)]
        words = [register(port.data, f"table_word8_{c}", reset_less=True)
                 for c, port in enumerate(lut_ports)]
        control = control.next(8)
        pool_constants = carried(zip(("coef", "pool_bias"), pool_constants), 8)
        activated = [Signal(signed(width), name=f"activated9_{c}") for c in range(cols)]
        for c in range(cols):
            m.d.sync += activated[c].eq(held[c])
            if words:
                per_job(m.d.sync, activated[c], tanh_jobs, lambda job, c=c: words[c])

        # A window's maximum is chosen in two steps from comparisons registered beside y, which
        # compare the values y is chosen from: the pair of lanes ``(a, b)`` is compared for the
        # pairwise maximum, and with 4 lanes the two pairs' lanes across, for the window's.
        # A comparison and the choice it drives never share a cycle.
        def lanes_of(g):
            return range(g * window_lanes, (g + 1) * window_lanes)

        compared = []
        for g in range(groups):
            lanes = lanes_of(g)
            if window_lanes >= 2:
                compared.append(tuple(lanes[:2]))
            if window_lanes == 4:
                a, b, c, d = lanes
                compared += [(c, d), (a, c), (a, d), (b, c), (b, d)]
        greater = {pair: Signal(name=f"greater9_{pair[0]}_{pair[1]}") for pair in compared}
        max_jobs = [job for job in plan.conv_jobs if job.pool.kind == "maxpool"]

        def y_source(job, lane):
            return words[lane] if job in tanh_jobs else held[lane]

        for (a, b), flag in greater.items():
            m.d.sync += flag.eq(0)
            per_job(m.d.sync, flag, max_jobs,
                    lambda job, a=a, b=b: y_source(job, a) > y_source(job, b))
        control = control.next(9)
        pool_constants = carried(zip(("coef", "pool_bias"), pool_constants), 9)

        # cycle 9: each window's lanes reduced in pairs (the maximum or the sum of two), and with
        # 4 lanes which pair holds the window's maximum; cycle 10: the window's maximum or sum,
        # with several phases combined with the row's partial result of the earlier phases,
        # kept in a queue of one entry per array row (every tile drains every row once, in
        # order); dense jobs pass their values on
        def larger(a, b):
            return Mux(greater[a, b], activated[a], activated[b])

        halves = [Signal(signed(width + 2), name=f"half10_{c}") for c in range(cols)]
        first_half = [Signal(name=f"first_half10_{g}") for g in range(groups)]

        def pair_up(job):
            if job.kind == "dense":
                m.d.sync += [halves[c].eq(activated[c]) for c in range(cols)]
                return
            for g in range(groups):
                lanes = lanes_of(g)
                items = [activated[lane] for lane in lanes]
                if job.pool.kind != "maxpool":
                    sums = ([items[0] + items[1], items[2] + items[3]] if window_lanes == 4
                            else [items[0] + items[1]] if window_lanes == 2 else items)
                    m.d.sync += [halves[len(sums) * g + h].eq(value)
                                 for h, value in enumerate(sums)]
                elif window_lanes == 1:
                    m.d.sync += halves[g].eq(items[0])
                elif window_lanes == 2:
                    m.d.sync += halves[g].eq(larger(*lanes))
                else:
                    a, b, c, d = lanes
                    m.d.sync += [halves[2 * g].eq(larger(a, b)),
                                 halves[2 * g + 1].eq(larger(c, d))]
                    left_beats_c = Mux(greater[a, b], greater[a, c], greater[b, c])
                    left_beats_d = Mux(greater[a, b], greater[a, d], greater[b, d])
                    m.d.sync += first_half[g].eq(
                        Mux(greater[c, d], left_beats_c, left_beats_d))
        job_switch(control.tag.job, jobs, pair_up)
        control = control.next(10)
        pool_constants = carried(zip(("coef", "pool_bias"), pool_constants), 10)

        # no reset and a value on every cycle: plain registers, which synthesis can move into
        # the subsampling multipliers' operand registers (:mod:`hwlenet.synth.dsp`)
        pooled = [Signal(signed(width + 2), name=f"pooled11_{c}", reset_less=True)
                  for c in range(cols)]
        m.d.sync += [pooled[c].eq(halves[c]) for c in range(cols)]
        if phases > 1:
            partial = data.ArrayLayout(signed(width + 2), groups)
            queue = [Signal(partial, name=f"partial_{r}") for r in range(plan.rows)]
            fresh = Signal(partial)
            continuing = control.tag.phase != 0
            with m.If(control.valid & (control.tag.job <= plan.conv_jobs[-1].index)):
                m.d.sync += [queue[r].eq(queue[r + 1]) for r in range(plan.rows - 1)]
                m.d.sync += queue[-1].eq(fresh)

        def pool(job):
            if job.kind == "dense":
                return
            for g in range(groups):
                value = halves[g]
                if job.pool.kind == "maxpool":
                    if window_lanes == 4:
                        value = Mux(first_half[g], halves[2 * g], halves[2 * g + 1])
                    if phases > 1:
                        value = Mux(continuing & (queue[0][g] > value), queue[0][g], value)
                else:
                    if window_lanes == 4:
                        value = halves[2 * g] + halves[2 * g + 1]
                    if phases > 1:
                        value = value + Mux(continuing, queue[0][g], 0)
                if phases > 1:
                    m.d.comb += fresh[g].eq(value)
                m.d.sync += pooled[g].eq(value)
        job_switch(control.tag.job, jobs, pool)
        control = control.next(11)

        # cycles 11 to 14: the subsampling arithmetic (other jobs pass their values on)
        if sub_jobs:
            coef, pool_bias = carried(zip(("coef", "pool_bias"), pool_constants), 11)
            products = [register(pooled[g] * coef, f"product12_{g}", reset_less=True)
                        for g in range(groups)]
            pool_bias = register(pool_bias, "pool_bias12")
            pool_totals = [register(products[g] + pool_bias, f"pool_total13_{g}")
                           for g in range(groups)]
        passed = [register(value, f"pooled12_{c}") for c, value in enumerate(pooled)]
        control = control.next(12)
        passed = [register(value, f"pooled13_{c}") for c, value in enumerate(passed)]
        control = control.next(13)
        pool_rounded = []
        if sub_jobs:
            pool_rounded_width = max(len(round_layer(pool_totals[0], job.pool))
                                     for job in sub_jobs) + 1
            pool_rounded = per_lane(pool_totals, lambda value, job: round_layer(value, job.pool),
                                    signed(pool_rounded_width), "pool_rounded14", sub_jobs)
        passed = [register(value, f"pooled14_{c}") for c, value in enumerate(passed)]
        control = control.next(14)
        final = [Signal(signed(width), name=f"final15_{c}") for c in range(cols)]
        for c in range(cols):
            m.d.sync += final[c].eq(passed[c])
        if sub_jobs:
            for g in range(groups):
                per_job(m.d.sync, final[g], sub_jobs,
                        lambda job, g=g: fit_layer(pool_rounded[g], job.pool))
        control = control.next(15)

        # cycle 15: the subsampling table address; cycle 16: the word; cycle 17: the word
        # registered alone, the outputs chosen between it and the value
        for g, port in enumerate(pool_lut_ports):
            per_job(m.d.comb, port.addr, pool_lut_jobs, lambda job, g=g: table_address(
                pool_tables.base(job.pool.name), final[g], job.pool.pre_format))
        final = [register(value, f"final16_{c}") for c, value in enumerate(final)]
        control = control.next(16)
        final = [register(value, f"final17_{c}") for c, value in enumerate(final)]
        pool_words = [register(port.data, f"pool_table_word17_{g}", reset_less=True)
                      for g, port in enumerate(pool_lut_ports)]
        control = control.next(17)
        out = [Signal(signed(width), name=f"out17_{c}") for c in range(cols)]
        for c in range(cols):
            m.d.comb += out[c].eq(final[c])
            if c < len(pool_words):
                per_job(m.d.comb, out[c], pool_lut_jobs, lambda job, c=c: pool_words[c])

        for c in range(cols):
            m.d.comb += [self.output.value[c].eq(out[c]),
                         self.output.valid[c].eq(control.valid & control.lanes[c])]
        m.d.comb += [self.output.channel.eq(control.channel), self.output.tag.eq(control.tag),
                     self.output.done.eq(control.done)]
        return m
