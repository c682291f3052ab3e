"""Moving flip-flops into the ECP5 block RAMs' output registers (hwlenet.synth.bram)."""

import copy

import pytest
from helpers import netlist_flip_flop

from hwlenet.synth.bram import absorb_bram_output_registers

CLOCK = 2


def flip_flop(d, q, *, clock=CLOCK, **options):
    return netlist_flip_flop(d, q, clock=clock, **options)


def module(width=36, **options):
    """A ROM in Yosys's 36-bit ECP5 form: the read half clocked (CLKB), the write half's clock
    and clock enable tied to 0, output bits 300 + b (DOA0..17 then DOB0..17) of which ``width``
    are used, each into a flip-flop whose output is 400 + b."""
    connections = {"CLKA": ["0"], "CEA": ["0"], "OCEA": ["0"], "RSTA": ["0"],
                   "CLKB": [CLOCK], "CEB": ["1"], "OCEB": ["1"], "RSTB": ["0"]}
    directions = {port: "input" for port in connections}
    for bit in range(36):
        port = f"DO{'AB'[bit // 18]}{bit % 18}"
        connections[port], directions[port] = [300 + bit], "output"
    connections.update(options.pop("connections", {}))
    ram = {"type": "DP16KD", "port_directions": directions, "connections": connections,
           "parameters": {"DATA_WIDTH_A": 36, "DATA_WIDTH_B": 36, "REGMODE_A": "NOREG",
                          "REGMODE_B": "NOREG", "CLKAMUX": "CLKA", "CLKBMUX": "CLKB",
                          **options.pop("parameters", {})}}
    cells = {"rom": ram}
    for bit in range(width):
        cells[f"word_ff{bit}"] = flip_flop(300 + bit, 400 + bit, **options.get(f"D{bit}", {}))
    return {"cells": cells}


def test_the_output_flip_flops_move_into_the_block():
    netlist = module(width=20)
    summary = absorb_bram_output_registers(netlist)
    assert summary == {"block_rams": 1, "registered_outputs": 1, "removed_flip_flops": 20}
    ram = netlist["cells"]["rom"]
    assert list(netlist["cells"]) == ["rom"]
    assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "OUTREG"
    # both halves are clocked by the read clock and always enabled; nothing can be written
    assert ram["connections"]["CLKA"] == ram["connections"]["CLKB"] == [CLOCK]
    assert ram["connections"]["OCEA"] == ram["connections"]["OCEB"] == ["1"]
    assert ram["connections"]["CEA"] == ["0"]
    # the block drives what the flip-flops drove; unused bits stay as they were
    assert [ram["connections"][f"DOA{bit}"][0] for bit in range(18)] == list(range(400, 418))
    assert [ram["connections"][f"DOB{bit}"][0] for bit in range(3)] == [418, 419, 320]
    assert absorb_bram_output_registers(netlist)["registered_outputs"] == 0  # already done


@pytest.mark.parametrize("options", [
    {"D3": {"enable": 7}},
    {"D0": {"reset": 9}},
    {"D5": {"regset": "SET"}},
    {"D30": {"clock": 3}},
    {"connections": {"RSTB": [9]}},
    {"connections": {"CLKA": [3], "CEA": ["1"]}},
    {"connections": {"CEA": ["1"]}},
    {"parameters": {"CLKBMUX": "INV"}},
    {"parameters": {"REGMODE_B": "OUTREG"}},
])
def test_only_plain_flip_flops_on_the_blocks_clock_move(options):
    netlist = module(**options)
    before = copy.deepcopy(netlist)
    assert absorb_bram_output_registers(netlist)["registered_outputs"] == 0
    assert netlist == before


def test_a_word_read_elsewhere_or_on_a_port_stays_in_the_fabric():
    shared = module()
    shared["cells"]["reader"] = flip_flop(305, 600)
    assert absorb_bram_output_registers(shared)["registered_outputs"] == 0
    from_logic = module()
    from_logic["cells"]["word_ff7"]["type"] = "LUT4"
    assert absorb_bram_output_registers(from_logic)["registered_outputs"] == 0
    on_port = module()
    assert absorb_bram_output_registers(on_port, ports=[301])["registered_outputs"] == 0


def test_a_block_with_no_used_output_is_left_alone():
    netlist = module(width=0)
    assert absorb_bram_output_registers(netlist) == {
        "block_rams": 1, "registered_outputs": 0, "removed_flip_flops": 0}
    assert netlist["cells"]["rom"]["parameters"]["REGMODE_B"] == "NOREG"
