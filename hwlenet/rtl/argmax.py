"""A running argmax over a stream of (index, value) pairs."""

from amaranth.hdl import Module, Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RunningArgmax"]


class RunningArgmax(wiring.Component):
    """Tracks the index of the largest value seen since the last index 0, lowest index on ties
    (the artifact's argmax rule).

    Each cycle with ``valid``: if ``index == 0`` the pair starts a new search; otherwise it
    replaces the best pair when ``value > best_value``, or when ``value == best_value`` and
    ``index < best``. ``best`` and ``best_value`` show the result ``LATENCY = 1`` cycle later.

    Parameters
    ----------
    count : int
        Number of indices (``index`` is ``0 .. count - 1``).
    shape : shape-castable
        Shape of the values (signed or unsigned).
    """

    LATENCY = 1

    def __init__(self, *, count, shape):
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise TypeError(f"count must be a positive integer, not {count!r}")
        self.count = count
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
        better = ((self.value > self.best_value)
                  | ((self.value == self.best_value) & (self.index < self.best)))
        with m.If(self.valid & ((self.index == 0) | better)):
            m.d.sync += [self.best.eq(self.index), self.best_value.eq(self.value)]
        return m
