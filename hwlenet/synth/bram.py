"""Moving the flip-flops after ECP5 block RAMs into the blocks' own output registers, in a
synthesized netlist.

Yosys maps every memory onto ``DP16KD`` blocks with their output registers bypassed
(``REGMODE = "NOREG"``), so a word leaves the block RAM late in the cycle (nextpnr times the
unregistered output at several nanoseconds) and still has to cross general routing to the
flip-flop that the design puts after the read. Each half of a ``DP16KD`` has an output register
of its own, which nextpnr times as a short clock-to-output delay.
:func:`absorb_bram_output_registers` rewrites Yosys's JSON netlist (after ``synth_ecp5``, before
nextpnr) so that it is used where the design allows it:

* every used output bit of the block (``DOA0``..``DOA17``, ``DOB0``..``DOB17``) has exactly
  one load, the data input of a *plain* flip-flop (``TRELLIS_FF`` on the rising edge, with no
  clock enable, no reset and initial value 0), all on one clock; no output bit is a module
  port;
* every clock input of the block that is connected at all is that clock, on its rising edge;
* neither half has an output reset (``RSTA`` and ``RSTB`` are the constant 0).

Then both halves' ``REGMODE`` become ``"OUTREG"`` with their output clock enables (``OCEA``,
``OCEB``) tied to 1, a clock input tied to a constant is connected to the clock (in the
36-bit mode both halves carry the read word, and the clock input of the half that has no
write port could otherwise clock an output register), and the block drives the flip-flops'
outputs directly; the flip-flops are removed. A block RAM's read latch changes only at a rising
edge, and the plain flip-flop and the output register both copy it at every rising edge, so the
rewritten netlist computes what the exported design computes, cycle for cycle: no register
moves across logic, nothing is retimed. A clock input that gains the clock cannot write: a
block is left alone unless such a half's clock enable is tied to 0. The exported
``hwlenet_top.v`` is not changed.
"""

from .netlist import index_nets, plain_flip_flop

__all__ = ["BLOCK_RAM_CELL", "absorb_bram_output_registers"]

#: The block RAM primitive of Yosys's ECP5 netlist.
BLOCK_RAM_CELL = "DP16KD"
#: Output bits of each half of a DP16KD.
HALF_BITS = 18
_HALVES = "AB"
_OUTPUTS = [f"DO{half}{bit}" for half in _HALVES for bit in range(HALF_BITS)]


def _absorbable_registers(ram, cells, loads, port_bits):
    """The flip-flop after each used output bit and their one clock, or ``None``."""
    registers, clocks = {}, set()
    for port in _OUTPUTS:
        bits = ram["connections"].get(port)
        if not bits or not isinstance(bits[0], int) or not loads.get(bits[0]):
            continue
        users = loads[bits[0]]
        if len(users) != 1 or users[0][1] != "DI" or bits[0] in port_bits:
            return None
        clock = plain_flip_flop(cells[users[0][0]])
        if clock is None:
            return None
        registers[port], clocks = users[0][0], clocks | {clock}
    if not registers or len(clocks) != 1:
        return None
    return registers, clocks.pop()


def _clock_inputs_agree(ram, clock):
    """Whether every connected clock input of ``ram`` is ``clock`` on its rising edge, and every
    half whose clock input is a constant has its clock enable tied to 0 (it cannot write)."""
    for half in _HALVES:
        bits = ram["connections"].get(f"CLK{half}", ["0"])
        if isinstance(bits[0], int):
            edge = str(ram["parameters"].get(f"CLK{half}MUX", f"CLK{half}")).strip()
            if bits[0] != clock or edge != f"CLK{half}":
                return False
        elif ram["connections"].get(f"CE{half}", ["1"]) != ["0"]:
            return False
    return True


def absorb_bram_output_registers(module, *, ports=()):
    """Use the block RAMs' output registers of one module of Yosys's JSON netlist.

    Parameters
    ----------
    module : dict
        One entry of the netlist's ``modules`` (:mod:`hwlenet.synth.netlist`), changed in
        place.
    ports : iterable of int
        Bits that are module ports: a block RAM output bit that drives one is not registered.

    Returns
    -------
    dict
        ``block_rams`` (``DP16KD`` cells), ``registered_outputs`` (block RAMs whose output is
        now registered in the block) and ``removed_flip_flops``.
    """
    cells = module["cells"]
    port_bits = set(ports)
    rams = sorted(name for name, cell in cells.items() if cell["type"] == BLOCK_RAM_CELL)
    summary = {"block_rams": len(rams), "registered_outputs": 0, "removed_flip_flops": 0}
    _, loads = index_nets(cells)
    for name in rams:
        ram = cells[name]
        parameters, connections = ram["parameters"], ram["connections"]
        if any(str(parameters.get(f"REGMODE_{half}", "NOREG")).strip() != "NOREG"
               for half in _HALVES):
            continue
        if any(connections.get(f"RST{half}", ["0"]) != ["0"] for half in _HALVES):
            continue
        found = _absorbable_registers(ram, cells, loads, port_bits)
        if found is None or not _clock_inputs_agree(ram, found[1]):
            continue
        registers, clock = found
        for port, register in registers.items():
            connections[port] = cells.pop(register)["connections"]["Q"]
        for half in _HALVES:
            parameters[f"REGMODE_{half}"] = "OUTREG"
            parameters[f"CLK{half}MUX"] = f"CLK{half}"
            for control, value in ((f"CLK{half}", clock), (f"OCE{half}", "1")):
                ram["port_directions"][control] = "input"
                connections[control] = [value]
        summary["registered_outputs"] += 1
        summary["removed_flip_flops"] += len(registers)
    return summary
