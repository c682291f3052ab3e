"""The output-stationary systolic array of multiply-accumulate processing elements."""

from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .pe import Flags, ProcessingElement

__all__ = ["SystolicArray", "drain_signature", "edge_signature"]


def edge_signature(*, rows, cols, weight_width, operand_width, tag_shape):
    """What enters the array each cycle, seen from the array's driver: a weight per row
    (``w_edge``), an operand per column (``x_edge``), the :class:`Flags` and the ``tag`` of the
    tile a ``capture`` ends."""
    return wiring.Signature({
        "w_edge": Out(data.ArrayLayout(signed(weight_width), rows)),
        "x_edge": Out(data.ArrayLayout(signed(operand_width), cols)),
        "flags": Out(Flags),
        "tag": Out(tag_shape),
    })


def drain_signature(*, rows, cols, accumulator_width, tag_shape):
    """A drained row, seen from the array: ``valid`` for one cycle per row, the array ``row``,
    its ``cols`` accumulators and the ``tag`` of its tile."""
    return wiring.Signature({
        "valid": Out(1),
        "row": Out(unsigned(ceil_log2(rows + 1))),
        "acc": Out(data.ArrayLayout(signed(accumulator_width), cols)),
        "tag": Out(tag_shape),
    })


class SystolicArray(wiring.Component):
    """``rows x cols`` processing elements; PE ``(r, c)`` computes
    ``sum_k w_edge[r](k) * x_edge[c](k)`` over a tile.

    Weights and flags enter at the left (``edge``), one per row, and move right; operands
    enter at the top, one per column, and move down. The array skews them itself: row ``r`` is
    delayed ``r`` cycles and column ``c`` by ``c``, so PE ``(r, c)`` sees the edge values of
    cycle ``e`` at ``e + r + c``. A ``capture`` flag ends a tile: row ``r`` is drained at
    ``e + r + cols + 4`` (one row per cycle, on ``drain``; see :meth:`drain_latency`), with
    the ``tag`` given alongside the capture.
    Requires a tile period of at least ``max(rows, cols + 1)`` cycles. The weight and operand
    skew registers, like the PEs' data registers, have no reset; the flags and tags do.

    Parameters
    ----------
    rows, cols : int
    weight_width, operand_width, accumulator_width : int
    tag_shape : shape-castable
        The tag that travels with each captured tile (a layout, or ``unsigned(n)``).
    """

    #: Registered stages from a row's finished results to ``drain``: the row's kept results,
    #: then the OR of every row's.
    DRAIN_STAGES = 2

    @staticmethod
    def drain_latency(rows, cols):
        """Cycles from a ``capture`` flag at the edge to the last row on ``drain``: the flag
        reaches row ``rows - 1`` after ``rows - 1`` cycles and crosses its ``cols`` elements
        (:attr:`ProcessingElement.LATENCY` each); the last element's sum follows
        ``RESULT_LATENCY - LATENCY`` cycles later, then the :attr:`DRAIN_STAGES` registers of
        the drain."""
        return (rows - 1 + cols * ProcessingElement.LATENCY
                + ProcessingElement.RESULT_LATENCY - ProcessingElement.LATENCY
                + SystolicArray.DRAIN_STAGES)

    def __init__(self, *, rows, cols, weight_width, operand_width, accumulator_width,
                 tag_shape):
        for name, value in (("rows", rows), ("cols", cols), ("weight_width", weight_width),
                            ("operand_width", operand_width),
                            ("accumulator_width", accumulator_width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
        self.rows, self.cols = rows, cols
        self.widths = dict(weight_width=weight_width, operand_width=operand_width,
                           accumulator_width=accumulator_width)
        super().__init__({
            "edge": In(edge_signature(rows=rows, cols=cols, weight_width=weight_width,
                                      operand_width=operand_width, tag_shape=tag_shape)),
            "drain": Out(drain_signature(rows=rows, cols=cols,
                                         accumulator_width=accumulator_width,
                                         tag_shape=tag_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        rows, cols = self.rows, self.cols
        pes = [[ProcessingElement(**self.widths) for _ in range(cols)] for _ in range(rows)]
        for r in range(rows):
            for c in range(cols):
                m.submodules[f"pe_{r}_{c}"] = pes[r][c]

        def delayed(value, cycles, name, reset_less=False):
            for stage in range(cycles):
                register = Signal.like(value, name=f"{name}_d{stage}", reset_less=reset_less)
                m.d.sync += register.eq(value)
                value = register
            return value

        for r in range(rows):
            m.d.comb += [pes[r][0].w_in.eq(delayed(self.edge.w_edge[r], r, f"w{r}", True)),
                         pes[r][0].flags_in.eq(delayed(self.edge.flags, r, f"flags{r}"))]
            for c in range(1, cols):
                m.d.comb += [pes[r][c].w_in.eq(pes[r][c - 1].w_out),
                             pes[r][c].flags_in.eq(pes[r][c - 1].flags_out)]
        for c in range(cols):
            m.d.comb += pes[0][c].x_in.eq(delayed(self.edge.x_edge[c], c, f"x{c}", True))
            for r in range(1, rows):
                m.d.comb += pes[r][c].x_in.eq(pes[r - 1][c].x_out)

        # Draining takes two registered stages. Each row first keeps its results where its
        # capture has finished and zero elsewhere (a register beside the row); then the rows'
        # kept values are ORed into ``drain``. At most one row finishes per cycle (rows drain
        # on consecutive cycles and a tile lasts at least ``rows`` cycles), so the OR is that
        # row's results: no select signal crosses the whole array. For the same reason the
        # row number and the tag follow from row 0 alone: the tag is kept when row 0
        # finishes, and the row number counts up from 0 then (it means nothing while no row
        # is finishing, ``drain.valid`` low).
        settle = ProcessingElement.RESULT_LATENCY - ProcessingElement.LATENCY
        finished = [delayed(pes[r][cols - 1].flags_out.capture, settle, f"finished{r}")
                    for r in range(rows)]
        tag_at_exit = delayed(self.edge.tag, cols + settle, "tag")
        kept = [Signal.like(self.drain.acc, name=f"kept{r}", reset_less=True)
                for r in range(rows)]
        kept_finished = Signal(rows)
        kept_row = Signal.like(self.drain.row)
        kept_tag = Signal.like(self.edge.tag)
        m.d.sync += kept_row.eq(kept_row + 1)
        with m.If(finished[0]):
            m.d.sync += [kept_row.eq(0), kept_tag.eq(tag_at_exit)]
        for r in range(rows):
            with m.If(finished[r]):
                m.d.sync += [kept[r][c].eq(pes[r][c].result) for c in range(cols)]
            with m.Else():
                m.d.sync += kept[r].as_value().eq(0)
        m.d.sync += kept_finished.eq(Cat(finished))
        m.d.sync += [self.drain.valid.eq(kept_finished.any()), self.drain.row.eq(kept_row),
                     self.drain.tag.eq(kept_tag)]
        gathered = kept[0].as_value()
        for r in range(1, rows):
            gathered = gathered | kept[r].as_value()
        m.d.sync += self.drain.acc.as_value().eq(gathered)
        return m
