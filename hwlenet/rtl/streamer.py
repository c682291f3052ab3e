"""The result streamer: holds a batch's logits (or RBF penalties) and sends one result beat per
image."""

from amaranth.hdl import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .argmax import RunningArgmax
from .fixedpoint import format_shape

__all__ = ["ResultStreamer", "result_layout", "store_signature"]


def result_layout(plan):
    """Output beat: the image's logits (the last layer's outputs in its format; for an RBF output,
    the reduced penalties) and its class by the artifact's output rule: the index of the largest
    logit, or of the smallest penalty (lowest on ties)."""
    return data.StructLayout({
        "logits": data.ArrayLayout(format_shape(plan.logit_format), plan.classes),
        "label": range(plan.classes),
    })


def store_signature(plan):
    """The last layer's outputs, seen from their producer: in a cycle with ``valid[s]``, image
    slot ``s`` gets logit ``index`` = ``value[s]``; ``finish`` (with the batch's image
    ``count``) ends the batch."""
    return wiring.Signature({
        "valid": Out(data.ArrayLayout(1, plan.cols)),
        "index": Out(range(plan.classes)),
        "value": Out(data.ArrayLayout(format_shape(plan.logit_format), plan.cols)),
        "finish": Out(1),
        "count": Out(range(plan.cols + 1)),
    })


class ResultStreamer(wiring.Component):
    """Stores each slot's logits as they are produced (one :class:`RunningArgmax` per slot
    follows them, selecting the maximum or, for the ``argmin`` output rule, the minimum) and,
    after ``finish``, sends ``count`` beats on ``results``, slot 0 first (a ``finish`` with
    ``count`` 0 sends nothing).

    ``store`` is registered as it arrives (for timing: the writer's store registers sit far
    from the running comparisons), and the beats come from a register loaded
    ``RunningArgmax.LATENCY`` cycles after the registered ``finish``, when the last labels are
    known (``LATENCY = 1 + RunningArgmax.LATENCY = 3``): ``busy`` is high from ``LATENCY + 1``
    cycles after ``finish`` until the last beat is taken; a new batch must not store before
    then.

    Parameters
    ----------
    plan : HardwarePlan
    """

    LATENCY = 1 + RunningArgmax.LATENCY

    def __init__(self, *, plan):
        self.plan = plan
        super().__init__({
            "store": In(store_signature(plan)),
            "results": Out(stream.Signature(result_layout(plan))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        cols, classes = plan.cols, plan.classes
        shape = format_shape(plan.logit_format)
        signature = store_signature(plan)
        store = signature.create(path=("store_registered",))
        m.d.sync += [getattr(store, name).eq(getattr(self.store, name))
                     for name in signature.members]
        logits = [[Signal(shape, name=f"logit_{slot}_{i}") for i in range(classes)]
                  for slot in range(cols)]
        labels = []
        select = "min" if plan.output_rule == "argmin" else "max"
        for slot in range(cols):
            argmax = RunningArgmax(count=classes, shape=shape, select=select)
            m.submodules[f"argmax_{slot}"] = argmax
            m.d.comb += [argmax.valid.eq(store.valid[slot]),
                         argmax.index.eq(store.index),
                         argmax.value.eq(store.value[slot])]
            labels.append(argmax.best)
            with m.If(store.valid[slot]):
                with m.Switch(store.index):
                    for i in range(classes):
                        with m.Case(i):
                            m.d.sync += logits[slot][i].eq(store.value[slot])

        # The beat is a register (so is what selects the slot it loads), so a consumer's input
        # register reads it over wires alone. It loads slot 0 RunningArgmax.LATENCY cycles
        # after the registered ``finish``, once the batch's last logits and labels are in their
        # registers.
        count = Signal(range(cols + 1))
        current = Signal(range(max(cols, 2)))
        following = Signal(range(max(cols, 2) + 1))
        starting = store.finish & (store.count != 0)
        for stage in range(RunningArgmax.LATENCY):
            delayed = Signal(name=f"starting{stage + 1}")
            m.d.sync += delayed.eq(starting)
            starting = delayed
        beat = Signal(result_layout(plan), reset_less=True)
        with m.If(store.finish & (store.count != 0)):
            m.d.sync += count.eq(store.count)

        def load(slot):
            m.d.sync += [beat.logits[i].eq(logits[slot][i]) for i in range(classes)]
            m.d.sync += beat.label.eq(labels[slot])

        with m.If(starting):
            m.d.sync += [self.busy.eq(1), current.eq(0), following.eq(1)]
            load(0)
        with m.Elif(self.results.valid & self.results.ready):
            m.d.sync += [current.eq(current + 1), following.eq(following + 1)]
            with m.Switch(following):
                for slot in range(1, cols):
                    with m.Case(slot):
                        load(slot)
            with m.If(current == count - 1):
                m.d.sync += self.busy.eq(0)
        m.d.comb += [self.results.payload.eq(beat), self.results.valid.eq(self.busy)]
        return m
