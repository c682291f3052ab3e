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
    """Output-stationary multiply-accumulate cell, with its product registered twice.

    The operands and flags entering in cycle ``t`` give ``p = w * x`` in cycle ``t + 2``, where
    the flags (registered twice too) act: if ``capture``, ``result <- acc``; if ``valid``,
    ``acc <- (0 if clear else acc) + p``, else if ``clear``, ``acc <- 0``. So a ``capture``
    entering in cycle ``t`` shows the finished sum on ``result`` in cycle
    ``t + RESULT_LATENCY`` (``RESULT_LATENCY = 3``). Operands and flags pass on to the
    neighbours one cycle later (``LATENCY = 1``).

    The first product register can live in the DSP block (:mod:`hwlenet.synth.dsp`); the
    second, in the fabric, lets the accumulator sit away from the DSP block, which on an ECP5
    stands in one of a few rows across the die, without a cross-die route inside the
    multiply-accumulate's cycle.

    Only the flags are reset: the operands, the product, the sum and ``result`` are data
    registers without reset (every sum starts with ``clear``, and a stale ``result`` is only
    read after a ``capture`` has replaced it), which spares the fabric a reset on each of them.

    Parameters
    ----------
    weight_width, operand_width, accumulator_width : int
        Signed widths of ``w``, ``x`` and the accumulator.
    """

    LATENCY = 1
    RESULT_LATENCY = 3

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
        self.product_width = weight_width + operand_width

    def elaborate(self, platform):
        m = Module()
        w = Signal.like(self.w_out, name="w", reset_less=True)
        x = Signal.like(self.x_out, name="x", reset_less=True)
        acc = Signal(signed(self.accumulator_width), reset_less=True)
        result = Signal.like(self.result, name="sum", reset_less=True)
        product = Signal(signed(self.product_width), reset_less=True)
        product2 = Signal(signed(self.product_width), reset_less=True)
        flags = Signal(Flags)
        m.d.sync += [w.eq(self.w_in), x.eq(self.x_in), self.flags_out.eq(self.flags_in),
                     product.eq(self.w_in * self.x_in), product2.eq(product),
                     flags.eq(self.flags_out)]
        m.d.comb += [self.w_out.eq(w), self.x_out.eq(x), self.result.eq(result)]
        with m.If(flags.capture):
            m.d.sync += result.eq(acc)
        with m.If(flags.valid):
            with m.If(flags.clear):
                m.d.sync += acc.eq(product2)
            with m.Else():
                m.d.sync += acc.eq(acc + product2)
        with m.Elif(flags.clear):
            m.d.sync += acc.eq(0)
        return m
