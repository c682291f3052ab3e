import gc

import numpy as np
import pytest
from amaranth.hdl import Shape, signed, unsigned
from amaranth.sim import Simulator

from hwlenet.rtl.argmax import RunningArgmax


def random_searches(rng, count, shape, searches, select="max"):
    """``searches`` searches, each every index once (0 first, the rest shuffled or falling)
    with values drawn from a few levels so that ties are common (at the selected extreme too),
    and invalid cycles between the pairs whose random index (0 restarts a valid search) and
    extreme value must be ignored."""
    shape = Shape.cast(shape)
    low, high = (-(1 << shape.width - 1), 1 << shape.width - 1) if shape.signed \
        else (0, 1 << shape.width)
    levels = rng.integers(low, high, size=min(3, count))
    extreme = high - 1 if select == "max" else low
    stream, values, orders = [], [], []
    for _ in range(searches):
        search = rng.choice(levels, size=count)
        if rng.integers(3):
            # the selected extreme at one to three places (ties at the best value)
            search[rng.integers(count, size=rng.integers(1, 4))] = extreme
        values.append(search)
        # every other search walks the indices downwards, so tied maxima arrive highest first
        rest = (np.arange(count - 1, 0, -1) if len(values) % 2
                else rng.permutation(np.arange(1, count)))
        orders.append([0, *(int(i) for i in rest)])
        for index in orders[-1]:
            while rng.random() < 0.3:
                stream.append((0, int(rng.integers(count)), int(rng.choice([high - 1, low]))))
            stream.append((1, index, int(search[index])))
    return stream, values, orders


def lowest_best(seen, select):
    """Index of the largest (``max``) or smallest (``min``) value among the ``{index: value}``
    pairs seen, lowest on ties."""
    best = (max if select == "max" else min)(seen.values())
    return min(index for index, value in seen.items() if value == best)


@pytest.mark.parametrize("select", ["max", "min"])
@pytest.mark.parametrize("count,shape", [(1, signed(8)), (2, unsigned(1)), (10, signed(16)),
                                         (10, unsigned(4)), (17, signed(3))])
def test_best_is_the_lowest_index_of_the_extreme(count, shape, select):
    """Per cycle, ``best``/``best_value`` are ``LATENCY`` cycles behind the argmax or argmin
    (lowest index on ties) of the pairs seen since the last index 0, and each whole search ends
    on ``np.argmax`` / ``np.argmin`` of its values."""
    rng = np.random.default_rng(count * 100 + Shape.cast(shape).width + (select == "min"))
    stream, values, orders = random_searches(rng, count, shape, 12, select)
    dut = RunningArgmax(count=count, shape=shape, select=select)
    assert dut.LATENCY == 2
    observed = []

    async def bench(ctx):
        for valid, index, value in stream:
            ctx.set(dut.valid, valid)
            ctx.set(dut.index, index)
            ctx.set(dut.value, value)
            observed.append((ctx.get(dut.best), ctx.get(dut.best_value)))
            await ctx.tick()
        ctx.set(dut.valid, 0)
        for _ in range(dut.LATENCY):
            observed.append((ctx.get(dut.best), ctx.get(dut.best_value)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    # the model after each cycle's pair, compared LATENCY cycles later
    seen, expected, ends = None, [], []
    for valid, index, value in stream:
        if valid:
            seen = {} if index == 0 else seen
            seen[index] = value
            if len(seen) == count:
                ends.append(len(expected))
        expected.append((lowest_best(seen, select), seen[lowest_best(seen, select)])
                        if seen is not None else None)
    latency = RunningArgmax.LATENCY
    for cycle, want in enumerate(expected):
        if want is not None:
            assert observed[cycle + latency] == want, cycle
    assert len(ends) == len(values)
    arg, extreme = (np.argmax, np.max) if select == "max" else (np.argmin, np.min)
    for end, search in zip(ends, values):
        assert observed[end + latency] == (int(arg(search)), int(extreme(search)))
    # ties for the best value; past two indices, a tied best arrived after a higher index
    # holding it (the case that needs the index comparison)
    if count > 1:
        assert any(np.count_nonzero(search == extreme(search)) > 1 for search in values)
    if count > 2:
        assert any(order.index(int(arg(search))) > min(
            order.index(i) for i in np.flatnonzero(search == extreme(search)))
            for search, order in zip(values, orders))


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("count", [0, -3, 2.5, "10", None, True])
def test_rejects_bad_count(count):
    with pytest.raises(TypeError, match=f"count must be a positive integer, not {count!r}"):
        RunningArgmax(count=count, shape=signed(8))
    gc.collect()  # the refused component's unused-elaboratable warning, under this filter


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("select", ["MAX", "argmin", "", None, 1])
def test_rejects_bad_select(select):
    with pytest.raises(ValueError, match=f"select must be one of max, min, not {select!r}"):
        RunningArgmax(count=4, shape=signed(8), select=select)
    gc.collect()
