"""One multiply-accumulate processing element of the systolic array."""

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Flags", "ProcessingElement"]


class Flags(data.Struct):
    """Control travelling with the weights: ``valid`` (multiply-accumulate this cycle),
    ``clear`` (start a new sum), ``capture`` (move the finished sum to ``result``)."""

    valid: 1
    clear: 1
    capture: 1


class ProcessingElement(wiring.Component):
    """Output-stationary multiply-accumulate cell.

    Each cycle: if ``flags.capture``, ``result <- acc``; if ``flags.valid``,
    ``acc <- (0 if flags.clear else acc) + w * x``, else if ``flags.clear``, ``acc <- 0``.
    Operands and flags pass on to the neighbours one cycle later (``LATENCY = 1``).

    Parameters
    ----------
    weight_width, operand_width, accumulator_width : int
        Signed widths of ``w``, ``x`` and the accumulator.
    """

    LATENCY = 1

    def __init__(self, *, weight_width, operand_width, accumulator_width):
        for name, value in (("weight_width", weight_width), ("operand_width", operand_width),
                            ("accumulator_width", accumulator_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        super().__init__({
            "w_in": In(signed(weight_width)),
            "x_in": In(signed(operand_width)),
            "flags_in": In(Flags),
            "w_out": Out(signed(weight_width)),
            "x_out": Out(signed(operand_width)),
            "flags_out": Out(Flags),
            "result": Out(signed(accumulator_width)),
        })
        self.accumulator_width = accumulator_width

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(self.accumulator_width))
        m.d.sync += [self.w_out.eq(self.w_in), self.x_out.eq(self.x_in),
                     self.flags_out.eq(self.flags_in)]
        with m.If(self.flags_in.capture):
            m.d.sync += self.result.eq(acc)
        with m.If(self.flags_in.valid):
            with m.If(self.flags_in.clear):
                m.d.sync += acc.eq(self.w_in * self.x_in)
            with m.Else():
                m.d.sync += acc.eq(acc + self.w_in * self.x_in)
        with m.Elif(self.flags_in.clear):
            m.d.sync += acc.eq(0)
        return m
