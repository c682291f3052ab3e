"""The whole LeNet-5 accelerator: pixels in, logits and class out, every layer in hardware."""

from amaranth.hdl import Cat, Module, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .controller import Controller
from .feeder import OperandFeeder
from .loader import InputLoader, pixel_layout
from .postproc import PostProcessor, tile_tag_layout
from .streamer import ResultStreamer, result_layout
from .systolic import SystolicArray
from .writer import BufferWriter, trace_layout

__all__ = ["BUFFER_ATTRIBUTES", "DENSE_BUFFER_ATTRIBUTES", "LeNetAccelerator", "buffer_names",
           "design_trace_layout"]

#: Attributes of every feature buffer memory. ``no_rw_check`` lets Yosys leave out the logic
#: that would give a read of the word being written in the same cycle its old value (with it, a
#: block RAM's word reaches its register through a multiplexer and cannot use the block's own
#: output register). No read meets a write of its address in the same cycle: a job reads a
#: buffer only after the jobs writing it have finished, and the loader fills a copy of the
#: input buffer that no job reads. The exported testbench checks that on every cycle of every
#: co-simulation (its ``collision`` mismatches).
BUFFER_ATTRIBUTES = {"no_rw_check": 1}
#: Attributes of the dense layers' output buffers, a hundred-odd words per bank: in LUT RAM, so
#: that the block RAMs go to the weights and the feature maps (an ECP5-25F has 56).
DENSE_BUFFER_ATTRIBUTES = {**BUFFER_ATTRIBUTES, "ram_style": "distributed"}


def buffer_names(plan):
    """The feature buffers, in the order of the trace's ``collision`` bits: ``input``, ``mid``,
    ``fcin`` and ``dense<job index>`` for each dense job's outputs but the last."""
    return ["input", "mid", "fcin", *(f"dense{job.index}" for job in plan.dense_jobs[:-1])]


def design_trace_layout(plan):
    """The accelerator's ``trace`` port: :func:`~hwlenet.rtl.writer.trace_layout` (every value
    written, a cycle after the writer's ports) and ``collision``, one bit per feature buffer of
    :func:`buffer_names`, set in a cycle in which a write to one of its banks meets a read of
    the same address."""
    return data.StructLayout({**{name: field.shape for name, field in trace_layout(plan)},
                              "collision": len(buffer_names(plan))})


class LeNetAccelerator(wiring.Component):
    """LeNet-5 on an output-stationary systolic array, as lowered by a :class:`HardwarePlan`.

    Images arrive on ``pixels`` (:attr:`HardwarePlan.image_pixels` beats each) through the
    :class:`InputLoader` into a double-buffered input buffer; the :class:`Controller` runs each
    image's conv jobs and, per batch of up to ``cols`` images, the dense jobs; the
    :class:`OperandFeeder` reads weights and operands for the :class:`SystolicArray`, whose
    drained rows the :class:`PostProcessor` finishes and the :class:`BufferWriter` stores;
    the :class:`ResultStreamer` sends one ``results`` beat per image, in input order.
    ``trace`` shows every value written, and any read of a feature buffer that meets a write of
    the same address (:func:`design_trace_layout`). See ``docs/architecture.md`` for the
    dataflow and cycle counts.

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
            ports["trace"] = Out(design_trace_layout(plan))
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

        collisions = {}

        def buffer(name, count, depth, readers, writers, attrs=BUFFER_ATTRIBUTES):
            """``count`` banks of ``depth`` operands, read by ``readers``, written by
            ``writers`` (one port of each per bank)."""
            hits = []
            for index, (reader, writer_port) in enumerate(zip(readers, writers)):
                memory = Memory(shape=operand, depth=depth, init=[], attrs=attrs)
                m.submodules[f"{name}_{index}"] = memory
                read, write = memory.read_port(), memory.write_port()
                wiring.connect(m, reader, read)
                wiring.connect(m, writer_port, write)
                hits.append(write.en & read.en & (write.addr == read.addr))
            assert len(readers) == len(writers) == count
            collisions[name] = Cat(*hits).any()

        buffer("input", plan.input_buffer.banks, plan.input_buffer.depth, feeder.input_read,
               loader.writes)
        buffer("mid", plan.mid_buffer.banks, plan.mid_buffer.depth, feeder.mid_read,
               writer.mid_writes)
        buffer("fcin", cols * plan.fc_subbanks, plan.fc_input_depth, feeder.fc_read,
               writer.fc_writes)
        for position, job in enumerate(plan.dense_jobs[:-1]):
            buffer(f"dense{job.index}", cols, job.layer.out_shape[0],
                   feeder.dense_read[position], writer.dense_writes[position],
                   DENSE_BUFFER_ATTRIBUTES)
        assert list(collisions) == buffer_names(plan)

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
            m.d.comb += [self.trace[name].eq(writer.trace[name])
                         for name, _ in trace_layout(plan)]
            m.d.comb += self.trace.collision.eq(Cat(*collisions.values()))
        return m
