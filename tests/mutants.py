"""Faulty variants of the accelerator, to show that the co-simulation benches catch them.

Each mutant is a subclass of one of the accelerator's blocks (:class:`PostProcessor`,
:class:`OperandFeeder`) that overrides a few of its outputs under a condition (a later
``comb`` assignment in the same module wins); :func:`mutant_verilog` elaborates the whole
accelerator with it in place of the block.
"""

import contextlib
from unittest import mock

from amaranth.back import verilog
from amaranth.hdl import Signal

from hwlenet.rtl import accelerator
from hwlenet.rtl.feeder import OperandFeeder
from hwlenet.rtl.postproc import PostProcessor


def _job(plan, layer_name):
    return next(job for job in plan.jobs if job.out_layer.name == layer_name)


class DroppedWrite(PostProcessor):
    """Lane ``lane`` of channel ``channel`` of the job storing ``layer`` is never written."""

    layer, channel, lane = "fc1", 2, 0

    def elaborate(self, platform):
        m = super().elaborate(platform)
        job = _job(self.plan, self.layer)
        with m.If((self.output.tag.job == job.index) & (self.output.channel == self.channel)):
            m.d.comb += self.output.valid[self.lane].eq(0)
        return m


class DuplicateWrite(PostProcessor):
    """The write of channel ``channel`` of the job storing ``layer`` happens twice: the cycle
    after it repeats its outputs (what that cycle should have written is dropped)."""

    layer, channel = "fc1", 2

    def elaborate(self, platform):
        m = super().elaborate(platform)
        job = _job(self.plan, self.layer)
        hit = Signal()
        valid, value = Signal.like(self.output.valid), Signal.like(self.output.value)
        tag, channel = Signal.like(self.output.tag), Signal.like(self.output.channel)
        m.d.sync += [hit.eq((self.output.tag.job == job.index)
                            & (self.output.channel == self.channel)
                            & self.output.valid.as_value().any()),
                     valid.eq(self.output.valid), value.eq(self.output.value),
                     tag.eq(self.output.tag), channel.eq(self.output.channel)]
        with m.If(hit):
            m.d.comb += [self.output.valid.eq(valid), self.output.value.eq(value),
                         self.output.tag.eq(tag), self.output.channel.eq(channel)]
        return m


class LostDone(PostProcessor):
    """The job storing ``layer`` never reports itself done: the controller waits forever."""

    layer = "p2"

    def elaborate(self, platform):
        m = super().elaborate(platform)
        with m.If(self.output.tag.job == _job(self.plan, self.layer).index):
            m.d.comb += self.output.done.eq(0)
        return m


class ReadAlways(OperandFeeder):
    """The middle feature buffer's read ports are enabled on every cycle, so they read the
    words the writer is writing while the first convolution's outputs arrive."""

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += [port.en.eq(1) for port in self.mid_read]
        return m


@contextlib.contextmanager
def mutated(mutant):
    """Within the block, :class:`LeNetAccelerator` builds ``mutant`` in place of the block it
    derives from."""
    block = next(base for base in mutant.__mro__[1:] if getattr(accelerator, base.__name__,
                                                                None) is base)
    with mock.patch.object(accelerator, block.__name__, mutant):
        yield


def mutant_verilog(plan, mutant):
    """Verilog of the accelerator for ``plan`` with ``mutant`` in place of its block."""
    with mutated(mutant):
        design = accelerator.LeNetAccelerator(plan=plan)
        return verilog.convert(design, name="hwlenet_top", emit_src=False)
