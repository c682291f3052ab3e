"""A running argmax (or argmin) over a stream of (index, value) pairs."""

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SELECTIONS", "RunningArgmax"]

#: What :class:`RunningArgmax` keeps: the largest value (logits) or the smallest (RBF penalties).
SELECTIONS = ("max", "min")


class RunningArgmax(wiring.Component):
    """Tracks the index of the largest (``select="max"``) or smallest (``select="min"``) value
    seen since the last index 0, lowest index on ties (the artifact's ``argmax`` and ``argmin``
    output rules).

    Each cycle with ``valid``: if ``index == 0`` the pair starts a new search; otherwise it
    replaces the best pair when it is better (``value > best_value`` for ``max``,
    ``value < best_value`` for ``min``), or when ``value == best_value`` and ``index < best``.
    The pair is registered first (so the route from its source, which may be placed beside
    other readers, ends at a register and not in the comparison), and ``best`` and
    ``best_value`` show the result ``LATENCY = 2`` cycles later.

    Parameters
    ----------
    count : int
        Number of indices (``index`` is ``0 .. count - 1``).
    shape : shape-castable
        Shape of the values (signed or unsigned).
    select : {"max", "min"}
        Which extreme to track (default ``max``).
    """

    LATENCY = 2

    def __init__(self, *, count, shape, select="max"):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise TypeError(f"count must be a positive integer, not {count!r}")
        if not isinstance(select, str) or select not in SELECTIONS:
            raise ValueError(f"select must be one of {', '.join(SELECTIONS)}, not {select!r}")
        self.count = count
        self.select = select
        self.value_shape = Shape.cast(shape)
        super().__init__({
            "valid": In(1),
            "index": In(range(count)),
            "value": In(shape),
            "best": Out(range(count)),
            "best_value": Out(shape),
        })

    def elaborate(self, platform):
        m = Module()
        valid, index, value = (Signal.like(port, name=f"{port.name}_registered")
                               for port in (self.valid, self.index, self.value))
        m.d.sync += [valid.eq(self.valid), index.eq(self.index), value.eq(self.value)]
        strictly = value > self.best_value if self.select == "max" else value < self.best_value
        better = strictly | ((value == self.best_value) & (index < self.best))
        with m.If(valid & ((index == 0) | better)):
            m.d.sync += [self.best.eq(index), self.best_value.eq(value)]
        return m
