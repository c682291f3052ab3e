"""Moving flip-flops into the ECP5 multipliers' own registers, in a synthesized netlist.

Yosys maps every multiply onto a ``MULT18X18D`` with the block's input and output registers
bypassed, so a PE's path from its operand flip-flops through the multiplier to its product
flip-flop runs over general routing twice, into the DSP and out of it. Each DSP block has
registers of its own for both operands and for the product, and nextpnr times them.
:func:`absorb_dsp_registers` rewrites Yosys's JSON netlist (after ``synth_ecp5``, before
nextpnr) so that they are used:

* **Inputs.** When every connected ``A`` and ``B`` bit of a multiplier is either the constant
  0 or the output of a *plain* flip-flop (``TRELLIS_FF`` on the rising edge of one clock, with
  no clock enable, no reset and initial value 0), the multiplier takes those flip-flops' inputs
  instead and registers them itself (``REG_INPUTA_CLK = REG_INPUTB_CLK = "CLK0"``). The
  flip-flops stay: other logic (the next PE of the systolic array) still reads them. nextpnr
  requires both operands registered or neither.
* **Output.** When every used ``P`` bit has exactly one load, the data input of a plain
  flip-flop on the same clock, the multiplier registers its product (``REG_OUTPUT_CLK =
  "CLK0"``) and drives the flip-flops' outputs directly; the flip-flops are removed.

A plain flip-flop and a DSP register on the same clock hold the same value on every cycle
(both load their input on every rising edge, and configuration clears both), so the
rewritten netlist computes what the exported design computes, cycle for cycle: no register
moves across logic, nothing is retimed. The exported ``hwlenet_top.v`` is not changed.
"""

from .netlist import FLIP_FLOP_CELL, index_nets, plain_flip_flop

__all__ = ["DSP_CELL", "FLIP_FLOP_CELL", "absorb_dsp_registers"]

#: The multiplier primitive of Yosys's ECP5 netlist.
DSP_CELL = "MULT18X18D"
#: Operand width of a MULT18X18D port, and its product width.
OPERAND_BITS = 18
PRODUCT_BITS = 36
_INPUTS = [f"{operand}{bit}" for operand in "AB" for bit in range(OPERAND_BITS)]
_OUTPUTS = [f"P{bit}" for bit in range(PRODUCT_BITS)]
_CONTROL = {"CLK0": None, "CE0": "1", "RST0": "0"}


def _connect_clock(dsp, clock):
    for port, value in _CONTROL.items():
        dsp["port_directions"][port] = "input"
        dsp["connections"][port] = [clock if value is None else value]


def absorb_dsp_registers(module, *, ports=()):
    """Use the multipliers' input and output registers of one module of Yosys's JSON netlist.

    Parameters
    ----------
    module : dict
        One entry of the netlist's ``modules`` (:mod:`hwlenet.synth.netlist`), changed in
        place.
    ports : iterable of int
        Bits that are module ports: a product bit that drives one is not registered.

    Returns
    -------
    dict
        ``multipliers`` (``MULT18X18D`` cells), ``registered_inputs`` and
        ``registered_outputs`` (multipliers whose operands or product are now registered in
        the block) and ``removed_flip_flops``.
    """
    cells = module["cells"]
    port_bits = set(ports)
    dsps = sorted(name for name, cell in cells.items() if cell["type"] == DSP_CELL)
    summary = {"multipliers": len(dsps), "registered_inputs": 0, "registered_outputs": 0,
               "removed_flip_flops": 0}

    drivers, _ = index_nets(cells)
    for name in dsps:
        dsp = cells[name]
        if dsp["parameters"].get("REG_INPUTA_CLK", "NONE") != "NONE":
            continue
        rewired, clocks = {}, set()
        for port in _INPUTS:
            bits = dsp["connections"].get(port)
            if not bits or bits[0] == "0":
                continue
            driver = cells.get(drivers.get(bits[0])) if isinstance(bits[0], int) else None
            clock = plain_flip_flop(driver)
            if clock is None:
                break
            rewired[port], clocks = driver["connections"]["DI"], clocks | {clock}
        else:
            if len(clocks) == 1:
                dsp["connections"].update(rewired)
                dsp["parameters"].update(REG_INPUTA_CLK="CLK0", REG_INPUTB_CLK="CLK0",
                                         REG_INPUTA_CE="CE0", REG_INPUTB_CE="CE0",
                                         REG_INPUTA_RST="RST0", REG_INPUTB_RST="RST0")
                _connect_clock(dsp, clocks.pop())
                summary["registered_inputs"] += 1

    # Indexed again: a rewired operand may now read a product bit, which then has two loads.
    drivers, loads = index_nets(cells)
    for name in dsps:
        dsp = cells[name]
        if dsp["parameters"].get("REG_OUTPUT_CLK", "NONE") != "NONE":
            continue
        registers, clocks = {}, set()
        for port in _OUTPUTS:
            bits = dsp["connections"].get(port)
            if not bits or not isinstance(bits[0], int) or not loads.get(bits[0]):
                continue
            users = loads[bits[0]]
            register = cells[users[0][0]] if len(users) == 1 else None
            clock = plain_flip_flop(register) if users[0][1] == "DI" else None
            if clock is None or bits[0] in port_bits:
                break
            registers[port], clocks = users[0][0], clocks | {clock}
        else:
            control = dsp["connections"].get("CLK0", [None])[0]
            if registers and len(clocks | ({control} if control is not None else set())) == 1:
                for port, register in registers.items():
                    dsp["connections"][port] = cells.pop(register)["connections"]["Q"]
                dsp["parameters"].update(REG_OUTPUT_CLK="CLK0", REG_OUTPUT_CE="CE0",
                                         REG_OUTPUT_RST="RST0")
                _connect_clock(dsp, clocks.pop())
                summary["registered_outputs"] += 1
                summary["removed_flip_flops"] += len(registers)
    return summary
