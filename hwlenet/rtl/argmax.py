"""A running argmax (or argmin) over a stream of (index, value) pairs."""

from amaranth.hdl import Module, Shape
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
    ``best`` and ``best_value`` show the result ``LATENCY = 1`` cycle later.

    Parameters
    ----------
    count : int
        Number of indices (``index`` is ``0 .. count - 1``).
    shape : shape-castable
        Shape of the values (signed or unsigned).
    select : {"max", "min"}
        Which extreme to track (default ``max``).
    """

    LATENCY = 1

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
        strictly = (self.value > self.best_value if self.select == "max"
                    else self.value < self.best_value)
        better = strictly | ((self.value == self.best_value) & (self.index < self.best))
        with m.If(self.valid & ((self.index == 0) | better)):
            m.d.sync += [self.best.eq(self.index), self.best_value.eq(self.value)]
        return m
