"""Moving flip-flops into the ECP5 multipliers' registers (hwlenet.synth.dsp)."""

import copy

import pytest
from helpers import netlist_flip_flop

from hwlenet.synth.dsp import absorb_dsp_registers

CLOCK = 2


def flip_flop(d, q, *, clock=CLOCK, **options):
    return netlist_flip_flop(d, q, clock=clock, **options)


def module(width=3, **options):
    """A PE's multiply in Yosys's ECP5 form: operand flip-flops a_q/b_q (inputs 100.../200...)
    into A/B, the product's used bits P0..P(2 width - 1) into product flip-flops, the operands'
    sign bits extended over A/B's upper bits, and a flip-flop that reads a_q too (the systolic
    neighbour)."""
    cells, dsp = {}, {"type": "MULT18X18D", "parameters": {}, "port_directions": {},
                      "connections": {}}
    for operand, base in (("A", 100), ("B", 200)):
        for bit in range(width):
            cells[f"{operand}_ff{bit}"] = flip_flop(base + bit, base + 50 + bit,
                                                    **options.get(f"{operand}{bit}", {}))
        for bit in range(18):
            dsp["port_directions"][f"{operand}{bit}"] = "input"
            dsp["connections"][f"{operand}{bit}"] = [base + 50 + min(bit, width - 1)]
    for bit in range(36):
        dsp["port_directions"][f"P{bit}"] = "output"
        dsp["connections"][f"P{bit}"] = [300 + bit]
    for bit in range(2 * width):
        cells[f"product_ff{bit}"] = flip_flop(300 + bit, 400 + bit,
                                              **options.get(f"P{bit}", {}))
    cells["neighbour"] = flip_flop(150, 500)
    cells["mult"] = dsp
    return {"cells": cells}


def test_operands_and_product_move_into_the_block():
    netlist = module()
    summary = absorb_dsp_registers(netlist)
    assert summary == {"multipliers": 1, "registered_inputs": 1, "registered_outputs": 1,
                       "removed_flip_flops": 6}
    dsp = netlist["cells"]["mult"]
    assert dsp["parameters"]["REG_INPUTA_CLK"] == dsp["parameters"]["REG_INPUTB_CLK"] == "CLK0"
    assert dsp["parameters"]["REG_OUTPUT_CLK"] == "CLK0"
    assert dsp["connections"]["CLK0"] == [CLOCK]
    assert dsp["connections"]["CE0"] == ["1"] and dsp["connections"]["RST0"] == ["0"]
    # the operands are read before their flip-flops, sign extension included
    assert [dsp["connections"][f"A{bit}"][0] for bit in range(4)] == [100, 101, 102, 102]
    assert dsp["connections"]["B17"] == [202]
    # the operand flip-flops stay (the neighbour reads them); the product's are gone and the
    # block drives their outputs
    assert "A_ff0" in netlist["cells"] and "neighbour" in netlist["cells"]
    assert not any(name.startswith("product_ff") for name in netlist["cells"])
    assert [dsp["connections"][f"P{bit}"][0] for bit in range(7)] == [
        400, 401, 402, 403, 404, 405, 306]
    assert absorb_dsp_registers(netlist)["registered_inputs"] == 0  # already done


@pytest.mark.parametrize("options,inputs,outputs", [
    ({"A1": {"enable": 7}}, 0, 1),
    ({"B0": {"reset": 9}}, 0, 1),
    ({"A2": {"regset": "SET"}}, 0, 1),
    ({"B2": {"clock": 3}}, 0, 1),
    ({"P3": {"enable": 7}}, 1, 0),
    ({"P0": {"clock": 3}}, 1, 0),
])
def test_only_plain_flip_flops_on_one_clock_move(options, inputs, outputs):
    netlist = module(**options)
    before = copy.deepcopy(netlist)
    summary = absorb_dsp_registers(netlist)
    assert (summary["registered_inputs"], summary["registered_outputs"]) == (inputs, outputs)
    dsp, original = netlist["cells"]["mult"], before["cells"]["mult"]
    if not inputs:
        assert all(dsp["connections"][f"{operand}{bit}"] == original["connections"][
            f"{operand}{bit}"] for operand in "AB" for bit in range(18))
    if not outputs:
        assert "REG_OUTPUT_CLK" not in dsp["parameters"]
        assert len(netlist["cells"]) == len(before["cells"])


def test_a_product_read_elsewhere_or_on_a_port_stays_in_the_fabric():
    shared = module()
    shared["cells"]["reader"] = flip_flop(302, 600)
    assert absorb_dsp_registers(shared)["registered_outputs"] == 0
    on_port = module()
    assert absorb_dsp_registers(on_port, ports=[301])["registered_outputs"] == 0


def test_an_operand_from_logic_or_a_constant_one_keeps_the_inputs_unregistered():
    from_logic = module()
    from_logic["cells"]["A_ff1"]["type"] = "LUT4"
    assert absorb_dsp_registers(from_logic)["registered_inputs"] == 0
    constant = module()
    constant["cells"]["mult"]["connections"]["B5"] = ["1"]
    assert absorb_dsp_registers(constant)["registered_inputs"] == 0
    zero = module()
    zero["cells"]["mult"]["connections"]["B5"] = ["0"]
    assert absorb_dsp_registers(zero)["registered_inputs"] == 1
