import gc

import numpy as np
import pytest
from amaranth.hdl import Value, signed
from amaranth.lib import data
from amaranth.sim import Simulator

from hwlenet.rtl.rom import (BLOCK_RAM_SHAPES, BankedRom, block_ram_piece_depth, group_size,
                             piece_count)


@pytest.mark.parametrize("words,piece_depth", [(1, 1), (5, 8), (8, 8), (9, 4), (37, 4),
                                               (100, 2), (64, 1), (300, 16)])
def test_reads_every_word_latency_cycles_later(words, piece_depth):
    """Addresses in random order, repeats included: cycle ``t``'s address gives its word on
    ``data`` in cycle ``t + LATENCY``, for ROMs of one piece, a short last piece, one or two
    OR levels and pieces of one word."""
    rng = np.random.default_rng(words * 31 + piece_depth)
    init = [int(v) for v in rng.integers(0, 1 << 7, words)]
    addresses = [int(a) for a in rng.integers(0, words, 3 * words + 8)]
    dut = BankedRom(width=7, init=init, piece_depth=piece_depth)
    assert dut.pieces == -(-words // piece_depth)
    assert dut.group_size ** 2 >= dut.pieces > (dut.group_size - 1) ** 2
    observed = []

    async def bench(ctx):
        for address in addresses + [0] * BankedRom.LATENCY:
            ctx.set(dut.addr, address)
            observed.append(ctx.get(dut.data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    expected = [init[a] for a in addresses]
    assert observed[BankedRom.LATENCY:BankedRom.LATENCY + len(addresses)] == expected


def test_words_of_lanes_packed_with_their_layout():
    """The weight ROM's use: words of several signed lanes, packed with the layout's ``const``,
    come out whole when ``data`` is read through the layout."""
    layout = data.ArrayLayout(signed(4), 3)
    rng = np.random.default_rng(3)
    words = [[int(v) for v in rng.integers(-8, 8, 3)] for _ in range(11)]
    dut = BankedRom(width=layout.size, piece_depth=2,
                    init=[Value.cast(layout.const(word)).value for word in words])
    observed = []

    async def bench(ctx):
        view = data.View(layout, dut.data)
        for address in list(range(11)) + [0] * BankedRom.LATENCY:
            ctx.set(dut.addr, address)
            observed.append([ctx.get(view[i]) for i in range(3)])
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert observed[BankedRom.LATENCY:BankedRom.LATENCY + 11] == words


@pytest.mark.parametrize("pieces,size", [(1, 1), (2, 2), (4, 2), (5, 3), (16, 4), (17, 5),
                                         (31, 6), (64, 8), (65, 9)])
def test_group_size(pieces, size):
    assert group_size(pieces) == size


@pytest.mark.parametrize("width,depth", [(32, 15400), (8, 61500), (64, 7700), (8, 100),
                                         (7, 3000), (200, 40), (1, 40000), (36, 600)])
def test_piece_depth_needs_the_fewest_block_rams(width, depth):
    """Against every configuration: none holds the ROM in fewer block RAMs, and none as few
    with shallower pieces."""
    def block_rams(shape):
        return -(-width // shape[0]) * piece_count(depth, shape[1])

    chosen = next(s for s in BLOCK_RAM_SHAPES if s[1] == block_ram_piece_depth(width, depth))
    assert all(block_rams(chosen) < block_rams(other)
               or (block_rams(chosen) == block_rams(other) and chosen[1] <= other[1])
               for other in BLOCK_RAM_SHAPES)


@pytest.mark.parametrize("width,depth,piece_depth", [
    (32, 15400, 512),    # 31 block RAMs of 36 x 512 rather than 32 of 1 x 16384
    (64, 7700, 512),     # 16 pieces of two 36 x 512 side by side; 32 block RAMs in every shape
    (8, 61500, 2048)])   # 31 of 9 x 2048
def test_piece_depth_examples(width, depth, piece_depth):
    assert block_ram_piece_depth(width, depth) == piece_depth


@pytest.mark.parametrize("width,depth", [(0, 10), (8, 0), (8.0, 10), (True, 10), (8, "10")])
def test_piece_depth_rejects_bad_sizes(width, depth):
    with pytest.raises(TypeError, match="must be a positive integer"):
        block_ram_piece_depth(width, depth)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("piece_depth", [0, 3, 12, -4, 2.0, True, None])
def test_rejects_bad_piece_depth(piece_depth):
    with pytest.raises(TypeError, match=f"piece_depth must be a power of two, not "
                                        f"{piece_depth!r}"):
        BankedRom(width=4, init=[1, 2], piece_depth=piece_depth)
    gc.collect()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("width", [0, -1, 4.0, True, "8"])
def test_rejects_bad_width(width):
    with pytest.raises(TypeError, match=f"width must be a positive integer, not {width!r}"):
        BankedRom(width=width, init=[1, 2], piece_depth=2)
    gc.collect()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
@pytest.mark.parametrize("init,message", [
    ([], "init must hold at least one word"),
    ([1, 16], r"init words must be integers from 0 to 2 \*\* 4 - 1, not 16"),
    ([-1], r"init words must be integers from 0 to 2 \*\* 4 - 1, not -1"),
    ([1.0], r"init words must be integers from 0 to 2 \*\* 4 - 1, not 1.0")])
def test_rejects_bad_init(init, message):
    with pytest.raises(ValueError, match=message):
        BankedRom(width=4, init=init, piece_depth=4)
    gc.collect()
