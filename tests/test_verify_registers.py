"""Reading a design's registers from its Verilog: paths, widths and references a testbench can
use."""

import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from hwlenet import HwlenetError
from hwlenet.verify.registers import (Register, design_registers, hierarchical_reference,
                                      unread_registers)


class _Inner(wiring.Component):
    x: In(4)
    y: Out(12)

    def elaborate(self, platform):
        m = Module()
        total = Signal(12)
        m.d.sync += total.eq(total + self.x)
        m.d.comb += self.y.eq(total)
        return m


class _Outer(wiring.Component):
    a: In(4)
    b: Out(12)
    d: Out(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.inner = inner = _Inner()
        m.submodules.rom = rom = Memory(shape=8, depth=4, init=[1, 2, 3, 4])
        port = rom.read_port()
        toggle = Signal()
        count = Signal(8)
        spare = Signal(4)
        m.d.sync += [toggle.eq(~toggle), count.eq(count + toggle), spare.eq(self.a)]
        m.d.comb += [inner.x.eq(self.a), self.b.eq(inner.y), port.addr.eq(count),
                     self.d.eq(port.data)]
        return m


@pytest.fixture(scope="module")
def outer_verilog():
    return verilog.convert(_Outer(), name="top", emit_src=False)


def test_registers_of_a_small_design(outer_verilog):
    registers = design_registers(outer_verilog, top="top")
    # the memory's read-port register, the toggle, the counter and the submodule's sum, in
    # file order; the memory itself and the combinational wires are not registers
    names = [register.name for register in registers]
    assert sorted(names) == ["_0_", "count", "inner.total", "spare", "toggle"]
    widths = {"_0_": 8, "count": 8, "inner.total": 12, "spare": 4, "toggle": 1}
    assert [register.width for register in registers] == [widths[name] for name in names]
    assert names[-1] == "inner.total" and registers[-1] == Register(("inner", "total"), 12)
    assert {register.block for register in registers[:-1]} == {"top"}


def test_unread_registers(outer_verilog):
    # the spare register feeds nothing; the toggle feeds the counter, which addresses the
    # memory, whose read register drives an output
    assert unread_registers(outer_verilog, top="top") == {("spare",)}


def test_references_escape_what_verilog_needs_escaped():
    assert hierarchical_reference(Register(("array", "pe_3_3", "acc"), 22)) == \
        "dut.array.pe_3_3.acc"
    assert hierarchical_reference(Register(("array", "w_in$32"), 8)) == "dut.array.w_in$32"
    assert hierarchical_reference(Register(("post", "flags.valid"), 1), root="tb.dut") == \
        "tb.dut.post.\\flags.valid "
    assert hierarchical_reference(Register(("$2",), 3)) == "dut.\\$2 "


def test_unknown_top_or_module_is_an_error(outer_verilog):
    with pytest.raises(HwlenetError, match="no module 'hwlenet_top'"):
        design_registers(outer_verilog)
    broken = outer_verilog.replace("module \\top.inner ", "module \\top.other ")
    with pytest.raises(HwlenetError, match="instantiates 'top.inner'"):
        design_registers(broken, top="top")
