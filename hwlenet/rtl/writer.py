"""The buffer writer: puts each post-processed output where the next job will read it."""

import math

from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .arith import divmod_constant, scaled
from .postproc import output_signature
from .streamer import store_signature

__all__ = ["BufferWriter", "trace_layout"]


def trace_layout(plan):
    """Every value written to an on-chip buffer or the result registers, for diagnosis: the
    artifact index of the layer it belongs to and, per lane, the image, the element index in
    the layer's (channel, row, column) order and the value."""
    cols = plan.cols
    layers = plan.qmodel.layers
    return data.StructLayout({
        "valid": data.ArrayLayout(1, cols),
        "layer": unsigned(ceil_log2(len(layers) + 1)),
        "image": data.ArrayLayout(unsigned(32), cols),
        "index": data.ArrayLayout(range(max(math.prod(layer.out_shape) for layer in layers)),
                                  cols),
        "value": data.ArrayLayout(signed(plan.value_width), cols),
    })


class BufferWriter(wiring.Component):
    """Writes the post-processor's outputs in five registered stages (``LATENCY = 5``: the
    writes, ``store`` and ``trace`` follow five cycles after the outputs appear). The first
    only registers the outputs, so that the route from the post-processor to the writer's
    address arithmetic is a cycle of its own; the next three register the outputs with every
    lane's buffer position (the address arithmetic: the window's place in the pooled row, its
    row pair in the buffer, then the buffer's bank and row, :meth:`FeatureBuffer.pair` and
    :meth:`FeatureBuffer.place`); the last steers each value to its bank's port (for timing:
    one step each):

    * the first conv job's pooled outputs into the middle feature buffer, at
      ``(channel, py + pad, px + pad)`` for lane ``g``, ``(py, px)`` being window
      ``window_col + g`` of pooled row ``window_row``, wrapped into the next row past the
      pooled width (``pad`` the second convolution's padding), with
      :meth:`FeatureBuffer.locate`;
    * the second conv job's into image slot ``slot``'s flattened-feature banks: sub-bank ``g``,
      word :meth:`HardwarePlan.fc_address` ``(channel, block)``;
    * each dense job's but the last into its output banks, word ``channel`` of slot ``c``;
    * the last dense job's to the result streamer (``store``), with ``finish`` on its ``done``.

    ``trace`` shows every value written, with its layer, image and element index. ``done``
    repeats the outputs' ``done`` ``LATENCY - 1`` cycles later, from the fourth stage: a job's
    last writes land before a job that waits for it can read them, as they did when the
    post-processor's ``done`` was waited for and the writer had one stage.

    Parameters
    ----------
    plan : HardwarePlan
    """

    LATENCY = 5

    def __init__(self, *, plan):
        self.plan = plan
        cols, groups = plan.cols, plan.fc_subbanks
        operand = signed(plan.operand_width)

        def writes(count, depth):
            return In(WritePort.Signature(addr_width=ceil_log2(depth), shape=operand)).array(count)

        members = {
            "output": In(output_signature(plan)),
            "mid_writes": writes(plan.mid_buffer.banks, plan.mid_buffer.depth),
            "fc_writes": writes(cols * groups, plan.fc_input_depth),
            "store": Out(store_signature(plan)),
            "trace": Out(trace_layout(plan)),
            "done": Out(1),
        }
        for position, job in enumerate(plan.dense_jobs[:-1]):
            members[f"dense{position}_writes"] = writes(cols, job.layer.out_shape[0])
        super().__init__(members)

    @property
    def dense_writes(self):
        return [getattr(self, f"dense{position}_writes")
                for position in range(len(self.plan.dense_jobs) - 1)]

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        cols, groups = plan.cols, plan.windows
        conv, dense = plan.conv_jobs, plan.dense_jobs
        signature = output_signature(plan)
        stages = [self.output] + [signature.create(path=(f"output{stage}",))
                                  for stage in range(1, self.LATENCY)]
        for previous, stage in zip(stages, stages[1:]):
            m.d.sync += [getattr(stage, name).eq(getattr(previous, name))
                         for name in signature.members]
        _, arriving, early, middle, source = stages
        trace = Signal(trace_layout(plan))
        store = store_signature(plan).create(path=("store_next",))
        m.d.sync += self.trace.eq(trace)
        m.d.sync += [getattr(self.store, name).eq(getattr(store, name))
                     for name in store_signature(plan).members]
        m.d.comb += self.done.eq(source.done)
        tag, channel = source.tag, source.channel
        mid = plan.mid_buffer
        next_pad = conv[1].layer.padding

        def staged(ports, name):
            """Stand-ins for ``ports`` driven in this cycle; the ports get them registered."""
            stand_ins = []
            for index, port in enumerate(ports):
                stand_in = _Write(port, f"{name}_{index}")
                m.d.sync += [port.en.eq(stand_in.en), port.addr.eq(stand_in.addr),
                             port.data.eq(stand_in.data)]
                stand_ins.append(stand_in)
            return stand_ins

        # the address arithmetic, a step per stage: each window's place in the pooled row
        # from the outputs as they arrive; its row pair in the middle buffer; its bank and row
        width = conv[0].pooled_width
        places = []

        def register(value, name):
            registered = Signal.like(value, name=name)
            m.d.sync += registered.eq(value)
            return registered

        for g in range(groups):
            wraps, px = (register(value, f"mid_{name}_{g}") for name, value in zip(
                ("wraps", "px"), divmod_constant(arriving.tag.window_col + g, width,
                                                 width + groups)))
            y = early.tag.window_row + wraps + next_pad
            pair = register(mid.pair(early.channel, y), f"mid_pair_{g}")
            parity = register(y & 1, f"mid_parity_{g}")
            x = register(px + next_pad, f"mid_x_{g}")
            bank_now, row_now = mid.place(pair, parity, x)
            bank = Signal(range(mid.banks), name=f"mid_bank_{g}")
            row = Signal(range(mid.depth), name=f"mid_row_{g}")
            m.d.sync += [bank.eq(bank_now), row.eq(row_now)]
            places.append((bank, row))
        fc_address = Signal(range(plan.fc_input_depth))
        m.d.sync += fc_address.eq(plan.fc_address(middle.channel, middle.tag.block))
        mid_writes = staged(self.mid_writes, "mid")
        fc_writes = staged(self.fc_writes, "fc")
        dense_writes = [staged(ports, f"dense{position}")
                        for position, ports in enumerate(self.dense_writes)]
        for job in plan.jobs:
            with m.If(tag.job == job.index):
                m.d.comb += trace.layer.eq(plan.qmodel.layers.index(job.out_layer))
                for c in range(cols):
                    m.d.comb += [trace.valid[c].eq(source.valid[c]),
                                 trace.value[c].eq(source.value[c])]
                if job.kind == "conv":
                    for g in range(groups):
                        m.d.comb += [trace.image[g].eq(tag.image),
                                     trace.index[g].eq(scaled(channel, job.pooled_size)
                                                       + scaled(tag.block, groups) + g)]
                    if job is conv[0]:
                        for bank, port in enumerate(mid_writes):
                            for g, (place_bank, place_row) in enumerate(places):
                                with m.If(source.valid[g] & (place_bank == bank)):
                                    m.d.comb += [port.en.eq(1), port.data.eq(source.value[g]),
                                                 port.addr.eq(place_row)]
                    else:
                        for slot in range(cols):
                            for g in range(groups):
                                port = fc_writes[slot * groups + g]
                                m.d.comb += [
                                    port.en.eq(source.valid[g] & (tag.slot == slot)),
                                    port.data.eq(source.value[g]),
                                    port.addr.eq(fc_address)]
                else:
                    for c in range(cols):
                        m.d.comb += [trace.image[c].eq(tag.image + c), trace.index[c].eq(channel)]
                    if job is not dense[-1]:
                        for c, port in enumerate(dense_writes[dense.index(job)]):
                            m.d.comb += [port.en.eq(source.valid[c]), port.addr.eq(channel),
                                         port.data.eq(source.value[c])]
                    else:
                        m.d.comb += [store.valid.eq(source.valid),
                                     store.index.eq(channel),
                                     store.finish.eq(source.done),
                                     store.count.eq(tag.count)]
                        m.d.comb += [store.value[c].eq(source.value[c])
                                     for c in range(cols)]
        return m


class _Write:
    """The enable, address and data of one write port, as signals of the writer's own."""

    def __init__(self, port, name):
        self.en = Signal(name=f"{name}_en")
        self.addr = Signal.like(port.addr, name=f"{name}_addr")
        self.data = Signal.like(port.data, name=f"{name}_data")
