import numpy as np
import pytest
from amaranth.sim import Simulator

from hwlenet.rtl.streamer import ResultStreamer


def best(row, rule):
    """The class of one slot's values under the plan's output rule (lowest index on ties)."""
    return int(np.argmin(row) if rule == "argmin" else np.argmax(row))


def random_batch(plan, rng, count):
    """Logits (or RBF penalties) for ``count`` slots drawn from a few levels of the logit format
    (its extremes among them) so that tied maxima and minima are common."""
    fmt = plan.logit_format
    levels = [fmt.min_int, fmt.max_int, *rng.integers(fmt.min_int, fmt.max_int, 2)]
    logits = rng.choice(levels, size=(count, plan.classes))
    logits[0] = logits[0].max()  # every logit of slot 0 tied: label 0
    return logits


def run_batches(plan, batches, rng):
    """For each ``(logits, order, together)``: store the logits in ``order`` (index 0 first)
    with idle cycles between, pulse ``finish`` with the batch's count (with the last store if
    ``together``, else after it), then take the results with random ``ready``; the next batch
    starts once ``busy`` is low (looked at from ``LATENCY + 1`` cycles after ``finish``, when it
    shows the finish). Returns, per cycle, what was driven and what was seen."""
    dut = ResultStreamer(plan=plan)
    cols, fmt = plan.cols, plan.logit_format
    cycles = []

    async def cycle(ctx, store=None, finish=0, count=0, ready=0):
        """One clock cycle: ``store`` is ``(index, values, valid)`` or None (an idle cycle,
        random index and values that must be ignored)."""
        if store is None:
            store = (int(rng.integers(plan.classes)),
                     [int(v) for v in rng.integers(fmt.min_int, fmt.max_int, cols)], [0] * cols)
        index, values, valid = store
        ctx.set(dut.store.index, index)
        ctx.set(dut.store.value, values)
        ctx.set(dut.store.valid, valid)
        ctx.set(dut.store.finish, finish)
        ctx.set(dut.store.count, count)
        ctx.set(dut.results.ready, ready)
        payload = ctx.get(dut.results.payload)
        cycles.append({"stored": any(valid), "finish": finish, "ready": ready,
                       "valid": ctx.get(dut.results.valid), "busy": ctx.get(dut.busy),
                       "logits": [payload.logits[i] for i in range(plan.classes)],
                       "label": payload.label})
        await ctx.tick()

    async def bench(ctx):
        for logits, order, together in batches:
            count = len(logits)
            valid = [int(slot < count) for slot in range(cols)]
            for position, index in enumerate(order):
                while rng.random() < 0.3:
                    await cycle(ctx)
                values = [int(logits[slot, index]) if slot < count
                          else int(rng.integers(fmt.min_int, fmt.max_int)) for slot in range(cols)]
                last = position == len(order) - 1
                await cycle(ctx, (index, values, valid), finish=int(last and together),
                            count=count)
            if not together:
                for _ in range(int(rng.integers(3))):
                    await cycle(ctx)
                await cycle(ctx, finish=1, count=count)
            for _ in range(ResultStreamer.LATENCY + 1):  # until busy shows the finish
                await cycle(ctx, ready=int(rng.integers(2)))
            while cycles[-1]["busy"]:
                assert len(cycles) < 100 * cols * len(batches), "the results never end"
                await cycle(ctx, ready=int(rng.random() < 0.6))
            for _ in range(int(rng.integers(3))):
                await cycle(ctx, ready=int(rng.integers(2)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return cycles


@pytest.mark.parametrize("name,rows,cols", [("lenet5-relu", 4, 4), ("lenet5-classic", 3, 8),
                                            ("lenet5-relu", 8, 16), ("lenet5-classic-fc", 2, 5)])
def test_results_per_slot_in_order(plans, name, rows, cols):
    """Batches of every size (partial, full, a single image), stored in index order or with
    index 0 first and the rest shuffled, finished with or after the last store: one beat per
    image, slot 0 first, with its logits and label (``np.argmax``, or ``np.argmin`` for the
    classic model's RBF penalties: lowest index on ties), held
    while not taken; ``busy`` (and ``valid``) from the cycle after ``finish`` until the last
    beat is taken, and nothing sent otherwise."""
    plan = plans(name, rows, cols)
    rng = np.random.default_rng(rows * 100 + cols)
    counts = [cols // 2 + 1, cols, 1, int(rng.integers(1, cols))]
    batches = []
    for number, count in enumerate(counts):
        order = list(range(plan.classes)) if number % 2 == 0 else \
            [0, *(int(i) for i in rng.permutation(np.arange(1, plan.classes)))]
        batches.append((random_batch(plan, rng, count), order, number % 3 == 0))
    cycles = run_batches(plan, batches, rng)

    finishes = [number for number, cycle in enumerate(cycles) if cycle["finish"]]
    assert len(finishes) == len(batches)
    beats = [(number, cycle) for number, cycle in enumerate(cycles)
             if cycle["valid"] and cycle["ready"]]
    position = 0
    for (logits, _, _), finish in zip(batches, finishes):
        batch_beats = beats[position: position + len(logits)]
        position += len(logits)
        assert len(batch_beats) == len(logits)
        for slot, (number, beat) in enumerate(batch_beats):
            assert beat["logits"] == [int(v) for v in logits[slot]], (number, slot)
            assert beat["label"] == best(logits[slot], plan.output_rule), (number, slot)
        taken = batch_beats[-1][0]
        # busy exactly from LATENCY + 1 cycles after finish to the cycle the last beat is taken
        first_busy = finish + ResultStreamer.LATENCY + 1
        for number in range(finish - 1, min(taken + 3, len(cycles))):
            assert cycles[number]["busy"] == int(first_busy <= number <= taken), number
        # a beat not taken stays, unchanged, until it is
        start = first_busy
        for slot, (number, _) in enumerate(batch_beats):
            for waiting in range(start, number):
                assert cycles[waiting]["logits"] == [int(v) for v in logits[slot]], waiting
            start = number + 1
    assert position == len(beats)
    assert all(cycle["valid"] == cycle["busy"] for cycle in cycles)
    assert not any(cycle["busy"] for cycle in cycles if cycle["stored"])
    # back-pressure and ties at the best value (not all at index 0) were exercised, and the
    # rule mattered: argmax and argmin disagree on some slot
    assert plan.output_rule == ("argmin" if name == "lenet5-classic" else "argmax")
    assert any(cycle["valid"] and not cycle["ready"] for cycle in cycles)
    extreme = np.min if plan.output_rule == "argmin" else np.max
    assert any(np.count_nonzero(row == extreme(row)) > 1 and best(row, plan.output_rule) > 0
               for logits, _, _ in batches for row in logits)
    assert any(np.argmin(row) != np.argmax(row) for logits, _, _ in batches for row in logits)
