import numpy as np
import pytest
from amaranth.sim import Simulator

from hwlenet.rtl.loader import InputLoader


def buffer_location(plan, channel, y, x, copy):
    """``(bank, row)`` of input-buffer element ``(channel, y, x)`` (padded coordinates) of copy
    ``copy``, from the feature buffer's documented rule: with ``v = (channel * height / 2 +
    y // 2) * stride + x``, bank ``(y % 2) * lanes + v % lanes``, row ``v // lanes + copy *
    copy_words``."""
    buffer = plan.input_buffer
    pairs, lanes = buffer.height // 2, buffer.lanes
    v = (channel * pairs + y // 2) * buffer.stride + x
    copy_words = -(-buffer.channels * pairs * buffer.stride // lanes)
    return (y % 2) * lanes + v % lanes, v // lanes + copy * copy_words


def simulate(plan, images, last, holds, rng):
    """Stream ``images`` (each ``(channels, height, width)``) with random valid gaps (a beat
    once offered stays offered until taken); the consumer releases image ``i``'s copy
    ``holds[i]`` cycles after it becomes visible or once it is the oldest, whichever is later.
    Returns, per cycle, the driven beat and release and what the loader showed: ``ready``,
    ``full``, ``last`` and every write port."""
    dut = InputLoader(plan=plan)
    beats = [(int(pixel), int(flag and index == image.size - 1))
             for image, flag in zip(images, last) for index, pixel in enumerate(image.ravel())]
    cycles = []

    async def bench(ctx):
        position, offered, due, loaded = 0, False, [], 0
        while position < len(beats) or loaded < len(images):
            number = len(cycles)
            assert number < 4 * len(beats) + sum(holds), "the loader stalled"
            offered = position < len(beats) and (offered or rng.random() < 0.75)
            if offered:
                pixel, flag = beats[position]
            else:  # the payload of an idle cycle must be ignored
                pixel, flag = int(rng.integers(256)), int(rng.integers(2))
            ctx.set(dut.pixels.payload, {"pixel": pixel, "last": flag})
            ctx.set(dut.pixels.valid, offered)
            release = bool(due) and number >= due[0]
            ctx.set(dut.images.release, release)
            ready = ctx.get(dut.pixels.ready)
            cycles.append({
                "valid": offered, "beat": beats[position] if offered else None,
                "release": release, "ready": ready, "full": ctx.get(dut.images.full),
                "last": ctx.get(dut.images.last),
                "writes": [(ctx.get(port.en), ctx.get(port.addr), ctx.get(port.data))
                           for port in dut.writes]})
            if release:
                due.pop(0)
                loaded += 1
            if offered and ready:
                position += 1
                offered = False
                if position % plan.image_pixels == 0:
                    # visible LATENCY cycles later; released when due and the oldest
                    due.append(number + InputLoader.LATENCY
                               + holds[position // plan.image_pixels - 1])
            await ctx.tick()
        ctx.set(dut.pixels.valid, 0)
        ctx.set(dut.images.release, 0)
        cycles.append({"valid": False, "beat": None, "release": False,
                       "ready": ctx.get(dut.pixels.ready), "full": ctx.get(dut.images.full),
                       "last": ctx.get(dut.images.last),
                       "writes": [(ctx.get(port.en), ctx.get(port.addr), ctx.get(port.data))
                                  for port in dut.writes]})

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return cycles


@pytest.mark.parametrize("name,rows,cols,count", [
    ("lenet5-relu", 4, 4, 3), ("lenet5-classic", 3, 8, 3), ("lenet5-relu", 8, 16, 2),
    ("lenet5-classic", 3, 5, 2), ("lenet5-relu", 4, 6, 2), ("lenet5-relu", 1, 1, 2),
])
def test_pixels_land_in_alternating_copies(plans, name, rows, cols, count):
    """Every accepted pixel is written once, the cycle after it is accepted, to bank
    ``bank(y + pad, x + pad)``, row ``address(c, y + pad, x + pad, copy)`` of copy
    ``image % 2``, and nothing else is written; the banks modelled from the captured writes
    hold each image; ``full``/``last`` follow a queue of the two copies, a cycle late (a copy
    is full ``LATENCY`` cycles after its last pixel, empty two cycles after its release,
    oldest first), and ``ready`` is low exactly while the copy to fill is full in the queue
    (the loader's own flags, a cycle ahead of ``full``)."""
    plan = plans(name, rows, cols)
    rng = np.random.default_rng(rows * 100 + cols * 10 + count)
    images = rng.integers(0, 256, (count, *plan.image_shape))
    images[0, 0, 0, 0], images[-1, -1, -1, -1] = 255, 0  # the extremes, at the image corners
    last = [int(rng.integers(2)) for _ in range(count - 1)] + [1]
    if count > 2:
        last[0] = 0  # copy 0 filled unmarked, then refilled with the marked image: per fill
    # the first image is held past the second's end (both copies full: back-pressure); the
    # second is released the cycle it is seen
    holds = [2 * plan.image_pixels, 0] + [int(rng.integers(50)) for _ in range(count - 2)]
    cycles = simulate(plan, images, last, holds, rng)
    pad = plan.conv_jobs[0].layer.padding
    channels, height, width = plan.image_shape
    assert InputLoader.LATENCY == 2

    # the writes, cycle by cycle
    expected = []
    for image in range(count):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    expected.append((*buffer_location(plan, c, y + pad, x + pad, image % 2),
                                     int(images[image, c, y, x])))
    banks = [{} for _ in range(plan.input_buffer.banks)]
    written, snapshots = [], []
    for number, (cycle, after) in enumerate(zip(cycles, cycles[1:])):
        enabled = [(bank, addr, data) for bank, (en, addr, data) in enumerate(after["writes"])
                   if en]
        if cycle["valid"] and cycle["ready"]:
            assert len(enabled) == 1, number
            bank, addr, data = enabled[0]
            banks[bank][addr] = data
            written.append(enabled[0])
            if len(written) % plan.image_pixels == 0:
                snapshots.append([dict(bank) for bank in banks])
        else:
            assert enabled == [], number
    assert not any(en for en, _, _ in cycles[0]["writes"])
    assert written == expected
    # the banks modelled from the writes hold, after each image, that image at its place
    for image, held_banks in enumerate(snapshots):
        held = np.array([[[held_banks[bank][row] for bank, row in (
            buffer_location(plan, c, y + pad, x + pad, image % 2) for x in range(width))]
            for y in range(height)] for c in range(channels)])
        np.testing.assert_array_equal(held, images[image])

    # the two copies' occupancy, per cycle, against a queue of full copies a cycle earlier
    queue, flags, accepted = [], [0, 0], 0
    shown, shown_flags = [], [0, 0]
    for number, cycle in enumerate(cycles):
        assert cycle["full"] == sum(1 << copy for copy in shown), number
        for copy in shown:
            assert (cycle["last"] >> copy) & 1 == shown_flags[copy], number
        shown, shown_flags = list(queue), list(flags)
        filling = accepted // plan.image_pixels % 2
        assert cycle["ready"] == (filling not in queue), number
        if cycle["release"]:
            assert queue, number  # the bench releases only what it saw full
            queue.pop(0)
        if cycle["valid"] and cycle["ready"]:
            accepted += 1
            if accepted % plan.image_pixels == 0:
                queue.append(filling)
                flags[filling] = cycle["beat"][1]
    assert accepted == count * plan.image_pixels and queue == []
    # back-pressure happened when a third image waited for both copies
    assert any(c["valid"] and not c["ready"] for c in cycles) == (count > 2)
