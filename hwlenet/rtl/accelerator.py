"""The whole LeNet-5 accelerator: pixels in, logits and class out, every layer in hardware."""

from amaranth.hdl import Module, signed
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .controller import Controller
from .feeder import OperandFeeder
from .loader import InputLoader, pixel_layout
from .postproc import PostProcessor, tile_tag_layout
from .streamer import ResultStreamer, result_layout
from .systolic import SystolicArray
from .writer import BufferWriter, trace_layout

__all__ = ["LeNetAccelerator"]


class LeNetAccelerator(wiring.Component):
    """LeNet-5 on an output-stationary systolic array, as lowered by a :class:`HardwarePlan`.

    Images arrive on ``pixels`` (:attr:`HardwarePlan.image_pixels` beats each) through the
    :class:`InputLoader` into a double-buffered input buffer; the :class:`Controller` runs each
    image's conv jobs and, per batch of up to ``cols`` images, the dense jobs; the
    :class:`OperandFeeder` reads weights and operands for the :class:`SystolicArray`, whose
    drained rows the :class:`PostProcessor` finishes and the :class:`BufferWriter` stores;
    the :class:`ResultStreamer` sends one ``results`` beat per image, in input order.
    ``trace`` shows every value written. See ``docs/architecture.md`` for the dataflow and
    cycle counts.

    Parameters
    ----------
    plan : HardwarePlan
    trace : bool
        Expose the ``trace`` port (the testbenches need it; an FPGA build may leave it out).
    """

    def __init__(self, *, plan, trace=True):
        self.plan = plan
        self.has_trace = bool(trace)
        ports = {"pixels": In(stream.Signature(pixel_layout(plan))),
                 "results": Out(stream.Signature(result_layout(plan)))}
        if self.has_trace:
            ports["trace"] = Out(trace_layout(plan))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        cols = plan.cols
        operand = signed(plan.operand_width)

        m.submodules.loader = loader = InputLoader(plan=plan)
        m.submodules.controller = controller = Controller(plan=plan)
        m.submodules.feeder = feeder = OperandFeeder(plan=plan)
        m.submodules.array = array = SystolicArray(
            rows=plan.rows, cols=cols, weight_width=plan.weight_width,
            operand_width=plan.operand_width, accumulator_width=plan.accumulator_width,
            tag_shape=tile_tag_layout(plan))
        m.submodules.post = post = PostProcessor(plan=plan)
        m.submodules.writer = writer = BufferWriter(plan=plan)
        m.submodules.streamer = streamer = ResultStreamer(plan=plan)

        def buffer(name, count, depth, readers, writers):
            """``count`` banks of ``depth`` operands, read by ``readers``, written by
            ``writers`` (one port of each per bank)."""
            for index, (reader, writer_port) in enumerate(zip(readers, writers)):
                memory = Memory(shape=operand, depth=depth, init=[])
                m.submodules[f"{name}_{index}"] = memory
                wiring.connect(m, reader, memory.read_port())
                wiring.connect(m, writer_port, memory.write_port())
            assert len(readers) == len(writers) == count

        buffer("input", plan.input_buffer.banks, plan.input_buffer.depth, feeder.input_read,
               loader.writes)
        buffer("mid", plan.mid_buffer.banks, plan.mid_buffer.depth, feeder.mid_read,
               writer.mid_writes)
        buffer("fcin", cols * plan.fc_subbanks, plan.fc_input_depth, feeder.fc_read,
               writer.fc_writes)
        for position, job in enumerate(plan.dense_jobs[:-1]):
            buffer(f"dense{job.index}", cols, job.layer.out_shape[0],
                   feeder.dense_read[position], writer.dense_writes[position])

        wiring.connect(m, wiring.flipped(self.pixels), loader.pixels)
        wiring.connect(m, loader.images, controller.images)
        wiring.connect(m, controller.issue, feeder.issue)
        wiring.connect(m, feeder.edge, array.edge)
        wiring.connect(m, array.drain, post.drain)
        wiring.connect(m, post.output, writer.output)
        wiring.connect(m, writer.store, streamer.store)
        wiring.connect(m, streamer.results, wiring.flipped(self.results))
        m.d.comb += [controller.done.eq(writer.done),
                     controller.streamer_busy.eq(streamer.busy)]
        if self.has_trace:
            m.d.comb += self.trace.eq(writer.trace)
        return m
