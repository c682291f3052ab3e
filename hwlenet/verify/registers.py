"""The registers of an exported design, read from its Verilog, for register fault injection.

Amaranth (through Yosys's ``write_verilog``) emits every register as a ``reg`` assigned by a
non-blocking assignment in its own ``always @(posedge clk)`` process, and every submodule as a
module named after its hierarchy (``\\hwlenet_top.array.pe_3_3``) instantiated under its own
name. This module lists those registers with the hierarchical path a testbench reaches them by
(``array.pe_3_3.acc``), in the order of the file, so that the same export always numbers its
registers the same way. Memory write ports (``mem[addr] <= data``) are not registers and are
left out; a memory's read-port register is kept. :func:`unread_registers` finds the registers
whose value no logic reads, where a fault cannot show.
"""

import dataclasses
import re

from ..errors import HwlenetError

__all__ = ["Register", "design_registers", "hierarchical_reference", "unread_registers"]

_IDENTIFIER = r"(?:\\\S+|[A-Za-z_][A-Za-z0-9_$]*)"
_MODULE = re.compile(rf"^module ({_IDENTIFIER})\s*\(.*?^endmodule", re.M | re.S)
_INSTANCE = re.compile(rf"^  ({_IDENTIFIER}) +({_IDENTIFIER}) +\(\s*$", re.M)
_DECLARATION = re.compile(rf"^  reg (?:\[(\d+):(\d+)\] )?({_IDENTIFIER})\s*(?:=[^;]*)?;", re.M)
_REGISTER = re.compile(rf"^  always @\(posedge clk\)(?: begin)?\s*\n\s+({_IDENTIFIER}) +<=", re.M)
_SIMPLE = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


@dataclasses.dataclass(frozen=True)
class Register:
    """One register of the design.

    Attributes
    ----------
    path : tuple of str
        Instance names from the top module's child down to the register's own name, as
        Verilog identifiers (escaped ones without their leading backslash).
    width : int
        Bits of the register.
    """

    path: tuple
    width: int

    @property
    def name(self):
        """The dotted path, as reports show it: ``array.pe_3_3.acc``."""
        return ".".join(self.path)

    @property
    def block(self):
        """The top-level block the register sits in (``top`` for the top module's own)."""
        return self.path[0] if len(self.path) > 1 else "top"


def hierarchical_reference(register, root="dut"):
    """The Verilog reference to ``register`` from the instance ``root`` of the design: escaped
    identifiers keep their backslash and the space that ends them."""
    parts = [root]
    for name in register.path:
        parts.append(name if _SIMPLE.fullmatch(name) else f"\\{name} ")
    return ".".join(parts)


def _unescape(name):
    return name[1:] if name.startswith("\\") else name


def _walk(verilog_text, top):
    """``(module name, module text, Register)`` for every register under ``top``, in the order
    of a depth-first walk of the instances, each module's registers in file order."""
    modules = {_unescape(match.group(1)): match.group(0)
               for match in _MODULE.finditer(verilog_text)}
    if top not in modules:
        raise HwlenetError(f"the Verilog defines no module {top!r}")
    pending = [(top, ())]
    while pending:
        module, prefix = pending.pop()
        body = modules[module]
        widths = {_unescape(name): (int(high) - int(low) + 1 if high else 1)
                  for high, low, name in _DECLARATION.findall(body)}
        for match in _REGISTER.finditer(body):
            name = _unescape(match.group(1))
            if name not in widths:
                raise HwlenetError(f"register {name!r} of module {module!r} has no declaration")
            yield module, body, Register(path=(*prefix, name), width=widths[name])
        children = []
        for kind, instance in _INSTANCE.findall(body):
            kind = _unescape(kind)
            if kind in ("module", "always", "assign"):
                continue
            if kind not in modules:
                raise HwlenetError(f"module {module!r} instantiates {kind!r}, which the Verilog "
                                   "does not define")
            children.append((kind, (*prefix, _unescape(instance))))
        pending.extend(reversed(children))


def design_registers(verilog_text, top="hwlenet_top"):
    """Every register of the design in ``verilog_text`` under module ``top``.

    Parameters
    ----------
    verilog_text : str
        The Verilog that :func:`amaranth.back.verilog.convert` wrote.
    top : str
        The top module's name.

    Returns
    -------
    list of Register
        In the order of a depth-first walk of the instances, each module's registers in file
        order.

    Raises
    ------
    HwlenetError
        When the top module is missing, an instantiated module is not defined, or a register's
        declaration cannot be found.
    """
    return [register for _, _, register in _walk(verilog_text, top)]


_KEYWORDS = frozenset("""
    always assign begin case casez default else end endcase endmodule if initial inout input
    module negedge or output posedge reg signed wire
""".split())
_ATTRIBUTE = re.compile(r"\(\*.*?\*\)", re.S)
_LITERAL = re.compile(r"\d*'[sS]?[bodhBODH][0-9a-fA-FxXzZ_?]+|\"[^\"]*\"")
_TOKEN = re.compile(r"\\\S+|[A-Za-z_][A-Za-z0-9_$]*")
_OUTPUT = re.compile(rf"^  output (?:\[\d+:\d+\] )?({_IDENTIFIER})\s*;", re.M)
_TARGET = re.compile(rf"({_IDENTIFIER})\s*(?:\[[^\]]*\]\s*)*<?=(?!=)")
_ITEM = re.compile(
    r"^  (?:assign (?P<assign>[^;]*);"
    r"|always @(?:\(posedge clk\)|\*)(?P<always> begin\n.*?\n  end\n|[^\n]*\n[^;]*;)"
    rf"|(?P<kind>{_IDENTIFIER}) +(?P<instance>{_IDENTIFIER}) +\((?P<ports>.*?)\n  \);)",
    re.M | re.S)


def _names(text):
    text = _LITERAL.sub(" ", text)
    return {_unescape(token) for token in _TOKEN.findall(text)} - _KEYWORDS


def _live_names(body):
    """The names a module's outputs can depend on: its output ports, everything an instance
    is connected to, and whatever the processes and assignments driving a live name read.
    Conservative: a process reading a name counts for every name it drives."""
    body = _ATTRIBUTE.sub(" ", body)
    drivers, live = {}, {_unescape(name) for name in _OUTPUT.findall(body)}
    for item in _ITEM.finditer(body):
        if item.group("kind") is not None:
            if _unescape(item.group("kind")) not in ("module", "always", "assign"):
                live |= _names(item.group("ports"))
            continue
        text = item.group("assign") if item.group("assign") is not None else item.group("always")
        sources = _names(text)
        if item.group("assign") is not None:
            targets = _names(text.split("=", 1)[0])
        else:
            targets = {_unescape(name) for name in _TARGET.findall(_LITERAL.sub(" ", text))}
        for target in targets:
            drivers.setdefault(target, set()).update(sources)
    pending = list(live)
    while pending:
        for source in drivers.get(pending.pop(), ()):
            if source not in live:
                live.add(source)
                pending.append(source)
    return live


def unread_registers(verilog_text, top="hwlenet_top"):
    """The registers of :func:`design_registers` whose value reaches no output of their module
    (the last column's weight register of a systolic array, say): a fault in one cannot change
    anything the design outputs. Every output port of every module counts as read, so the
    answer errs on the side of reading.

    Returns
    -------
    set of tuple of str
        The :attr:`Register.path` of each unread register.
    """
    live = {}
    unread = set()
    for module, body, register in _walk(verilog_text, top):
        if module not in live:
            live[module] = _live_names(body)
        if register.path[-1] not in live[module]:
            unread.add(register.path)
    return unread
