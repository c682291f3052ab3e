"""The whole LeNet-5 accelerator: pixels in, logits and class out, every layer in hardware."""

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .controller import Controller
from .feeder import OperandFeeder
from .postproc import PostProcessor, tile_tag_layout
from .systolic import SystolicArray

__all__ = ["LeNetAccelerator", "pixel_layout", "result_layout", "trace_layout"]

IMAGE_SIDE = 28


def pixel_layout():
    """Input beat: one uint8 pixel, row-major; ``last`` on the final pixel of the final image
    (ends a partial batch)."""
    return data.StructLayout({"pixel": unsigned(8), "last": 1})


def result_layout(plan):
    """Output beat: the 10 logits (the artifact's logit format) and the class index."""
    fmt = plan.logit_format
    return data.StructLayout({
        "logits": data.ArrayLayout(signed(fmt.width) if fmt.signed else unsigned(fmt.width), 10),
        "label": unsigned(4),
    })


def trace_layout(plan):
    """Every value written to an on-chip buffer or the result registers, for diagnosis: the
    artifact index of the layer it belongs to and, per lane, the image, the element index in
    the layer's (channel, row, column) order and the value."""
    cols = plan.cols
    return data.StructLayout({
        "valid": data.ArrayLayout(1, cols),
        "layer": unsigned(4),
        "image": data.ArrayLayout(unsigned(32), cols),
        "index": data.ArrayLayout(unsigned(16), cols),
        "value": data.ArrayLayout(signed(plan.value_width), cols),
    })


class LeNetAccelerator(wiring.Component):
    """LeNet-5 on an output-stationary systolic array, as lowered by a :class:`HardwarePlan`.

    Images arrive on ``pixels`` (784 beats each) into a double-buffered input buffer; the
    controller runs each image's conv jobs and, per batch of up to ``cols`` images, the dense
    jobs; ``results`` carries one beat per image, in input order. ``trace`` shows every value
    the post-processor writes. See ``docs/architecture.md`` for the dataflow and cycle counts.

    Parameters
    ----------
    plan : HardwarePlan
    trace : bool
        Expose the ``trace`` port (the testbenches need it; an FPGA build may leave it out).
    """

    def __init__(self, *, plan, trace=True):
        self.plan = plan
        self.has_trace = bool(trace)
        ports = {"pixels": In(stream.Signature(pixel_layout())),
                 "results": Out(stream.Signature(result_layout(plan)))}
        if self.has_trace:
            ports["trace"] = Out(trace_layout(plan))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        rows, cols = plan.rows, plan.cols
        groups = cols // 4
        conv, dense = plan.conv_jobs, plan.dense_jobs
        operand = signed(plan.operand_width)

        m.submodules.controller = controller = Controller(plan=plan)
        m.submodules.array = array = SystolicArray(
            rows=rows, cols=cols, weight_width=plan.weight_width,
            operand_width=plan.operand_width, accumulator_width=plan.accumulator_width,
            tag_shape=tile_tag_layout(plan))
        m.submodules.post = post = PostProcessor(plan=plan)
        trace = self.trace if self.has_trace else Signal(trace_layout(plan))

        def banks(name, count, depth):
            memories = []
            for index in range(count):
                memory = Memory(shape=operand, depth=depth, init=[])
                m.submodules[f"{name}_{index}"] = memory
                memories.append((memory.read_port(), memory.write_port()))
            return memories

        in_banks = banks("input", cols, plan.input_buffer.depth)
        mid_banks = banks("mid", cols, plan.mid_buffer.depth)
        fc_banks = banks("fcin", cols * groups, plan.fc_input_depth)
        dense_banks = [banks(f"dense{job.index}", cols, job.layer.out_shape[0])
                       for job in dense[:-1]]

        # ---- input loader ------------------------------------------------------------------
        pad = conv[0].layer.padding
        loading = Signal(32)
        pixel_x = Signal(range(IMAGE_SIDE))
        pixel_y = Signal(range(IMAGE_SIDE))
        last_flags = Signal(2)
        m.d.comb += self.pixels.ready.eq(loading < controller.images_released + 2)
        in_buffer = plan.input_buffer
        y, x = pixel_y + pad, pixel_x + pad
        in_row = Signal(range(in_buffer.depth))
        m.d.comb += in_row.eq(in_buffer.address(0, y, x, loading[0]))
        for bank, (_, write) in enumerate(in_banks):
            m.d.comb += [write.addr.eq(in_row), write.data.eq(self.pixels.payload.pixel),
                         write.en.eq(self.pixels.valid & self.pixels.ready
                                     & (in_buffer.bank(y, x) == bank))]
        with m.If(self.pixels.valid & self.pixels.ready):
            m.d.sync += pixel_x.eq(pixel_x + 1)
            with m.If(pixel_x == IMAGE_SIDE - 1):
                m.d.sync += [pixel_x.eq(0), pixel_y.eq(pixel_y + 1)]
                with m.If(pixel_y == IMAGE_SIDE - 1):
                    m.d.sync += [pixel_y.eq(0), loading.eq(loading + 1),
                                 last_flags.bit_select(loading[0], 1).eq(
                                     self.pixels.payload.last)]
        m.d.comb += [controller.images_loaded.eq(loading), controller.last_flags.eq(last_flags)]

        # ---- operand feeder ----------------------------------------------------------------
        m.submodules.feeder = feeder = OperandFeeder(plan=plan)
        wiring.connect(m, controller.issue, feeder.issue)
        for ports, memories in ((feeder.input_read, in_banks), (feeder.mid_read, mid_banks),
                                (feeder.fc_read, fc_banks),
                                *zip(feeder.dense_read, dense_banks)):
            for port, (read, _) in zip(ports, memories):
                wiring.connect(m, port, read)
        wiring.connect(m, feeder.edge, array.edge)

        # ---- array -> post-processor -> buffers ---------------------------------------------
        wiring.connect(m, array.drain, post.drain)
        tag = post.out_tag
        channel = post.out_channel
        m.d.comb += controller.done.eq(post.out_done)
        next_pad = conv[1].layer.padding
        mid = plan.mid_buffer
        results = [[Signal(self.results.payload.logits.shape().elem_shape, name=f"logit_{b}_{i}")
                    for i in range(10)] for b in range(cols)]
        pooled_h, pooled_w = conv[-1].pool.out_shape[1:]
        for job in plan.jobs:
            with m.If(tag.job == job.index):
                layer_index = plan.qmodel.layers.index(job.out_layer)
                m.d.comb += trace.layer.eq(layer_index)
                for c in range(cols):
                    m.d.comb += [trace.valid[c].eq(post.out_valid[c]),
                                 trace.value[c].eq(post.out_value[c])]
                if job.kind == "conv":
                    _, out_h, out_w = job.pool.out_shape
                    for g in range(groups):
                        px = tag.block_col * groups + g
                        m.d.comb += [trace.image[g].eq(tag.image),
                                     trace.index[g].eq(channel * out_h * out_w
                                                            + tag.block_row * out_w + px)]
                    if job is conv[0]:
                        for bank, (_, write) in enumerate(mid_banks):
                            for g in range(groups):
                                py, px = tag.block_row + next_pad, tag.block_col * groups + g \
                                    + next_pad
                                hit = post.out_valid[g] & (mid.bank(py, px) == bank)
                                with m.If(hit):
                                    m.d.comb += [
                                        write.en.eq(1), write.data.eq(post.out_value[g]),
                                        write.addr.eq(mid.address(channel, py, px))]
                    else:
                        words_per_row = -(-pooled_w // groups)
                        for slot in range(cols):
                            for g in range(groups):
                                _, write = fc_banks[slot * groups + g]
                                m.d.comb += [
                                    write.en.eq(post.out_valid[g] & (tag.slot == slot)),
                                    write.data.eq(post.out_value[g]),
                                    write.addr.eq(channel * pooled_h * words_per_row
                                                  + tag.block_row * words_per_row
                                                  + tag.block_col)]
                else:
                    for c in range(cols):
                        m.d.comb += [trace.image[c].eq(tag.image + c),
                                     trace.index[c].eq(channel)]
                    if job is not dense[-1]:
                        for c, (_, write) in enumerate(dense_banks[dense.index(job)]):
                            m.d.comb += [write.en.eq(post.out_valid[c]), write.addr.eq(channel),
                                         write.data.eq(post.out_value[c])]
                    else:
                        for c in range(cols):
                            with m.If(post.out_valid[c]):
                                with m.Switch(channel):
                                    for i in range(10):
                                        with m.Case(i):
                                            m.d.sync += results[c][i].eq(post.out_value[c])

        # ---- result streamer -----------------------------------------------------------------
        busy = Signal()
        count = Signal(range(cols + 1))
        current = Signal(range(cols + 1))
        m.d.comb += controller.streamer_busy.eq(busy)
        with m.If(post.out_done & (tag.job == dense[-1].index)):
            m.d.sync += [busy.eq(1), count.eq(tag.count), current.eq(0)]
        logits = [Signal.like(results[0][i], name=f"selected_logit_{i}") for i in range(10)]
        with m.Switch(current):
            for b in range(cols):
                with m.Case(b):
                    m.d.comb += [logits[i].eq(results[b][i]) for i in range(10)]
        m.d.comb += [self.results.payload.logits[i].eq(logits[i]) for i in range(10)]
        best = Signal(4)
        best_value = logits[0]
        best_index = 0
        for i in range(1, 10):
            better = logits[i] > best_value
            best_index = Mux(better, i, best_index)
            best_value = Mux(better, logits[i], best_value)
        m.d.comb += [best.eq(best_index), self.results.payload.label.eq(best),
                     self.results.valid.eq(busy)]
        with m.If(self.results.valid & self.results.ready):
            m.d.sync += current.eq(current + 1)
            with m.If(current == count - 1):
                m.d.sync += busy.eq(0)
        return m
