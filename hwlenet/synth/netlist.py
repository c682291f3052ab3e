"""What the netlist passes share: reading Yosys's JSON netlist of an ECP5 design.

A module's ``cells`` map a name to ``type``, ``parameters``, ``port_directions`` and
``connections`` (a list of bits per port: an integer names a net, a string is a constant).
"""

from collections import defaultdict

__all__ = ["FLIP_FLOP_CELL", "index_nets", "plain_flip_flop"]

#: The flip-flop cell of Yosys's ECP5 netlist.
FLIP_FLOP_CELL = "TRELLIS_FF"


def plain_flip_flop(cell):
    """The clock net of a flip-flop that loads its input on every rising edge and starts at 0.

    Parameters
    ----------
    cell : dict or None
        A netlist cell.

    Returns
    -------
    int or None
        The net on the flip-flop's ``CLK``; ``None`` unless ``cell`` is a ``TRELLIS_FF`` on the
        rising edge with no clock enable, no set or reset and initial value 0.
    """
    if cell is None or cell["type"] != FLIP_FLOP_CELL:
        return None
    parameters, connections = cell["parameters"], cell["connections"]
    if str(parameters.get("CLKMUX", "CLK")).strip() != "CLK":
        return None
    if str(parameters.get("REGSET", "RESET")).strip() != "RESET":
        return None
    enable = str(parameters.get("CEMUX", "1")).strip()
    if enable != "1" and connections.get("CE", ["1"]) != ["1"]:
        return None
    if connections.get("LSR", ["0"]) != ["0"]:
        return None
    clock = connections.get("CLK", [None])[0]
    return clock if isinstance(clock, int) else None


def index_nets(cells):
    """Each net's driving cell and its loads.

    Returns
    -------
    drivers : dict of int to str
        The cell whose output drives each net.
    loads : dict of int to list of (str, str)
        The ``(cell, port)`` inputs each net reaches.
    """
    drivers, loads = {}, defaultdict(list)
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            output = cell["port_directions"].get(port) == "output"
            for bit in bits:
                if isinstance(bit, int):
                    if output:
                        drivers[bit] = name
                    else:
                        loads[bit].append((name, port))
    return drivers, loads
